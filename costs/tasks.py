"""Periodic costs jobs (``settings.CELERY_BEAT_SCHEDULE``) and the after-commit delivery; each idempotent."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from costs import services


@shared_task(name="costs.reconcile", acks_late=True)
def reconcile() -> dict[str, int]:
    """Settle authorized reservations by their events; raise counters to the recorded spend."""
    return services.reconcile()


@shared_task(name="costs.evaluate_budgets", acks_late=True)
def evaluate_budgets() -> dict[str, int]:
    """Every budget against all spend; each threshold fires once per period (and writes its outbox rows)."""
    return services.evaluate_budgets()


@shared_task(name="costs.deliver_notifications", acks_late=True)
def deliver_notifications(ids: list[Any]) -> dict[str, str]:
    """Send outbox rows just written (after their alert committed); failures wait for the sweeper."""
    return {str(pk): services.deliver(pk) for pk in ids}


@shared_task(name="costs.sweep_outbox", acks_late=True)
def sweep_outbox() -> dict[str, int]:
    """Send due outbox rows: lost sends and retries after their backoff."""
    return services.sweep_outbox()


@shared_task(name="costs.refresh_cost_days", acks_late=True)
def refresh_cost_days() -> dict[str, int]:
    """The analysis's daily opportunity figures: today, yesterday and any retained day still missing."""
    return services.refresh_cost_days()
