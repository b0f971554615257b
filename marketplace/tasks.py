"""Marketplace periodic jobs (beat schedule in ``modelhub/settings.py``); each is safe to run twice."""

from __future__ import annotations

from celery import shared_task

from marketplace import services


@shared_task(name="marketplace.purge_idempotency_keys", ignore_result=True)
def purge_idempotency_keys() -> int:
    """Hourly: delete Idempotency-Keys past their 24 hours (a second run finds none)."""
    return services.idempotency_keys_purge()


@shared_task(name="marketplace.end_periods", acks_late=True, ignore_result=True)
def end_periods() -> dict[str, int]:
    """Every 5 minutes: subscriptions at their period end are cancelled, renewed or expired."""
    return services.entitlements_end_periods()
