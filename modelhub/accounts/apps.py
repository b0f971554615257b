from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Users, roles and JWT authentication: shared by every app, so it lives in the project package."""

    name = "modelhub.accounts"
    label = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the OpenAPI extension for our JWT authentication class.
        import modelhub.api.schema  # noqa: F401
