"""Deployments in the Django admin: browse, see each one's history, stop - through the same services as the API.

Deployments are created and reconfigured through the API (their configuration has
rules a generic form cannot state); the admin shows them read-only and offers the
stop action, which is the API's DELETE.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from deployments import services
from deployments.models import Deployment, DeploymentTransition
from modelhub.api.admin import RoleMatrixAdminMixin
from modelhub.api.exceptions import AppError


class DeploymentTransitionInline(RoleMatrixAdminMixin, admin.TabularInline):
    """The deployment's lifecycle, newest first, read-only."""

    matrix_permissions = {"view": "deployments.read"}
    model = DeploymentTransition
    extra = 0
    can_delete = False
    fields = ("created_at", "from_status", "to_status", "replicas", "actor_username", "reason")
    readonly_fields = fields
    ordering = ("-created_at", "-id")


@admin.register(Deployment)
class DeploymentAdmin(RoleMatrixAdminMixin, admin.ModelAdmin):
    # "change" only unlocks the stop action; every field stays read-only.
    matrix_permissions = {"view": "deployments.read", "change": "deployments.delete"}
    list_display = (
        "id",
        "model",
        "version",
        "environment",
        "status",
        "replicas",
        "owner",
        "created_at",
        "last_health_check",
    )
    list_filter = ("status", "environment", "model__provider")
    search_fields = ("=id", "model__name", "owner__username", "status_reason")
    list_select_related = ("model", "owner")
    inlines = [DeploymentTransitionInline]
    actions = ["stop"]
    list_per_page = 50
    date_hierarchy = "created_at"

    def get_readonly_fields(self, request: HttpRequest, obj: Deployment | None = None) -> list[str]:
        return [field.name for field in Deployment._meta.fields]

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # deployments are kept for history; stop them instead

    def save_model(self, request: HttpRequest, obj: Deployment, form: Any, change: bool) -> None:
        """Every field is read-only here: a save changes nothing (configuration goes through the API)."""

    @admin.action(description="Stop selected deployments", permissions=["change"])
    def stop(self, request: HttpRequest, queryset: QuerySet) -> None:
        stopped = 0
        for deployment in queryset:
            try:
                was_live = deployment.is_live
                services.deployment_stop(deployment=deployment, actor=request.user, reason="Stopped in the admin.")
                stopped += was_live
            except AppError as exc:
                self.message_user(request, f"{deployment}: {exc.message}", messages.ERROR)
        self.message_user(request, f"{stopped} deployment(s) stopped.", messages.SUCCESS)


@admin.register(DeploymentTransition)
class DeploymentTransitionAdmin(RoleMatrixAdminMixin, admin.ModelAdmin):
    """Every lifecycle step of every deployment: read-only."""

    matrix_permissions = {"view": "deployments.read"}
    list_display = ("created_at", "deployment", "from_status", "to_status", "replicas", "actor_username", "reason")
    list_filter = ("to_status", "from_status")
    search_fields = ("=deployment__id", "actor_username", "reason")
    list_select_related = ("deployment",)
    date_hierarchy = "created_at"

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
