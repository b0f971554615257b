from django.apps import AppConfig


class CatalogConfig(AppConfig):
    """The model registry: what models exist, their specs, baselines and governance state."""

    name = "catalog"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from modelhub.api.schema import register_links

        model_id = {"id": "$response.body#/model/id"}
        register_links(
            "models_create",
            "201",
            {
                "GetModel": ("models_retrieve", model_id),
                "UpdateModel": ("models_partial_update", model_id),
                "ReplaceModel": ("models_update", model_id),
                "DeleteModel": ("models_destroy", model_id),
            },
        )
