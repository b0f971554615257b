from django.apps import AppConfig


class CostsConfig(AppConfig):
    """Cost analysis from recorded usage, budgets enforced in the gateway, alerts and notifications."""

    name = "costs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from costs import services
        from marketplace.services import PURCHASE_CHECKS

        PURCHASE_CHECKS.register(services.purchase_check)
