from django.apps import AppConfig


class MarketplaceConfig(AppConfig):
    """Listings, plans and licence terms, idempotent purchases, entitlements that gate deployment."""

    name = "marketplace"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from catalog.services import DEMO_SEEDED
        from marketplace.demo import seed_demo_listings

        DEMO_SEEDED.register(seed_demo_listings)
