from django.apps import AppConfig


class MarketplaceConfig(AppConfig):
    """Listings, plans and licence terms, idempotent purchases, entitlements that gate deployment."""

    name = "marketplace"
    default_auto_field = "django.db.models.BigAutoField"
