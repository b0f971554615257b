"""Registration and governance in the Django admin - through the same services as the API."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from catalog import services
from catalog.models import GovernanceEvent, ModelRegistry, ModelStatus
from modelhub.api.admin import ListFieldsAdminMixin, RoleMatrixAdminMixin
from modelhub.api.exceptions import AppError

_EDITABLE = sorted(services.WRITABLE_FIELDS)


class GovernanceEventInline(RoleMatrixAdminMixin, admin.TabularInline):
    """The model's governance history, read-only."""

    matrix_permissions = {"view": "models.read"}
    model = GovernanceEvent
    extra = 0
    can_delete = False
    fields = ("created_at", "field", "from_value", "to_value", "actor_username", "reason")
    readonly_fields = fields
    ordering = ("-created_at",)


@admin.register(ModelRegistry)
class ModelRegistryAdmin(ListFieldsAdminMixin, RoleMatrixAdminMixin, admin.ModelAdmin):
    list_fields = ("capabilities", "supported_tasks", "input_formats", "output_formats", "tags", "compliance")
    matrix_permissions = {
        "view": "models.read",
        "add": "models.create",
        "change": "models.update",
        "delete": "models.delete",
    }
    list_display = (
        "name",
        "version",
        "provider",
        "model_type",
        "status",
        "security_level",
        "owner",
        "last_validated_at",
        "updated_at",
    )
    list_filter = ("provider", "model_type", "status", "security_level", "category")
    search_fields = ("name", "version", "description", "category")
    readonly_fields = ("owner", "created_at", "updated_at", "last_validated_at", "popularity", "avg_rating")
    list_select_related = ("owner",)
    inlines = [GovernanceEventInline]
    actions = ["activate", "deprecate", "put_into_maintenance", "mark_validated"]
    list_per_page = 50

    def get_readonly_fields(self, request: HttpRequest, obj: ModelRegistry | None = None) -> tuple[str, ...]:
        # name and version identify a registered model; a new version is a new registration.
        return self.readonly_fields + (("name", "version") if obj else ())

    def save_model(self, request: HttpRequest, obj: ModelRegistry, form: Any, change: bool) -> None:
        fields = {name: form.cleaned_data[name] for name in _EDITABLE if name in form.cleaned_data}
        if change:
            saved = services.model_update(
                model=obj, actor=request.user, **{k: v for k, v in fields.items() if k not in ("name", "version")}
            )
        else:
            saved = services.model_register(actor=request.user, **fields)
        obj.pk = saved.pk
        obj.refresh_from_db()

    def delete_model(self, request: HttpRequest, obj: ModelRegistry) -> None:
        try:
            services.model_delete(model=obj, actor=request.user)
        except AppError as exc:
            self.message_user(request, f"{obj}: {exc.message}", messages.ERROR)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for obj in queryset:
            self.delete_model(request, obj)

    def _set_status(self, request: HttpRequest, queryset: QuerySet, status: str) -> None:
        changed = 0
        for obj in queryset:
            try:
                services.model_set_status(model=obj, status=status, actor=request.user, reason="admin action")
                changed += 1
            except AppError as exc:
                self.message_user(request, f"{obj}: {exc.message}", messages.ERROR)
        self.message_user(request, f"{changed} model(s) set to {status}.", messages.SUCCESS)

    @admin.action(description="Activate selected models", permissions=["change"])
    def activate(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_status(request, queryset, ModelStatus.ACTIVE)

    @admin.action(description="Deprecate selected models", permissions=["change"])
    def deprecate(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_status(request, queryset, ModelStatus.DEPRECATED)

    @admin.action(description="Put selected models into maintenance", permissions=["change"])
    def put_into_maintenance(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_status(request, queryset, ModelStatus.MAINTENANCE)

    @admin.action(description="Mark selected models as validated now", permissions=["change"])
    def mark_validated(self, request: HttpRequest, queryset: QuerySet) -> None:
        for obj in queryset:
            services.model_mark_validated(model=obj, actor=request.user, reason="admin action")
        self.message_user(request, f"{queryset.count()} model(s) marked validated.", messages.SUCCESS)


@admin.register(GovernanceEvent)
class GovernanceEventAdmin(RoleMatrixAdminMixin, admin.ModelAdmin):
    """The audit trail: read-only for everyone."""

    matrix_permissions = {"view": "models.update"}
    list_display = ("created_at", "model_label", "field", "from_value", "to_value", "actor_username", "reason")
    list_filter = ("field",)
    search_fields = ("model_label", "actor_username", "reason")
    date_hierarchy = "created_at"
