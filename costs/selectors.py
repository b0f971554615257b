"""Reads of the costs app: budgets, channels, notifications, and spend per scope."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet

from analytics import selectors as analytics_selectors
from catalog import selectors as catalog_selectors
from costs.models import Budget, BudgetAlert, Notification, NotificationChannel, Reservation


def budget_queryset() -> QuerySet[Budget]:
    return Budget.objects.select_related("owner").order_by("created_at", "id")


def channel_queryset() -> QuerySet[NotificationChannel]:
    return NotificationChannel.objects.select_related("owner").order_by("created_at", "id")


def notification_queryset() -> QuerySet[Notification]:
    return Notification.objects.select_related("alert", "channel").order_by("-created_at", "id")


def budget_alert_queryset() -> QuerySet[BudgetAlert]:
    return BudgetAlert.objects.select_related("budget").order_by("-fired_at", "id")


def reservation(reservation_id: str) -> Reservation | None:
    return Reservation.objects.filter(pk=reservation_id).first()


def spend_by_scope(period: str) -> dict[str, Decimal]:
    """``{"all": total, "m:<model>": ..., "p:<provider>": ..., "e:<environment>": ...}`` for a month,
    from the 1d buckets (exact sums of the events' costs, as fresh as the last rollup)."""
    from costs.enforcement import next_period_start, period_start

    rows = analytics_selectors.cost_by_day(period_start(period), next_period_start(period))
    providers = {pk: m.provider for pk, m in catalog_selectors.models_in_bulk({r["modelId"] for r in rows}).items()}
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for row in rows:
        cost = row["cost"] or Decimal(0)
        totals["all"] += cost
        totals[f"m:{row['modelId']}"] += cost
        totals[f"p:{providers.get(row['modelId'], '')}"] += cost
        totals[f"e:{row['environment']}"] += cost
    return dict(totals)


def scope_spend_now(period: str, scopes: list[str]) -> dict[str, Any]:
    """Each scope's counter (reserved + settled, units) and its held part, from the ledger (None if unknown)."""
    from costs.ledger import counter_key, get_ledger

    keys = [counter_key(period, s) for s in scopes]
    ledger = get_ledger()
    values, held = ledger.values(keys), ledger.held(keys)
    return {s: (v, h) for s, v, h in zip(scopes, values, held, strict=True)}
