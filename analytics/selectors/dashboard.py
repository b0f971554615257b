"""``DashboardResponse``: the last 24 hours across the hub, recent activity and open alerts.

``recentActivity`` merges the deployments' transition log, alerts, and what apps above analytics
contribute through :data:`ACTIVITY` (registered in their ``AppConfig.ready()``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Sum
from django.utils import timezone

from analytics import sketch
from analytics.metrics import bucket_start, money
from analytics.models import Alert, AlertStatus, MetricBucket
from catalog import selectors as catalog_selectors
from deployments import selectors as deployment_selectors
from modelhub.api.dates import iso
from modelhub.registry import Slot

DASHBOARD_TOP_MODELS = 5
DASHBOARD_ACTIVITY = 20
DASHBOARD_ALERTS = 20

ACTIVITY = Slot(
    "analytics.dashboard.activity",
    "Providers ``(limit, now) -> [{timestamp, type, modelId, message}]`` of recent activity, newest first.",
)


def open_alerts(limit: int = DASHBOARD_ALERTS) -> list[dict[str, Any]]:
    rows = Alert.objects.exclude(status=AlertStatus.RESOLVED).order_by("-opened_at")[:limit]
    return [
        {"id": str(a.pk), "type": a.type, "severity": a.severity, "message": a.message, "timestamp": iso(a.opened_at)}
        for a in rows
    ]


def alert_activity(limit: int, now: datetime) -> list[dict[str, Any]]:
    """Alerts opened in the last week, as ``error`` activity."""
    rows = Alert.objects.filter(opened_at__gte=now - timedelta(days=7)).order_by("-opened_at")[:limit]
    return [
        {"timestamp": iso(a.opened_at), "type": "error", "modelId": str(a.model_id), "message": a.message} for a in rows
    ]


def recent_activity(limit: int = DASHBOARD_ACTIVITY, *, now: datetime | None = None) -> list[dict[str, Any]]:
    now = now or timezone.now()
    activity = list(deployment_selectors.recent_activity(limit))
    activity += alert_activity(limit, now)
    for items in ACTIVITY.collect(limit, now):
        activity += items
    activity.sort(key=lambda a: a["timestamp"] or "", reverse=True)
    return activity[:limit]


def hourly_trends(since: datetime, now: datetime) -> tuple[list[dict[str, Any]], float]:
    """Per hour since ``since`` across the hub: requests, errors, cost and latency p50/p95/p99.

    An extension of ``DashboardResponse`` (the console's charts): one point per hour, hours without
    traffic included as zeros, quantiles from the merged latency sketches of every model's bucket.
    Also returns the p95 over the whole window (all the hours' sketches merged).
    """
    rows = MetricBucket.objects.filter(granularity="1h", bucket_start__gte=since).values_list(
        "bucket_start", "request_count", "failure_count", "cost_sum", "latency_sketch"
    )
    hours: dict[datetime, list[Any]] = {}
    for start, requests, failures, cost, stored in rows.iterator(chunk_size=500):
        point = hours.setdefault(start, [0, 0, Decimal(0), {}])
        point[0] += requests
        point[1] += failures
        point[2] += cost
        sketch.merge_into(point[3], sketch.from_json(stored))
    out = []
    whole: dict[int, int] = {}
    hour = since
    while hour <= now:
        requests, failures, cost, merged = hours.get(hour, (0, 0, Decimal(0), {}))
        p50, p95, p99 = sketch.quantiles(merged, (0.5, 0.95, 0.99))
        sketch.merge_into(whole, merged)
        out.append(
            {
                "timestamp": iso(hour),
                "requests": requests,
                "errors": failures,
                "cost": money(cost),
                "latencyP50": round(p50, 3),
                "latencyP95": round(p95, 3),
                "latencyP99": round(p99, 3),
            }
        )
        hour += timedelta(hours=1)
    return out, round(sketch.quantiles(whole, (0.95,))[0], 3)


def dashboard(*, now: datetime | None = None) -> dict[str, Any]:
    """The spec's ``DashboardResponse`` over the last 24 hours (1h rollups), plus ``trends``."""
    now = now or timezone.now()
    since = bucket_start(now - timedelta(hours=24), "1h")
    trends, p95 = hourly_trends(since, now)
    per_model = list(
        MetricBucket.objects.filter(granularity="1h", bucket_start__gte=since)
        .values("model_id")
        .annotate(
            requests=Sum("request_count"),
            failures=Sum("failure_count"),
            cost=Sum("cost_sum"),
            lat_sum=Sum("latency_sum"),
            lat_count=Sum("latency_count"),
            rating_sum=Sum("rating_sum"),
            rating_count=Sum("rating_count"),
        )
        .order_by()
    )
    requests = sum(r["requests"] for r in per_model)
    lat_count = sum(r["lat_count"] for r in per_model)
    rating_count = sum(r["rating_count"] for r in per_model)
    top = sorted(per_model, key=lambda r: (-r["requests"], str(r["model_id"])))[:DASHBOARD_TOP_MODELS]
    names = catalog_selectors.model_names([r["model_id"] for r in top])
    return {
        "summary": {
            "totalModels": catalog_selectors.model_count(),
            "activeDeployments": deployment_selectors.active_deployment_count(),
            "totalRequests": requests,
            "totalCost": money(sum((r["cost"] for r in per_model), Decimal(0))),
            "avgLatency": round(sum(r["lat_sum"] for r in per_model) / lat_count, 3) if lat_count else 0.0,
            "avgRating": round(sum(r["rating_sum"] for r in per_model) / rating_count, 4) if rating_count else 0.0,
            # Extensions: the share of failed requests and the p95 latency over the same 24 hours.
            "errorRate": round(sum(r["failures"] for r in per_model) / requests, 6) if requests else 0.0,
            "p95Latency": p95,
        },
        "topModels": [
            {
                "modelId": str(r["model_id"]),
                "name": names.get(r["model_id"], ""),
                "requests": r["requests"],
                "cost": money(r["cost"]),
                "rating": round(r["rating_sum"] / r["rating_count"], 4) if r["rating_count"] else 0.0,
            }
            for r in top
        ],
        "recentActivity": recent_activity(DASHBOARD_ACTIVITY, now=now),
        "alerts": open_alerts(),
        "window": {"from": iso(since), "to": iso(now)},
        "trends": trends,
    }
