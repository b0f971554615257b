"""Periodic analytics jobs (scheduled in ``settings.CELERY_BEAT_SCHEDULE``); each is idempotent.

Tasks are thin: they call services (imported here at the top; services enqueue tasks by a local
import, so the two modules never import each other at load time).
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from analytics import rollup as rollups
from analytics import services
from analytics.selectors.dashboard import dashboard
from modelhub.realtime import send_now


@shared_task(name="analytics.rollup", acks_late=True)
def rollup() -> dict[str, Any]:
    """Recompute every (model, hour) with new or late events, and the days they fall in."""
    return rollups.rollup().as_dict()


@shared_task(name="analytics.check_alerts", acks_late=True)
def check_alerts() -> dict[str, int]:
    """Open, refresh and resolve threshold alerts; a change pushes a dashboard update."""
    result = services.check_alerts()
    if result["opened"] or result["resolved"]:
        services.dashboard_changed()
    return result


@shared_task(name="analytics.publish_dashboard", acks_late=True)
def publish_dashboard() -> None:
    """Send ``dashboard:update`` (the DashboardResponse) to every client allowed to read analytics."""
    send_now("dashboard:update", dashboard())


@shared_task(name="analytics.prune", acks_late=True)
def prune() -> dict[str, int]:
    """Retention: delete what is past it, and refresh the figures computed from what is left."""
    return services.prune()


@shared_task(name="analytics.ensure_partitions", acks_late=True)
def ensure_partitions() -> list[str]:
    """PostgreSQL: the raw events' daily partitions, created ahead (and back to raw retention)."""
    return services.ensure_partitions()
