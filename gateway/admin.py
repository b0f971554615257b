"""Hub API keys and provider credentials in the Django admin (admins only), through the gateway's services.

API keys: listed with their visible prefix and status, revoked with an action; one added here is made
by :func:`gateway.services.api_key_create`, and its secret is shown once, in the message after saving.
The hash is never shown or editable, and keys are not deleted (revoke instead; the usage history
names them).

Provider credentials: the provider API key is typed into a password field and stored encrypted
(:func:`gateway.services.credential_set_key`); the admin shows only whether one is stored, never the
key. Naming an environment variable instead keeps the key out of the database altogether.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.validators import URLValidator
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from gateway import services
from gateway.filters import status_condition
from gateway.models import ApiKey, ProviderCredential
from gateway.serializers import ApiKeyStatus, check_deployments, key_status, sees_all_keys, visible_prefix
from modelhub.api.exceptions import AppError


class _AdminsOnly:
    """Keys of every user and provider secrets: the admin role only (as ``GET /api-keys`` shows everyone's)."""

    def _allowed(self, request: HttpRequest) -> bool:
        user = request.user
        return bool(user.is_active and user.is_staff and sees_all_keys(user))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._allowed(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return self._allowed(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --- API keys ------------------------------------------------------------------------------------


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return list(ApiKeyStatus.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        return queryset.filter(status_condition(value)) if value in ApiKeyStatus.values else queryset


class ApiKeyAddForm(forms.ModelForm):
    """What ``POST /api-keys`` takes, for a chosen owner; ``deployment_ids`` one UUID per line (or commas)."""

    deployment_ids = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Deployment ids the key may call, one per line; empty: every deployment its owner may call.",
    )

    class Meta:
        model = ApiKey
        fields = ("owner", "name", "expires_at")

    def clean_deployment_ids(self) -> list[str]:
        import uuid

        raw = [part for part in re.split(r"[\s,]+", self.cleaned_data.get("deployment_ids") or "") if part]
        try:
            ids = list(dict.fromkeys(uuid.UUID(part) for part in raw))
        except ValueError:
            raise forms.ValidationError("Give deployment ids (UUIDs), one per line.") from None
        if len(ids) > services.MAX_KEY_DEPLOYMENTS:
            raise forms.ValidationError(f"At most {services.MAX_KEY_DEPLOYMENTS} deployments per key.")
        try:
            check_deployments(ids)
        except AppError as exc:
            raise forms.ValidationError(exc.message) from None
        return [str(i) for i in ids]

    def clean_expires_at(self) -> Any:
        value = self.cleaned_data.get("expires_at")
        if value is not None and value <= timezone.now():
            raise forms.ValidationError("Must be in the future.")
        return value


@admin.register(ApiKey)
class ApiKeyAdmin(_AdminsOnly, admin.ModelAdmin):
    list_display = ("name", "shown_prefix", "owner", "status", "last_used_at", "expires_at", "created_at")
    list_filter = (StatusFilter,)
    search_fields = ("name", "prefix", "owner__username")
    list_select_related = ("owner",)
    actions = ["revoke"]
    list_per_page = 50
    date_hierarchy = "created_at"
    # Everything but the hash; a key is immutable once made (revoke it and make another).
    fields = (
        "name",
        "shown_prefix",
        "owner",
        "status",
        "deployment_ids",
        "expires_at",
        "revoked_at",
        "last_used_at",
        "created_at",
    )
    readonly_fields = fields

    @admin.display(description="prefix", ordering="prefix")
    def shown_prefix(self, obj: ApiKey) -> str:
        return visible_prefix(obj)

    @admin.display(description="status")
    def status(self, obj: ApiKey) -> str:
        return key_status(obj)

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> Any:
        return ("owner", "name", "deployment_ids", "expires_at") if obj is None else self.fields

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> Any:
        return () if obj is None else self.readonly_fields

    def get_form(self, request: HttpRequest, obj: ApiKey | None = None, **kwargs: Any) -> type[forms.ModelForm]:
        if obj is None:
            kwargs["form"] = ApiKeyAddForm
            kwargs["fields"] = ("owner", "name", "deployment_ids", "expires_at")
        return super().get_form(request, obj, **kwargs)

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            return  # every field is read-only: nothing to save
        data = form.cleaned_data
        key, secret = services.api_key_create(
            owner=data["owner"],
            name=data["name"],
            deployment_ids=data.get("deployment_ids") or [],
            expires_at=data.get("expires_at"),
        )
        obj.pk = key.pk
        obj.refresh_from_db()
        self.message_user(
            request,
            f"The secret of {visible_prefix(key)}… is {secret} - copy it now: it is not stored and will not be "
            "shown again.",
            messages.WARNING,
        )

    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet) -> None:
        revoked = 0
        for key in queryset.filter(revoked_at__isnull=True):
            services.api_key_revoke(key)
            revoked += 1
        self.message_user(request, f"{revoked} API key(s) revoked.", messages.SUCCESS)


# --- Provider credentials ------------------------------------------------------------------------

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ProviderCredentialForm(forms.ModelForm):
    api_key = forms.CharField(
        label="API key",
        required=False,
        strip=True,
        max_length=4096,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted and never shown. Leave blank to keep the stored key.",
    )
    clear_api_key = forms.BooleanField(label="Remove the stored key", required=False)

    class Meta:
        model = ProviderCredential
        fields = ("provider", "adapter", "base_url", "api_key_env")

    def clean_base_url(self) -> str:
        value = (self.cleaned_data.get("base_url") or "").strip()
        if value:
            URLValidator(schemes=["http", "https"])(value)
        return value.rstrip("/")

    def clean_api_key_env(self) -> str:
        value = (self.cleaned_data.get("api_key_env") or "").strip()
        if value and not _ENV_NAME.match(value):
            raise forms.ValidationError("An environment variable name: letters, digits and underscores.")
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("api_key") and data.get("api_key_env"):
            raise forms.ValidationError("Either type the key or name an environment variable holding it, not both.")
        if data.get("api_key") and data.get("clear_api_key"):
            raise forms.ValidationError("Either type a new key or remove the stored one, not both.")
        return data


@admin.register(ProviderCredential)
class ProviderCredentialAdmin(_AdminsOnly, admin.ModelAdmin):
    form = ProviderCredentialForm
    list_display = ("provider", "adapter", "base_url", "api_key_env", "key_state", "updated_at")
    list_filter = ("adapter",)
    fields = ("provider", "adapter", "base_url", "api_key", "clear_api_key", "api_key_env", "key_state")
    readonly_fields = ("key_state",)

    @admin.display(description="key")
    def key_state(self, obj: ProviderCredential) -> str:
        if obj.pk is None:
            return "-"
        if obj.api_key_env:
            return f"from ${obj.api_key_env}" + ("" if services.credential_api_key(obj) else " (not set)")
        if obj.api_key_encrypted:
            return "stored" if services.credential_api_key(obj) else "stored, unreadable: enter it again"
        return "none" if obj.adapter != "simulated" else "none needed (simulated)"

    def save_model(self, request: HttpRequest, obj: ProviderCredential, form: Any, change: bool) -> None:
        data = form.cleaned_data
        if data.get("api_key"):
            services.credential_set_key(obj, data["api_key"])
        elif data.get("clear_api_key") or data.get("api_key_env"):
            services.credential_set_key(obj, "")  # the environment variable wins: keep no unused secret
        super().save_model(request, obj, form, change)
