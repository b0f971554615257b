from django.apps import AppConfig


class DeploymentsConfig(AppConfig):
    """Deployments of registered models per environment, with their lifecycle."""

    name = "deployments"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from catalog.selectors import MODEL_DETAIL
        from deployments.selectors import fill_model_detail
        from modelhub.api.schema import register_links

        MODEL_DETAIL.register(fill_model_detail)
        from deployments.selectors import fill_entitlement_details
        from marketplace.selectors import ENTITLEMENT_DETAILS

        ENTITLEMENT_DETAILS.register(fill_entitlement_details)

        deployment_id = {"id": "$response.body#/deployment/id"}
        # No link to DELETE: a stopped deployment stays readable for history, which schemathesis's
        # use-after-free check would report as a resource still served after its deletion.
        register_links(
            "deployments_create",
            "201",
            {
                "GetDeployment": ("deployments_retrieve", deployment_id),
                "UpdateDeployment": ("deployments_partial_update", deployment_id),
                "ReplaceDeployment": ("deployments_update", deployment_id),
                "ScaleDeployment": ("deployments_scale_create", deployment_id),
            },
        )
