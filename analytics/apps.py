from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    """Usage events, their rollups, performance queries, the dashboard and alerts."""

    name = "analytics"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from analytics import services
        from analytics.selectors.detail import fill_model_detail
        from catalog.selectors import MODEL_DETAIL
        from deployments.services import DEPLOYMENT_CHANGED

        MODEL_DETAIL.register(fill_model_detail)
        from analytics.selectors.marketplace import fill_entitlement_usage
        from marketplace.selectors import ENTITLEMENT_DETAILS

        ENTITLEMENT_DETAILS.register(fill_entitlement_usage)
        DEPLOYMENT_CHANGED.register(services.dashboard_changed)
