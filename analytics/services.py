"""Writes of the analytics app: the alert lifecycle (open, refresh, resolve, acknowledge), retention,
the catalog's usage figures, and the dashboard push.

Ingestion lives in :mod:`analytics.ingest` and rollups in :mod:`analytics.rollup`; the threshold
rules that decide a breach in :mod:`analytics.rules`.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import Sum
from django.utils import timezone

from analytics import generations, partitions
from analytics.metrics import bucket_start
from analytics.models import Alert, AlertStatus, DirtyHour, MetricBucket, UsageEvent, UsageEventKey
from analytics.rules import Breach, alert_breaches
from analytics.selectors.alerts import alert_event, recent_window_by_model
from analytics.selectors.usage import refresh_unique_users
from catalog import selectors as catalog_selectors
from catalog import services as catalog_services
from deployments.selectors import deployment_homes
from modelhub.api.exceptions import Conflict
from modelhub.realtime import publish

logger = logging.getLogger(__name__)


def _open(model: Any, breach: Breach, now: datetime) -> Alert | None:
    """Open an alert unless one is already unresolved (then refresh its figures). Returns the new alert."""
    try:
        with transaction.atomic():
            alert = Alert.objects.create(
                type=breach.type,
                severity=breach.severity,
                model=model,
                message=breach.message,
                metric_value=breach.value,
                threshold=breach.threshold,
                opened_at=now,
                last_checked_at=now,
            )
    except IntegrityError:  # analytics_alert_one_open: it is already open (maybe opened by a concurrent check)
        Alert.objects.filter(model=model, type=breach.type, resolved_at__isnull=True).update(
            metric_value=breach.value, last_checked_at=now, severity=breach.severity, message=breach.message
        )
        return None
    publish("alert:new", alert_event(alert))
    return alert


def _resolve(model: Any, alert_type: str, now: datetime) -> int:
    # A conditional update: whichever check gets here first resolves it; the others change nothing.
    return Alert.objects.filter(model=model, type=alert_type, resolved_at__isnull=True).update(
        status=AlertStatus.RESOLVED, resolved_at=now, last_checked_at=now
    )


def check_alerts(*, now: datetime | None = None) -> dict[str, int]:
    """Open, refresh and resolve alerts from the last few minutes of rollups. Idempotent."""
    now = now or timezone.now()
    cfg = settings.ANALYTICS_ALERTS
    windows = recent_window_by_model(cfg["window_minutes"], now=now)
    open_types = {(m, t) for m, t in Alert.objects.filter(resolved_at__isnull=True).values_list("model_id", "type")}
    models = catalog_selectors.models_in_bulk({m for m, _ in open_types} | set(windows))
    opened = resolved = 0
    for model_id, model in models.items():
        acc = windows.get(model_id, {}).get("")
        if acc is None or acc.requests < cfg["min_requests"]:
            continue  # too little traffic to judge either way: open alerts stay as they are
        breaches, recovered = alert_breaches(model, acc)
        for breach in breaches:
            opened += _open(model, breach, now) is not None
        for alert_type in recovered:
            if (model_id, alert_type) in open_types:
                resolved += _resolve(model, alert_type, now)
    return {"opened": opened, "resolved": resolved}


def alert_acknowledge(*, alert: Alert, actor: Any) -> Alert:
    """Mark an open alert acknowledged (idempotent); a resolved alert answers 409."""
    now = timezone.now()
    updated = Alert.objects.filter(pk=alert.pk, status=AlertStatus.OPEN).update(
        status=AlertStatus.ACKNOWLEDGED, acknowledged_at=now, acknowledged_by=actor
    )
    alert.refresh_from_db()
    if not updated and alert.status == AlertStatus.RESOLVED:
        raise Conflict("The alert is already resolved.", details={"currentStatus": alert.status})
    return alert


DASHBOARD_DEBOUNCE_SECONDS = 2


def dashboard_changed() -> None:
    """Something the dashboard shows changed (a deployment transition, an alert): push an update soon.

    Debounced through the cache, so a burst of changes costs one dashboard computation.
    """
    from analytics.tasks import publish_dashboard  # local: tasks import services at the top, not the reverse

    try:
        first = cache.add("analytics:dashboard:pending", 1, DASHBOARD_DEBOUNCE_SECONDS)
    except Exception:
        logger.warning("dashboard update not scheduled: cache unavailable", exc_info=True)
        return
    if first:
        publish_dashboard.apply_async(countdown=1)


def refresh_model_stats(model_ids: set[uuid.UUID] | None = None, *, now: datetime | None = None) -> int:
    """Set the catalog's ``popularity`` (requests, last 30 days) and ``avg_rating`` from the 1d rollups."""
    now = now or timezone.now()
    since = bucket_start(now - timedelta(days=30), "1d")
    qs = MetricBucket.objects.filter(granularity="1d", bucket_start__gte=since)
    if model_ids is not None:
        qs = qs.filter(model_id__in=model_ids)
    stats = {
        row["model_id"]: (
            row["requests"] or 0,
            (row["rating_sum"] / row["rating_count"]) if row["rating_count"] else None,
        )
        for row in qs.values("model_id")
        .annotate(requests=Sum("request_count"), rating_sum=Sum("rating_sum"), rating_count=Sum("rating_count"))
        .order_by()
    }
    return catalog_services.model_usage_stats_set(stats, only=model_ids)


PRUNE_CHUNK = 10_000


def ensure_partitions(*, now: datetime | None = None) -> list[str]:
    """PostgreSQL: create the missing daily event partitions from the day of (now - raw retention) - the
    oldest an accepted event can have, and the oldest day prune keeps - to ``ANALYTICS_PARTITIONS_AHEAD_DAYS``
    ahead (hourly beat job; migration 0006 creates the same range).

    Idempotent and safe to run from two workers at once (an advisory lock). Returns the names created;
    nothing to do on SQLite (one plain table).
    """
    if connection.vendor != "postgresql":
        return []
    now = now or timezone.now()
    first = partitions.utc_day(now - timedelta(days=settings.ANALYTICS_RETENTION_DAYS["raw"]))
    last = partitions.utc_day(now + timedelta(days=settings.ANALYTICS_PARTITIONS_AHEAD_DAYS))
    return ensure_partitions_between(first, last)


def ensure_partitions_between(first: Any, last: Any) -> list[str]:
    """PostgreSQL: create the missing daily partitions from UTC day ``first`` to ``last`` (dates, inclusive).

    Ingestion calls it for the days of a batch that met a missing partition; benchmarks and tests for the
    days they write straight into the table.
    """
    if connection.vendor != "postgresql":
        return []
    with transaction.atomic(), connection.cursor() as cursor:
        return partitions.create(cursor, first, last)


def _prune_raw(cutoff: datetime) -> dict[str, int]:
    """Raw events past retention: whole partitions on PostgreSQL (day-granular), chunked deletes on SQLite.

    The keys go with their events: on PostgreSQL those before the oldest partition left, elsewhere those
    before the cutoff, in chunks by their timestamp index.
    """
    dropped = 0
    if connection.vendor == "postgresql":
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                dropped, total = partitions.drop_before(cursor, cutoff)
        except OperationalError:  # lock_timeout: DETACH waited too long for the table's lock; next run retries
            logger.warning("analytics prune: old partitions not dropped this time", exc_info=True)
            total = 0
        with connection.cursor() as cursor:
            kept = partitions.existing(cursor)
        # Keys go with their events: those before the oldest partition left (the cutoff's day, normally).
        keys_before = partitions.day_start(
            min(min(kept, default=partitions.utc_day(cutoff)), partitions.utc_day(cutoff))
        )
    else:
        total = 0
        while True:  # in chunks, so no single statement holds locks on millions of rows
            ids = list(UsageEvent.objects.filter(timestamp__lt=cutoff).values_list("pk", flat=True)[:PRUNE_CHUNK])
            if not ids:
                break
            total += UsageEvent.objects.filter(pk__in=ids).delete()[0]
        keys_before = cutoff
    while True:
        keys = list(UsageEventKey.objects.filter(timestamp__lt=keys_before).values_list("pk", flat=True)[:PRUNE_CHUNK])
        if not keys:
            break
        UsageEventKey.objects.filter(pk__in=keys).delete()
    return {"raw": total, "partitionsDropped": dropped}


def prune(*, now: datetime | None = None) -> dict[str, int]:
    """Delete raw events, rollups and resolved alerts past their retention; refresh the catalog's usage
    figures (popularity, rating) and the cached distinct-user counts. Idempotent.

    ``raw`` counts the events removed; on PostgreSQL they go by whole days (``partitionsDropped``: a
    partition goes once its upper bound is at or before now - raw retention), on SQLite row by row.
    """
    now = now or timezone.now()
    retention = settings.ANALYTICS_RETENTION_DAYS
    cutoff = now - timedelta(days=retention["raw"])
    deleted: dict[str, int] = _prune_raw(cutoff)
    DirtyHour.objects.filter(hour__lt=cutoff - timedelta(hours=1)).delete()
    for granularity, days in retention.items():
        if granularity != "raw":
            deleted[granularity] = MetricBucket.objects.filter(
                granularity=granularity, bucket_start__lt=now - timedelta(days=days)
            ).delete()[0]
    if any(deleted.get(granularity) for granularity in retention if granularity != "raw"):
        generations.everything_written()  # a window reaching past a retention now reads fewer buckets
    deleted["alerts"] = Alert.objects.filter(resolved_at__lt=now - timedelta(days=retention["1h"])).delete()[0]
    refresh_model_stats(now=now)
    refresh_unique_users()
    logger.info("analytics prune: %s", deleted)
    return deleted


def token_cost(tokens: int, price_per_1k: Any) -> Any:
    """The pricing rule ingestion applies (:func:`analytics.ingest.token_cost`), for the costs app."""
    from analytics.ingest import token_cost as price

    return price(tokens, price_per_1k)


def ingest_usage(items: list[object], *, now: datetime | None = None) -> Any:
    """Validate and store usage events (idempotent on ``requestId``): the gateway's usage drain calls this.

    Returns :class:`analytics.ingest.IngestResult` (accepted, duplicates, rejected by index).
    """
    from analytics.ingest import ingest_events

    return ingest_events(items, now=now)


def record_feedback(*, request_id: str, deployment_id: Any, user_rating: int | None, accepted: bool | None) -> bool:
    """Attach a user's rating/acceptance to a stored event of ``deployment_id``; False when there is none.

    Its (model, hour) is marked dirty so the next rollup counts it (quality metrics come from users).
    """
    changes: dict[str, Any] = {}
    if user_rating is not None:
        changes["user_rating"] = user_rating
    if accepted is not None:
        changes["accepted"] = accepted
    # The key gives the event's timestamp and the deployment its model: one partition, one index range
    # (request_id itself is not indexed on the events table).
    timestamp = UsageEventKey.objects.filter(request_id=request_id).values_list("timestamp", flat=True).first()
    if timestamp is None:
        return False
    where: dict[str, Any] = {"timestamp": timestamp, "request_id": request_id, "deployment_id": deployment_id}
    if deployment_id is not None:
        home = next(iter(deployment_homes({deployment_id}).values()), None)
        if home is None:
            return False
        where["model_id"] = home[0]
    with transaction.atomic():
        event = UsageEvent.objects.select_for_update().filter(**where).only("id", "model_id", "timestamp").first()
        if event is None:
            return False
        if changes:
            UsageEvent.objects.filter(pk=event.pk, timestamp=event.timestamp).update(**changes)
            hour = event.timestamp.replace(minute=0, second=0, microsecond=0)
            DirtyHour.objects.create(model_id=event.model_id, hour=hour)
    return True
