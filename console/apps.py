from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    """The web console: server-rendered pages over the API, live over the realtime websocket."""

    name = "console"
    default_auto_field = "django.db.models.BigAutoField"
