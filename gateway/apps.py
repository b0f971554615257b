from django.apps import AppConfig


class GatewayConfig(AppConfig):
    """Invocation of deployments (OpenAI-compatible), hub API keys, provider credentials, the usage buffer."""

    name = "gateway"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from deployments.services import DEPLOYMENT_CHANGED
        from gateway import services
        from modelhub.api.authentication import API_KEYS
        from modelhub.api.schema import register_links

        API_KEYS.register(services.authenticate_api_key)
        DEPLOYMENT_CHANGED.register(services.forget_route)
        # No link to DELETE: a revoked key stays readable (status "revoked"), which schemathesis's
        # use-after-free check would report as a resource still served after its deletion.
        register_links(
            "api_keys_create", "201", {"GetApiKey": ("api_keys_retrieve", {"id": "$response.body#/apiKey/id"})}
        )
