"""Writes of the analytics app: alert lifecycle (open, refresh, resolve, acknowledge).

Ingestion lives in :mod:`analytics.ingest` and rollups in :mod:`analytics.rollup`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from analytics import sketch
from analytics.models import Alert, AlertSeverity, AlertStatus, AlertType
from analytics.rollup import Accumulator
from analytics.selectors import recent_window_by_model
from modelhub.api.exceptions import Conflict
from modelhub.realtime import publish

logger = logging.getLogger(__name__)


@dataclass
class Breach:
    type: str
    severity: str
    value: float
    threshold: float
    message: str


def _evaluate(model: Any, acc: Accumulator) -> tuple[list[Breach], set[str]]:
    """Breaches in the window, and the alert types whose metric has recovered."""
    cfg = settings.ANALYTICS_ALERTS
    breaches: list[Breach] = []
    recovered: set[str] = set()
    error_rate = acc.failures / acc.requests
    if error_rate >= cfg["error_rate_warning"]:
        critical = error_rate >= cfg["error_rate_critical"]
        breaches.append(
            Breach(
                AlertType.ERROR_RATE,
                AlertSeverity.CRITICAL if critical else AlertSeverity.WARNING,
                error_rate,
                cfg["error_rate_critical"] if critical else cfg["error_rate_warning"],
                f"{model.name} {model.version}: error rate {error_rate:.1%} over the last {cfg['window_minutes']} minutes "
                f"({acc.failures} of {acc.requests} requests).",
            )
        )
    elif error_rate < cfg["error_rate_warning"] * cfg["recover_factor"]:
        recovered.add(AlertType.ERROR_RATE)
    baseline = float(model.baseline_avg_latency_ms or 0)
    if baseline > 0:
        p95 = sketch.quantiles(acc.sketch, (0.95,))[0]
        limit = baseline * cfg["latency_p95_over_baseline"]
        if p95 > limit:
            critical = p95 > baseline * cfg["latency_p95_over_baseline_critical"]
            breaches.append(
                Breach(
                    AlertType.LATENCY,
                    AlertSeverity.CRITICAL if critical else AlertSeverity.WARNING,
                    p95,
                    baseline * cfg["latency_p95_over_baseline_critical"] if critical else limit,
                    f"{model.name} {model.version}: p95 latency {p95:.0f} ms over the last {cfg['window_minutes']} minutes, "
                    f"{p95 / baseline:.1f}x its {baseline:.0f} ms baseline.",
                )
            )
        elif p95 < limit * cfg["recover_factor"]:
            recovered.add(AlertType.LATENCY)
    return breaches, recovered


def _open(model: Any, breach: Breach, now: datetime) -> Alert | None:
    """Open an alert unless one is already unresolved (then refresh its figures). Returns the new alert."""
    try:
        with transaction.atomic():
            alert = Alert.objects.create(
                type=breach.type,
                severity=breach.severity,
                model=model,
                deployment_key="",
                message=breach.message,
                metric_value=breach.value,
                threshold=breach.threshold,
                opened_at=now,
                last_checked_at=now,
            )
    except IntegrityError:  # analytics_alert_one_open: it is already open (maybe opened by a concurrent check)
        Alert.objects.filter(model=model, deployment_key="", type=breach.type, resolved_at__isnull=True).update(
            metric_value=breach.value, last_checked_at=now, severity=breach.severity, message=breach.message
        )
        return None
    from analytics.serializers import alert_payload

    payload = alert_payload(alert)
    publish(
        "alert:new",
        {
            "id": payload["id"],
            "type": alert.type,
            "severity": alert.severity,
            "message": alert.message,
            "modelId": payload["modelId"],
            "deploymentId": payload["deploymentId"],
        },
    )
    return alert


def _resolve(model: Any, alert_type: str, now: datetime) -> int:
    # A conditional update: whichever check gets here first resolves it; the others change nothing.
    return Alert.objects.filter(model=model, deployment_key="", type=alert_type, resolved_at__isnull=True).update(
        status=AlertStatus.RESOLVED, resolved_at=now, last_checked_at=now
    )


def check_alerts(*, now: datetime | None = None) -> dict[str, int]:
    """Open, refresh and resolve alerts from the last few minutes of rollups. Idempotent."""
    from catalog.models import ModelRegistry

    now = now or timezone.now()
    cfg = settings.ANALYTICS_ALERTS
    windows = recent_window_by_model(cfg["window_minutes"], now=now)
    open_types = {(m, t) for m, t in Alert.objects.filter(resolved_at__isnull=True).values_list("model_id", "type")}
    models = ModelRegistry.objects.in_bulk({m for m, _ in open_types} | set(windows))
    opened = resolved = 0
    for model_id, model in models.items():
        acc = windows.get(model_id, {}).get("")
        if acc is None or acc.requests < cfg["min_requests"]:
            continue  # too little traffic to judge either way: open alerts stay as they are
        breaches, recovered = _evaluate(model, acc)
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
    from django.core.cache import cache

    from analytics.tasks import publish_dashboard

    try:
        first = cache.add("analytics:dashboard:pending", 1, DASHBOARD_DEBOUNCE_SECONDS)
    except Exception:
        logger.warning("dashboard update not scheduled: cache unavailable", exc_info=True)
        return
    if first:
        publish_dashboard.apply_async(countdown=1)
