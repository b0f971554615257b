from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    """A/B experiments: lifecycle, assignment where traffic enters, results from usage, promotion."""

    name = "experiments"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from analytics.selectors.experiments import HOURS_ROLLED_UP
        from experiments import services

        HOURS_ROLLED_UP.register(services.mark_hours)
