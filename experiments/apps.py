from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    """A/B experiments: lifecycle, assignment where traffic enters, results from usage, promotion."""

    name = "experiments"
    default_auto_field = "django.db.models.BigAutoField"
