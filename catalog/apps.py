from django.apps import AppConfig


class CatalogConfig(AppConfig):
    """The model registry: what models exist, their specs, baselines and governance state."""

    name = "catalog"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db import transaction
        from django.db.models.signals import post_delete, post_save

        from catalog.models import ModelRegistry
        from catalog.selectors import invalidate_catalog_facets
        from modelhub.api.schema import register_links

        # Cache invalidation, not business flow: whatever saves or deletes a model (a service, the
        # admin, a shell, a data migration) moves the catalog's generation on - at once, and again when
        # it commits (a reader between the two may have stored what it read before the commit), so no
        # cached list answer or facet outlives it. (bulk_update sends no signal: its caller bumps it.)
        def changed(**_kwargs) -> None:
            invalidate_catalog_facets()
            transaction.on_commit(invalidate_catalog_facets)

        post_save.connect(changed, sender=ModelRegistry, weak=False, dispatch_uid="catalog-generation-save")
        post_delete.connect(changed, sender=ModelRegistry, weak=False, dispatch_uid="catalog-generation-delete")

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
