"""Admin for costs: budgets and channels (edited through the services' rules), the outbox with its
delivery status and attempts (retry now), fired alerts and reservations (read-only)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.utils import timezone

from costs import services
from costs.constants import MAX_BUDGETS, DeliveryStatus
from costs.models import Budget, BudgetAlert, Notification, NotificationChannel, Reservation
from modelhub.api.admin import RoleMatrixAdminMixin
from modelhub.api.exceptions import AppError

_MANAGE = {"view": "costs.read", "add": "budgets.manage", "change": "budgets.manage", "delete": "budgets.manage"}


class ReadOnlyAdmin(RoleMatrixAdminMixin, admin.ModelAdmin):
    matrix_permissions = {"view": "costs.read", "add": None, "change": None, "delete": None}


def _error_lines(detail: Any) -> list[str]:
    """A serializer's errors as "path: message" lines (the API's field paths)."""
    from modelhub.api.exceptions import validation_details

    fields = validation_details(detail)[2]["fields"]
    return [f"{path}: {message}" for path, msgs in fields.items() for message in msgs]


class BudgetForm(forms.ModelForm):
    """The API's rules in the admin: the body is checked by ``BudgetRequestSerializer`` and the references
    (channels, models, reroute deployments) by the service's checks; errors are shown on the form."""

    class Meta:
        model = Budget
        fields = ("name", "monthly_budget", "alerts", "categories")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("alerts", "categories"):  # [] and {} are values here (the serializer decides)
            self.fields[name].required = False

    def clean(self) -> dict[str, Any]:
        from costs.serializers import BudgetRequestSerializer

        cleaned = super().clean()
        if self.errors:
            return cleaned
        body = {
            "name": cleaned.get("name") or "",
            "monthlyBudget": float(cleaned["monthly_budget"]),  # its bounds; the exact Decimal is kept below
            "alerts": [] if cleaned.get("alerts") is None else cleaned["alerts"],
            "categories": {} if cleaned.get("categories") is None else cleaned["categories"],
        }
        serializer = BudgetRequestSerializer(data=body)
        if not serializer.is_valid():
            raise forms.ValidationError(_error_lines(serializer.errors))
        data = {**serializer.validated_data, "monthly_budget": cleaned["monthly_budget"]}
        if self.instance._state.adding and Budget.objects.count() >= MAX_BUDGETS:
            raise forms.ValidationError(f"At most {MAX_BUDGETS} budgets.")
        try:
            services._check_references(data["alerts"], data["categories"])
        except AppError as exc:
            raise forms.ValidationError([exc.message, *_error_lines((exc.details or {}).get("fields", {}))]) from None
        self.validated = data
        return cleaned


@admin.register(Budget)
class BudgetAdmin(RoleMatrixAdminMixin, admin.ModelAdmin):
    """Saved through ``costs.services`` (budget_create / budget_update / budget_delete), as the API does."""

    matrix_permissions = _MANAGE
    form = BudgetForm
    list_display = ("name", "monthly_budget", "owner", "updated_at")
    readonly_fields = ("owner", "created_at", "updated_at")

    def save_model(self, request, obj, form, change):
        data = form.validated
        try:
            if change:
                saved = services.budget_update(budget=obj, actor=request.user, **data)
            else:
                saved = services.budget_create(actor=request.user, **data)
        except AppError as exc:  # e.g. the budget count limit (409), raced past the form's checks
            self.message_user(request, exc.message, messages.ERROR)
            return
        obj.pk, obj.owner_id = saved.pk, saved.owner_id

    def delete_model(self, request, obj):
        services.budget_delete(budget=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for budget in queryset:
            services.budget_delete(budget=budget, actor=request.user)


class ChannelForm(forms.ModelForm):
    """``target`` is write-only (a Slack or webhook URL is a credential): never rendered back, blank on a
    change keeps the current one; checked by ``ChannelRequestSerializer`` like the API's writes."""

    target = forms.CharField(
        max_length=500,
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Write-only: an email address, or a Slack / webhook URL. Blank keeps the current one.",
    )

    class Meta:
        model = NotificationChannel
        fields = ("name", "type", "target")

    def clean(self) -> dict[str, Any]:
        from costs.serializers import ChannelRequestSerializer

        cleaned = super().clean()
        if self.errors:
            return cleaned
        if not cleaned.get("target"):
            if self.instance._state.adding:
                raise forms.ValidationError({"target": "Required."})
            cleaned["target"] = self.instance.target
        body = {"name": cleaned["name"], "type": cleaned["type"], "target": cleaned["target"]}
        if self.instance.secret:
            body["secret"] = self.instance.secret  # set through the API only
        serializer = ChannelRequestSerializer(data=body)
        if not serializer.is_valid():
            raise forms.ValidationError(_error_lines(serializer.errors))
        return cleaned


@admin.register(NotificationChannel)
class ChannelAdmin(RoleMatrixAdminMixin, admin.ModelAdmin):
    matrix_permissions = {**_MANAGE, "view": "budgets.manage"}
    form = ChannelForm
    list_display = ("name", "type", "masked_target", "owner", "created_at")
    list_filter = ("type",)
    readonly_fields = ("masked_target", "owner")  # the secret is set through the API; never shown

    @admin.display(description="target")
    def masked_target(self, obj) -> str:
        from costs.serializers import masked_target

        return masked_target(obj) if obj is not None and obj.pk and obj.target else ""

    def save_model(self, request, obj, form, change):
        fields = {k: form.cleaned_data[k] for k in ("name", "type", "target")}
        try:
            if change:
                services.channel_update(channel=obj, actor=request.user, **fields)
            else:
                saved = services.channel_create(actor=request.user, **fields)
                obj.pk, obj.owner_id = saved.pk, saved.owner_id
        except AppError as exc:  # e.g. the channel count limit (409)
            self.message_user(request, exc.message, messages.ERROR)


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
