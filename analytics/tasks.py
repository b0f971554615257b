"""Periodic analytics jobs (scheduled in ``settings.CELERY_BEAT_SCHEDULE``); each is idempotent."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery import shared_task
from django.conf import settings
from django.utils import timezone

logger = logging.getLogger(__name__)


@shared_task(name="analytics.rollup", acks_late=True)
def rollup() -> dict[str, Any]:
    """Recompute every (model, hour) with new or late events, and the days they fall in."""
    from analytics.rollup import rollup as run

    return run().as_dict()


@shared_task(name="analytics.check_alerts", acks_late=True)
def check_alerts() -> dict[str, int]:
    """Open, refresh and resolve threshold alerts; a change pushes a dashboard update."""
    from analytics.services import check_alerts as run
    from analytics.services import dashboard_changed

    result = run()
    if result["opened"] or result["resolved"]:
        dashboard_changed()
    return result


@shared_task(name="analytics.publish_dashboard", acks_late=True)
def publish_dashboard() -> None:
    """Send ``dashboard:update`` (the DashboardResponse) to every client allowed to read analytics."""
    from analytics.selectors import dashboard
    from modelhub.realtime import send_now

    send_now("dashboard:update", dashboard())


@shared_task(name="analytics.prune", acks_late=True)
def prune() -> dict[str, int]:
    """Delete raw events, rollups and resolved alerts past their retention; refresh catalog usage figures
    (popularity, rating) and the cached distinct-user counts."""
    from analytics.models import Alert, DirtyHour, MetricBucket, UsageEvent
    from analytics.rollup import refresh_model_stats
    from analytics.selectors import refresh_unique_users

    now = timezone.now()
    retention = settings.ANALYTICS_RETENTION_DAYS
    deleted: dict[str, int] = {}
    cutoff = now - timedelta(days=retention["raw"])
    total = 0
    while True:  # in chunks, so no single statement holds locks on millions of rows
        ids = list(UsageEvent.objects.filter(timestamp__lt=cutoff).values_list("pk", flat=True)[:10_000])
        if not ids:
            break
        total += UsageEvent.objects.filter(pk__in=ids).delete()[0]
    deleted["raw"] = total
    DirtyHour.objects.filter(hour__lt=cutoff - timedelta(hours=1)).delete()
    for granularity, days in retention.items():
        if granularity != "raw":
            deleted[granularity] = MetricBucket.objects.filter(
                granularity=granularity, bucket_start__lt=now - timedelta(days=days)
            ).delete()[0]
    deleted["alerts"] = Alert.objects.filter(resolved_at__lt=now - timedelta(days=retention["1h"])).delete()[0]
    refresh_model_stats(now=now)
    refresh_unique_users()
    logger.info("analytics prune: %s", deleted)
    return deleted
