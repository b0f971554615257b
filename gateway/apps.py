from django.apps import AppConfig


class GatewayConfig(AppConfig):
    """Invocation of deployments (OpenAI-compatible), hub API keys, provider credentials, the usage buffer."""

    name = "gateway"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from deployments.services import DEPLOYMENT_CHANGED
        from gateway import services
        from modelhub.api.authentication import API_KEYS

        API_KEYS.register(services.authenticate_api_key)
        DEPLOYMENT_CHANGED.register(services.forget_route)
