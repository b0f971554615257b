"""The costs rows' objects and bodies for tests/api/test_role_matrix.py (kept here so that shared file
needs only a few lines)."""

from __future__ import annotations

from decimal import Decimal

PLACEHOLDERS = ("budget", "channel", "notification", "reservation")
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def _channel(owner):
    from costs import services

    return services.channel_create(
        actor=owner, name="ops", type="webhook", target="https://hooks.example.com/x", secret=WEBHOOK_SECRET
    )


def _budget(owner):
    from costs import services

    return services.budget_create(
        actor=owner,
        monthly_budget=Decimal("100"),
        alerts=[{"threshold": 80, "action": "notify", "channels": []}],
        categories={},
    )


def _notification(owner):
    from django.utils import timezone

    from costs.models import BudgetAlert, Notification

    budget, channel = _budget(owner), _channel(owner)
    alert = BudgetAlert.objects.create(
        budget=budget,
        period="2026-12",
        scope="all",
        threshold=80,
        action="notify",
        spend=80,
        limit=100,
        message="m",
        fired_at=timezone.now(),
    )
    return Notification.objects.create(alert=alert, channel=channel, payload={}, next_attempt_at=timezone.now())


def objects(template: str, personas, role) -> dict:
    owner = personas["admin"]
    out = {}
    if "{budget}" in template:
        out["budget"] = _budget(owner).pk
    if "{channel}" in template:
        out["channel"] = _channel(owner).pk
    if "{notification}" in template:
        out["notification"] = _notification(owner).pk
    if "{reservation}" in template:  # DELETE is own only: the caller's own reservation
        out["reservation"] = _reservation(personas[role]).pk
    return out


def _reservation(owner):
    from datetime import timedelta

    from django.utils import timezone

    from costs.enforcement import new_hold_id
    from costs.models import Reservation

    return Reservation.objects.create(
        id=new_hold_id(),
        model_id="00000000-0000-4000-8000-000000000000",
        environment="production",
        scopes=["all"],
        amount=Decimal("0.5"),
        owner=owner,
        expires_at=timezone.now() + timedelta(minutes=10),
    )


def body(name: str, *, model, caller):
    if name == "costs-budget-body":
        return {
            "monthlyBudget": 500,
            "alerts": [{"threshold": 80, "action": "notify", "channels": ["email"]}],
            "categories": {"models": {str(model.pk): 100}, "environments": {"production": 400}},
        }
    if name == "costs-channel-body":
        return {"name": "ops mail", "type": "email", "target": "ops@example.com"}
    if name == "costs-authorize-body":
        return {"modelId": str(model.pk), "environment": "production", "estimatedTokens": 1000}
    raise KeyError(name)
