from django.apps import AppConfig


class DeploymentsConfig(AppConfig):
    """Deployments of registered models per environment, with their lifecycle."""

    name = "deployments"
    default_auto_field = "django.db.models.BigAutoField"
