from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Users, roles and JWT authentication: shared by every app, so it lives in the project package."""

    name = "modelhub.accounts"
    label = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db import transaction
        from django.db.models.signals import post_delete, post_save

        from modelhub.accounts.models import User
        from modelhub.api.authentication import user_changed
        from modelhub.api.schema import register_links

        # Cache invalidation, not business flow: whatever saves or deletes a user (a service, the admin, a
        # login's last_login, a shell) moves that user's cached copy out of use - at once, and again when
        # it commits (a request between the two may have cached what it read before the commit).
        def changed(instance: User, **_kwargs) -> None:
            pk = instance.pk  # now: a delete sets the instance's pk to None before the commit
            user_changed(pk)
            transaction.on_commit(lambda: user_changed(pk))

        post_save.connect(changed, sender=User, weak=False, dispatch_uid="accounts-user-save")
        post_delete.connect(changed, sender=User, weak=False, dispatch_uid="accounts-user-delete")

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
