"""Users in the Django admin, through the same services (and rules) as the API."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.http import HttpRequest

from modelhub.accounts import services
from modelhub.accounts.limits import endpoint_errors
from modelhub.accounts.models import RateLimitOverride, User
from modelhub.api.admin import RoleMatrixAdminMixin
from modelhub.api.exceptions import AppError
from modelhub.roles import Grant, grant_for


@admin.register(User)
class UserAdmin(RoleMatrixAdminMixin, DjangoUserAdmin):
    matrix_permissions = {"view": "users.manage", "add": "users.manage", "change": "users.manage", "delete": None}
    list_display = ("username", "email", "role", "is_active", "is_staff", "last_login")
    list_filter = ("role", "is_active")
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Profile", {"fields": ("first_name", "last_name", "email")}),
        ("Access", {"fields": ("role", "is_active")}),
        ("History", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("username", "role", "password1", "password2")}),)
    readonly_fields = ("last_login", "date_joined")
    search_fields = ("username", "email")

    def get_form(self, request: HttpRequest, obj: User | None = None, **kwargs: Any) -> type[forms.ModelForm]:
        base = super().get_form(request, obj, **kwargs)
        actor = request.user

        class RoleCheckedForm(base):  # type: ignore[misc, valid-type]
            def clean(self) -> dict[str, Any]:
                data = super().clean()
                try:
                    services.check_user_change(
                        actor=actor, target=obj, role=data.get("role"), is_active=data.get("is_active")
                    )
                except AppError as exc:
                    raise forms.ValidationError(exc.message) from None
                return data

        return RoleCheckedForm

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        data = form.cleaned_data
        if change:
            saved = services.user_update(
                actor=request.user,
                user=obj,
                **{k: data[k] for k in ("email", "first_name", "last_name", "role", "is_active") if k in data},
            )
        else:
            saved = services.user_create(
                actor=request.user,
                username=data["username"],
                password=data["password1"],
                role=data.get("role") or "viewer",
            )
        obj.pk = saved.pk
        obj.refresh_from_db()


@admin.register(RateLimitOverride)
class RateLimitOverrideAdmin(RoleMatrixAdminMixin, admin.ModelAdmin):
    """Per-user rate-limit overrides (admins only), saved through the same service as the API."""

    matrix_permissions = {
        "view": "ratelimits.manage",
        "add": "ratelimits.manage",
        "change": "ratelimits.manage",
        "delete": "ratelimits.manage",
    }
    list_display = (
        "user",
        "requests_per_minute",
        "requests_per_hour",
        "requests_per_day",
        "burst_limit",
        "updated_at",
        "updated_by",
    )
    search_fields = ("user__username",)
    readonly_fields = ("updated_at", "updated_by")
    autocomplete_fields = ("user",)

    def get_form(
        self, request: HttpRequest, obj: RateLimitOverride | None = None, **kwargs: Any
    ) -> type[forms.ModelForm]:
        base = super().get_form(request, obj, **kwargs)
        actor = request.user

        class CheckedForm(base):  # type: ignore[misc, valid-type]
            def clean(self) -> dict[str, Any]:
                data = super().clean()
                problems = endpoint_errors(data.get("endpoints") or {})
                if problems:
                    raise forms.ValidationError(problems)
                if grant_for(getattr(actor, "role", None), "ratelimits.manage") is Grant.NONE:
                    raise forms.ValidationError("Only admins change rate limits.")
                return data

        return CheckedForm

    def save_model(self, request: HttpRequest, obj: RateLimitOverride, form: Any, change: bool) -> None:
        fields = {
            name: form.cleaned_data.get(name)
            for name in ("requests_per_minute", "requests_per_hour", "requests_per_day", "burst_limit", "endpoints")
        }
        saved = services.rate_limit_override_set(
            actor=request.user, user=form.cleaned_data["user"], replace=True, **fields
        )
        obj.pk = saved.pk
        obj.refresh_from_db()

    def delete_model(self, request: HttpRequest, obj: RateLimitOverride) -> None:
        services.rate_limit_override_clear(actor=request.user, user=obj.user)
