"""Budgets, notification channels, authorized reservations, fired budget alerts and their outbox.

* :class:`NotificationChannel` - where alerts go: ``email`` (an address), ``slack`` (an incoming-webhook
  URL) or ``webhook`` (a URL, signed per Standard Webhooks with the channel's ``secret``).
* :class:`Budget` - the spec's ``BudgetRequest``: a monthly limit on all spend, per-model /
  per-provider / per-environment limits (``categories``) and ``alerts`` (thresholds in % of each
  limit with an action: notify, throttle, block, or the extension reroute).
* :class:`Reservation` - a ``POST /cost/authorize`` hold, settled by an ingested event carrying its id.
* :class:`BudgetAlert` - a threshold crossed in one period; unique per (budget, period, scope,
  threshold), so it fires at most once.
* :class:`Notification` - the outbox: one row per (alert, channel), written in the alert's transaction.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from costs.constants import ChannelType, DeliveryStatus, ReservationStatus


class NotificationChannel(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    type = models.CharField(max_length=16, choices=ChannelType.choices)
    target = models.CharField(max_length=500)  # an email address or a URL
    secret = models.CharField(max_length=200, blank=True)  # webhooks: "whsec_<base64>"; never returned
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="cost_channels")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.CheckConstraint(condition=Q(type__in=ChannelType.values), name="costs_channel_type")]

    def __str__(self) -> str:
        return f"{self.type}: {self.name}"


class Budget(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, blank=True)
    monthly_budget = models.DecimalField(max_digits=18, decimal_places=8)
    # [{"threshold": 80, "action": "notify", "channels": [...], "rerouteTo"?: uuid, "throttleFactor"?: 0.5}]
    alerts = models.JSONField(default=list)
    # {"models": {model id: limit}, "providers": {provider: limit}, "environments": {env: limit}}
    categories = models.JSONField(default=dict)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="budgets")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.CheckConstraint(condition=Q(monthly_budget__gt=0), name="costs_budget_positive")]

    def __str__(self) -> str:
        return f"{self.name or self.pk}: {self.monthly_budget}/month"


class Reservation(models.Model):
    """A hold taken by ``POST /cost/authorize``; the id travels in the later event's ``reservationId``."""

    id = models.CharField(primary_key=True, max_length=64)
    model_id = models.UUIDField()
    environment = models.CharField(max_length=16)
    scopes = models.JSONField(default=list)  # the counter scopes it holds ("all", "m:<id>", "p:<provider>", "e:<env>")
    amount = models.DecimalField(max_digits=18, decimal_places=8)
    status = models.CharField(max_length=16, choices=ReservationStatus.choices, default=ReservationStatus.OPEN)
    settled_cost = models.DecimalField(max_digits=18, decimal_places=8, null=True, blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="cost_reservations")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "expires_at"], name="costs_reservation_open_idx")]

    def __str__(self) -> str:
        return f"{self.pk} {self.status}"


class BudgetAlert(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="fired_alerts")
    period = models.CharField(max_length=7)  # "YYYY-MM"
    scope = models.CharField(max_length=64)  # "all", "m:<model id>", "p:<provider>", "e:<environment>"
    threshold = models.DecimalField(max_digits=7, decimal_places=3)  # % of the scope's limit
    action = models.CharField(max_length=16)
    spend = models.DecimalField(max_digits=20, decimal_places=8)
    limit = models.DecimalField(max_digits=20, decimal_places=8)
    message = models.CharField(max_length=500)
    fired_at = models.DateTimeField()

    class Meta:
        ordering = ["-fired_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["budget", "period", "scope", "threshold"], name="costs_alert_once_per_period"
            )
        ]

    def __str__(self) -> str:
        return f"{self.budget_id} {self.period} {self.scope} {self.threshold}%"


class Notification(models.Model):
    """The outbox: written with its alert, sent after commit, retried with backoff by the sweeper."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)  # also the webhook-id
    alert = models.ForeignKey(BudgetAlert, on_delete=models.CASCADE, related_name="notifications")
    channel = models.ForeignKey(NotificationChannel, on_delete=models.CASCADE, related_name="notifications")
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["alert", "channel"], name="costs_notification_once")]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="costs_outbox_due_idx")]

    def __str__(self) -> str:
        return f"{self.channel_id} {self.status} ({self.attempts})"


class CostDay(models.Model):
    """One UTC day's opportunity figures per (model, environment, useCase), recomputed from the raw events by
    ``costs.refresh_cost_days`` (idempotent: a day is replaced whole), so the analysis reads days, not events."""

    day = models.DateField()
    model_id = models.UUIDField()
    environment = models.CharField(max_length=16)
    use_case = models.CharField(max_length=100, blank=True)
    requests = models.BigIntegerField()
    successes = models.BigIntegerField()
    success_cost = models.DecimalField(max_digits=20, decimal_places=8)
    failed = models.BigIntegerField()
    failed_cost = models.DecimalField(max_digits=20, decimal_places=8)
    retries = models.BigIntegerField()
    offline_count = models.BigIntegerField()
    offline_cost = models.DecimalField(max_digits=20, decimal_places=8)
    repeat_count = models.BigIntegerField()
    repeat_cost = models.DecimalField(max_digits=20, decimal_places=8)
    accepted_count = models.BigIntegerField()
    rejected_count = models.BigIntegerField()
    rating_sum = models.BigIntegerField()
    rating_count = models.BigIntegerField()
    max_tokens = models.BigIntegerField()
    computed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "model_id", "environment", "use_case"], name="costs_day_unique")
        ]
        indexes = [models.Index(fields=["day"], name="costs_day_idx")]

    def __str__(self) -> str:
        return f"{self.day} {self.model_id} {self.environment} {self.use_case}"
