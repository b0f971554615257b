"""Admin for costs: budgets and channels (edited through the services' rules), the outbox with its
delivery status and attempts (retry now), fired alerts and reservations (read-only)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.utils import timezone

from costs import enforcement
from costs.constants import DeliveryStatus
from costs.models import Budget, BudgetAlert, Notification, NotificationChannel, Reservation
from modelhub.api.admin import RoleMatrixAdminMixin

_MANAGE = {"view": "costs.read", "add": "budgets.manage", "change": "budgets.manage", "delete": "budgets.manage"}


class ReadOnlyAdmin(RoleMatrixAdminMixin, admin.ModelAdmin):
    matrix_permissions = {"view": "costs.read", "add": None, "change": None, "delete": None}


@admin.register(Budget)
class BudgetAdmin(RoleMatrixAdminMixin, admin.ModelAdmin):
    matrix_permissions = _MANAGE
    list_display = ("name", "monthly_budget", "owner", "updated_at")
    readonly_fields = ("created_at", "updated_at")

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        enforcement.rules_cache.clear()

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        enforcement.rules_cache.clear()


@admin.register(NotificationChannel)
class ChannelAdmin(RoleMatrixAdminMixin, admin.ModelAdmin):
    matrix_permissions = {**_MANAGE, "view": "budgets.manage"}
    list_display = ("name", "type", "target", "owner", "created_at")
    list_filter = ("type",)
    exclude = ("secret",)  # set through the API; never shown


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    matrix_permissions = {**ReadOnlyAdmin.matrix_permissions, "change_outbox": "budgets.manage"}
    list_display = ("id", "channel", "status", "attempts", "next_attempt_at", "sent_at", "last_error")
    list_filter = ("status", "channel__type")
    list_select_related = ("channel",)
    actions = ["retry_now"]

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        # the list's retry action, never the form
        return obj is None and RoleMatrixAdminMixin._allowed(self, request, "change_outbox")

    @admin.action(description="Retry now (pending and failed)")
    def retry_now(self, request, queryset):
        count = queryset.filter(status__in=[DeliveryStatus.PENDING, DeliveryStatus.FAILED]).update(
            status=DeliveryStatus.PENDING, next_attempt_at=timezone.now()
        )
        self.message_user(request, f"{count} notification(s) due now; the sweeper sends them.", messages.SUCCESS)


@admin.register(BudgetAlert)
class BudgetAlertAdmin(ReadOnlyAdmin):
    list_display = ("budget", "period", "scope", "threshold", "action", "spend", "limit", "fired_at")
    list_filter = ("period", "action")


@admin.register(Reservation)
class ReservationAdmin(ReadOnlyAdmin):
    list_display = ("id", "model_id", "environment", "amount", "status", "settled_cost", "expires_at")
    list_filter = ("status",)
