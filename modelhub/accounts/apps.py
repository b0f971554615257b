from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Users, roles and JWT authentication: shared by every app, so it lives in the project package."""

    name = "modelhub.accounts"
    label = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the OpenAPI extension for our JWT authentication class.
        from modelhub.api.schema import register_links

        user_id = {"id": "$response.body#/id"}
        register_links(
            "users_create",
            "201",
            {
                "GetUser": ("users_retrieve", user_id),
                "UpdateUser": ("users_partial_update", user_id),
                "GetUserRateLimits": ("rate_limits_users_retrieve", {"user_id": "$response.body#/id"}),
                "SetUserRateLimits": ("rate_limits_users_partial_update", {"user_id": "$response.body#/id"}),
            },
        )
