from django.apps import AppConfig


class CostsConfig(AppConfig):
    """Cost analysis from recorded usage, budgets enforced in the gateway, alerts and notifications."""

    name = "costs"
    default_auto_field = "django.db.models.BigAutoField"
