from django.apps import AppConfig


class CatalogConfig(AppConfig):
    """The model registry: what models exist, their specs, baselines and governance state."""

    name = "catalog"
    default_auto_field = "django.db.models.BigAutoField"
