from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    """Usage events, their rollups, performance queries, the dashboard and alerts."""

    name = "analytics"
    default_auto_field = "django.db.models.BigAutoField"
