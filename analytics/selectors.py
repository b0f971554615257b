"""Reads over the rollups: performance metrics, trends, insights, usage and the dashboard.

Every figure is merged from :class:`~analytics.models.MetricBucket` rows (sums add,
latency sketches merge by adding counts), which the rollup recomputes from raw
events; only ``uniqueUsers`` and per-deployment ``lastUsed`` read raw events (an
index-only distinct count and a max per deployment).
"""

from __future__ import annotations

import contextlib
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from django.conf import settings
from django.core.cache import cache
from django.db.models import BigIntegerField, Count, Max, Min, Sum, TextField, Value
from django.db.models.functions import Cast
from django.utils import timezone

from analytics import sketch
from analytics.models import GRANULARITY_SECONDS, Alert, AlertStatus, MetricBucket, UsageEvent
from analytics.rollup import BUCKET_VALUE_FIELDS, Accumulator, bucket_start
from modelhub.api.dates import iso
from modelhub.db import iter_values_rows

# The JSON columns come as text and are parsed with orjson (Django's JSONField uses the slower json module).
_JSON_COLUMNS = {"latency_sketch", "errors", "use_cases"}
_FAST_FIELDS = tuple(f"{name}_text" if name in _JSON_COLUMNS else name for name in BUCKET_VALUE_FIELDS)
_JSON_POSITIONS = tuple(i for i, name in enumerate(BUCKET_VALUE_FIELDS) if name in _JSON_COLUMNS)


_EMPTY_SKETCH = '{"keys": [], "counts": []}'


def _bucket_rows(qs, *, sketch: bool = True):
    """JSON columns as text (parsed with orjson); without ``sketch`` the sketch column is left out."""
    columns = {f"{name}_text": Cast(name, TextField()) for name in _JSON_COLUMNS}
    if not sketch:
        columns["latency_sketch_text"] = Value(_EMPTY_SKETCH, output_field=TextField())
    return qs.annotate(**columns)


def _raw_rows(qs) -> list[tuple]:
    return list(iter_values_rows(qs))


def _parse_json_columns(row: tuple) -> tuple:
    values = list(row)
    for i in _JSON_POSITIONS:
        values[i] = orjson.loads(values[i])
    return tuple(values)


_MONTH_SECONDS = 30 * 86400


def _money(value: Decimal | float) -> float:
    return float(round(Decimal(value), 8))


def _ratio(num: float, den: float) -> float:
    return round(num / den, 6) if den else 0.0


@dataclass(frozen=True)
class Window:
    """A bucket-aligned query range: ``start`` floored and ``end`` ceiled to the granularity."""

    start: datetime
    end: datetime
    granularity: str

    @classmethod
    def aligned(cls, start: datetime, end: datetime, granularity: str) -> Window:
        step = timedelta(seconds=GRANULARITY_SECONDS[granularity])
        first = bucket_start(start, granularity)
        last = bucket_start(end, granularity)
        if last < end:
            last += step
        return cls(first, max(last, first + step), granularity)

    @property
    def step(self) -> timedelta:
        return timedelta(seconds=GRANULARITY_SECONDS[self.granularity])

    @property
    def points(self) -> int:
        return int((self.end - self.start) / self.step)

    def previous(self) -> Window:
        return Window(self.start - (self.end - self.start), self.start, self.granularity)


class _Series:
    """Per-bucket accumulators plus their total for one query."""

    def __init__(self, window: Window) -> None:
        self.window = window
        self.by_start: dict[datetime, Accumulator] = {}
        self.total = Accumulator()
        self.dense: list[tuple[str, Accumulator]] | None = None


def _load(model_id: uuid.UUID, window: Window, *, deployment_key: str | None, environment: str | None) -> _Series:
    qs = MetricBucket.objects.filter(
        granularity=window.granularity, model_id=model_id, bucket_start__gte=window.start, bucket_start__lt=window.end
    )
    if deployment_key is not None:
        qs = qs.filter(deployment_key=deployment_key)
    if environment is not None:
        qs = qs.filter(environment=environment)
    # The window's latency sketch is merged from the coarser parent buckets that lie wholly inside
    # it (7 days at 1h: 6 day sketches instead of 144 hour sketches) plus the edges' own buckets.
    parent, covered = _PARENT.get(window.granularity), None
    if parent is not None:
        step = timedelta(seconds=GRANULARITY_SECONDS[parent])
        first = bucket_start(window.start, parent)
        first = first if first == window.start else first + step
        last = bucket_start(window.end, parent)
        if last > first:
            covered = (first, last)
    # First the figures per bucket start, summed over deployments and environments by the database ...
    series = _Series(window)
    rows_at: dict[datetime, int] = {}
    per_start = (
        qs.values("bucket_start")
        .annotate(**_PER_START)
        .order_by("bucket_start")
        .values_list("bucket_start", *_PER_START)
    )
    total = series.total
    for (
        start,
        requests,
        successes,
        failures,
        lat_count,
        lat_sum,
        lat_min,
        lat_max,
        prompt_sum,
        prompt_max,
        completion_sum,
        completion_max,
        cost,
        conf_sum,
        conf_count,
        rating_sum,
        rating_count,
        accepted,
        rejected,
        last_event_at,
        p95,
        rows,
    ) in _raw_rows(per_start):
        acc = Accumulator()
        acc.requests, acc.successes, acc.failures, acc.lat_count, acc.lat_sum = (
            requests,
            successes,
            failures,
            lat_count,
            lat_sum,
        )
        acc.lat_min, acc.lat_max, acc.prompt_sum, acc.prompt_max = lat_min, lat_max, prompt_sum, prompt_max
        acc.completion_sum, acc.completion_max, acc.cost = completion_sum, completion_max, cost
        acc.conf_sum, acc.conf_count, acc.rating_sum, acc.rating_count = conf_sum, conf_count, rating_sum, rating_count
        acc.accepted, acc.rejected, acc.last_event_at = accepted, rejected, last_event_at
        acc.p95 = p95 if rows == 1 else None  # several rows share the start: its p95 needs their sketches
        rows_at[start] = rows
        series.by_start[start] = acc
        total.merge(acc, sketch=False)
    # ... the error breakdown (only buckets that had failures carry one) ...
    for (text,) in _raw_rows(_bucket_rows(qs.filter(failure_count__gt=0)).values_list("errors_text")):
        total.merge_stored_errors(orjson.loads(text))
    # ... then the sketches that are needed: the window's edges (outside the covered parent buckets) and
    # starts with several rows; the covered middle comes from the parents' sketches.
    needed = [start for start, n in rows_at.items() if n > 1 or covered is None or not covered[0] <= start < covered[1]]
    if needed:
        merged: dict[datetime, dict[int, int]] = defaultdict(dict)
        for start, text in _raw_rows(
            _bucket_rows(qs.filter(bucket_start__in=needed)).values_list("bucket_start", "latency_sketch_text")
        ):
            part = sketch.from_json(orjson.loads(text))
            if rows_at[start] > 1:
                sketch.merge_into(merged[start], part)
            if covered is None or not covered[0] <= start < covered[1]:
                sketch.merge_into(series.total.sketch, part)
        for start, combined in merged.items():
            series.by_start[start].sketch = combined
    if covered is not None:
        coarse = qs.model.objects.filter(
            granularity=parent, model_id=model_id, bucket_start__gte=covered[0], bucket_start__lt=covered[1]
        )
        if deployment_key is not None:
            coarse = coarse.filter(deployment_key=deployment_key)
        if environment is not None:
            coarse = coarse.filter(environment=environment)
        for (text,) in _raw_rows(coarse.annotate(s=Cast("latency_sketch", TextField())).values_list("s")):
            sketch.merge_into(series.total.sketch, sketch.from_json(orjson.loads(text)))
    return series


_PARENT = {"1m": "15m", "5m": "1h", "15m": "1h", "1h": "1d"}


def _int_sum(field: str) -> Cast:
    # SUM(bigint) is numeric in PostgreSQL: cast back so rows read straight from psycopg hold ints.
    return Cast(Sum(field), BigIntegerField())


_PER_START = {
    "requests": _int_sum("request_count"),
    "successes": _int_sum("success_count"),
    "failures": _int_sum("failure_count"),
    "lat_count": _int_sum("latency_count"),
    "lat_sum": Sum("latency_sum"),
    "lat_min": Min("latency_min"),
    "lat_max": Max("latency_max"),
    "prompt_sum": _int_sum("prompt_tokens_sum"),
    "prompt_max": Max("prompt_tokens_max"),
    "completion_sum": _int_sum("completion_tokens_sum"),
    "completion_max": Max("completion_tokens_max"),
    "cost": Sum("cost_sum"),
    "conf_sum": Sum("confidence_sum"),
    "conf_count": _int_sum("confidence_count"),
    "rating_sum": _int_sum("rating_sum"),
    "rating_count": _int_sum("rating_count"),
    "accepted": _int_sum("accepted_count"),
    "rejected": _int_sum("rejected_count"),
    "last_event_at": Max("last_event_at"),
    "p95": Max("latency_p95"),
    "rows": Count("id"),
}


def _totals(model_id: uuid.UUID, window: Window, *, deployment_key: str | None, environment: str | None) -> Accumulator:
    """Additive totals of a window in one aggregate query (what insights compare against)."""
    qs = MetricBucket.objects.filter(
        granularity=window.granularity, model_id=model_id, bucket_start__gte=window.start, bucket_start__lt=window.end
    )
    if deployment_key is not None:
        qs = qs.filter(deployment_key=deployment_key)
    if environment is not None:
        qs = qs.filter(environment=environment)
    sums = qs.aggregate(
        requests=Sum("request_count"),
        failures=Sum("failure_count"),
        cost=Sum("cost_sum"),
        rating_sum=Sum("rating_sum"),
        rating_count=Sum("rating_count"),
    )
    acc = Accumulator()
    acc.requests, acc.failures = sums["requests"] or 0, sums["failures"] or 0
    acc.successes = acc.requests - acc.failures
    acc.cost = sums["cost"] or Decimal(0)
    acc.rating_sum, acc.rating_count = sums["rating_sum"] or 0, sums["rating_count"] or 0
    return acc


def _metrics(model: Any, series: _Series, *, deployment_id: str | None, now: datetime) -> dict[str, Any]:
    """The spec's ``PerformanceMetrics`` from a loaded series."""
    window, t = series.window, series.total
    p50, p95, p99 = sketch.quantiles(t.sketch, (0.5, 0.95, 0.99))
    tokens = t.prompt_sum + t.completion_sum
    observed = (min(window.end, now) - window.start).total_seconds()
    feedback = t.accepted + t.rejected
    errors = sorted(t.errors.items(), key=lambda item: (-item[1]["count"], item[0]))[:20]
    baseline_price = float(model.baseline_cost_per_1k_tokens)
    return {
        "modelId": str(model.pk),
        "deploymentId": deployment_id,
        "timeRange": {"from": iso(window.start), "to": iso(window.end), "granularity": window.granularity},
        "requests": {
            "total": t.requests,
            "successful": t.successes,
            "failed": t.failures,
            "successRate": _ratio(t.successes, t.requests),
            "errorRate": _ratio(t.failures, t.requests),
        },
        "latency": {
            "avg": round(t.lat_sum / t.lat_count, 3) if t.lat_count else 0.0,
            "p50": round(p50, 3),
            "p95": round(p95, 3),
            "p99": round(p99, 3),
            "min": round(t.lat_min or 0.0, 3),
            "max": round(t.lat_max or 0.0, 3),
        },
        "tokens": {
            "prompt": {
                "total": t.prompt_sum,
                "avgPerRequest": _ratio(t.prompt_sum, t.requests),
                "maxPerRequest": t.prompt_max,
            },
            "completion": {
                "total": t.completion_sum,
                "avgPerRequest": _ratio(t.completion_sum, t.requests),
                "maxPerRequest": t.completion_max,
            },
            "total": tokens,
        },
        "cost": {
            "total": _money(t.cost),
            "avgPerRequest": _money(t.cost / t.requests) if t.requests else 0.0,
            "costPer1kTokens": _money(t.cost * 1000 / tokens) if tokens else baseline_price,
            "projectedMonthly": _money(t.cost * Decimal(_MONTH_SECONDS) / Decimal(observed)) if observed > 0 else 0.0,
        },
        "quality": {
            "avgConfidenceScore": _ratio(t.conf_sum, t.conf_count),
            "avgUserRating": _ratio(t.rating_sum, t.rating_count),
            "acceptanceRate": _ratio(t.accepted, feedback),
            "rejectionRate": _ratio(t.rejected, feedback),
        },
        "errors": [
            {
                "code": code,
                "message": e["message"],
                "count": e["count"],
                "percentage": round(100.0 * e["count"] / t.requests, 4) if t.requests else 0.0,
                "lastOccurred": iso(e["lastOccurred"]),
            }
            for code, e in errors
        ],
        "timeSeries": [
            {
                "timestamp": stamp,
                "requests": acc.requests,
                "latency": round(acc.lat_sum / acc.lat_count, 3) if acc.lat_count else 0.0,
                "cost": _money(acc.cost),
                "errors": acc.failures,
            }
            for stamp, acc in _dense(series)
        ],
    }


def _dense(series: _Series) -> list[tuple[str, Accumulator]]:
    """Every bucket of the window (ISO timestamp, figures), zeros where nothing happened; computed once."""
    if series.dense is None:
        out, empty = [], Accumulator()
        start = series.window.start
        while start < series.window.end:
            out.append((iso(start), series.by_start.get(start, empty)))
            start += series.window.step
        series.dense = out
    return series.dense


def _p95(acc: Accumulator) -> float:
    """A bucket's p95: stored by the rollup for a single row, else from the merged sketch."""
    if acc.p95 is not None and not acc.sketch:
        return acc.p95
    return sketch.quantiles(acc.sketch, (0.95,))[0]


def _trends(series: _Series) -> dict[str, list[dict[str, Any]]]:
    points = _dense(series)
    return {
        "requests": [{"timestamp": s, "value": a.requests} for s, a in points],
        "latency": [{"timestamp": s, "value": round(_p95(a), 3)} for s, a in points],
        "cost": [{"timestamp": s, "value": _money(a.cost)} for s, a in points],
        "errors": [{"timestamp": s, "value": a.failures} for s, a in points],
    }


def insights(model: Any, current: Accumulator, previous: Accumulator) -> list[dict[str, Any]]:
    """Findings with recommendations, from the window against the model's baseline and the previous window."""
    cfg = settings.ANALYTICS_INSIGHTS
    out: list[dict[str, Any]] = []
    if current.requests < cfg["min_requests"]:
        if current.requests == 0 and previous.requests >= cfg["min_requests"]:
            out.append(
                {
                    "type": "usage",
                    "severity": "warning",
                    "message": f"No requests in this period (previous period: {previous.requests}).",
                    "recommendation": "Check that clients still reach the model and that usage events are being sent.",
                }
            )
        return out
    baseline = float(model.baseline_avg_latency_ms or 0)
    p95 = sketch.quantiles(current.sketch, (0.95,))[0]
    if baseline > 0 and p95 > baseline * cfg["latency_p95_over_baseline"]:
        critical = p95 > baseline * cfg["latency_p95_over_baseline_critical"]
        out.append(
            {
                "type": "performance",
                "severity": "critical" if critical else "warning",
                "message": f"p95 latency is {p95:.0f} ms, {p95 / baseline:.1f}x the model's baseline of {baseline:.0f} ms.",
                "recommendation": "Add replicas or raise maxReplicas, lower maxTokens, or route latency-sensitive traffic to a faster model.",
            }
        )
    error_rate = current.failures / current.requests
    prev_rate = previous.failures / previous.requests if previous.requests else 0.0
    if error_rate >= cfg["error_rate_min"] and (
        previous.requests < cfg["min_requests"] or error_rate > prev_rate * cfg["error_rate_increase"]
    ):
        out.append(
            {
                "type": "performance",
                "severity": "critical" if error_rate >= 4 * cfg["error_rate_min"] else "warning",
                "message": f"Error rate is {error_rate:.1%}"
                + (f", up from {prev_rate:.1%} in the previous period." if previous.requests else "."),
                "recommendation": "Inspect the most frequent error codes below; add retries with backoff for transient provider errors.",
            }
        )
    if previous.requests >= cfg["min_requests"] and current.requests:
        cpr, prev_cpr = current.cost / current.requests, previous.cost / previous.requests
        if prev_cpr > 0 and cpr > prev_cpr * Decimal(str(cfg["cost_per_request_increase"])):
            out.append(
                {
                    "type": "cost",
                    "severity": "warning",
                    "message": f"Cost per request rose to ${float(cpr):.6f} from ${float(prev_cpr):.6f} ({float(cpr / prev_cpr - 1):+.0%}).",
                    "recommendation": "Check prompt and completion lengths (tokens per request), cap maxTokens, and cache repeated prompts.",
                }
            )
    if current.rating_count >= cfg["min_requests"] // 2 and previous.rating_count >= cfg["min_requests"] // 2:
        rating, prev_rating = current.rating_sum / current.rating_count, previous.rating_sum / previous.rating_count
        if prev_rating - rating >= cfg["rating_drop"]:
            out.append(
                {
                    "type": "quality",
                    "severity": "warning",
                    "message": f"Average user rating fell to {rating:.2f} from {prev_rating:.2f}.",
                    "recommendation": "Review recent low-rated responses, prompt or parameter changes, and compare against a previous version in an experiment.",
                }
            )
    if current.failures >= max(5, cfg["min_requests"] // 4):
        code, entry = max(current.errors.items(), key=lambda item: item[1]["count"])
        share = entry["count"] / current.failures
        if share >= cfg["dominant_error_share"]:
            out.append(
                {
                    "type": "performance",
                    "severity": "info",
                    "message": f"{code} accounts for {share:.0%} of errors ({entry['count']} of {current.failures}).",
                    "recommendation": f"Fix the cause of {code} first: {entry['message'][:200] or 'see the error messages'}",
                }
            )
    if previous.requests >= cfg["min_requests"]:
        change = current.requests / previous.requests - 1
        if abs(change) >= 0.5:
            out.append(
                {
                    "type": "usage",
                    "severity": "info",
                    "message": f"Traffic {'rose' if change > 0 else 'fell'} {abs(change):.0%} against the previous period ({current.requests} vs {previous.requests} requests).",
                    "recommendation": "Review autoscaling limits and budgets for the new load."
                    if change > 0
                    else "Check whether clients moved to another model or deployment.",
                }
            )
    return out


def performance(
    model: Any,
    *,
    start: datetime,
    end: datetime,
    granularity: str,
    deployment_id: str | None = None,
    environment: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The spec's ``PerformanceResponse``; callers validated the window (see the view)."""
    now = now or timezone.now()
    window = Window.aligned(start, end, granularity)
    key = None if deployment_id is None else uuid.UUID(deployment_id).hex
    series = _load(model.pk, window, deployment_key=key, environment=environment)
    previous = _totals(model.pk, window.previous(), deployment_key=key, environment=environment)
    return {
        "modelId": str(model.pk),
        "deploymentId": deployment_id,
        "metrics": _metrics(model, series, deployment_id=deployment_id, now=now),
        "trends": _trends(series),
        "insights": insights(model, series.total, previous),
    }


def performance_metrics(
    model: Any, *, start: datetime, end: datetime, granularity: str, now: datetime | None = None
) -> dict[str, Any]:
    now = now or timezone.now()
    window = Window.aligned(start, end, granularity)
    return _metrics(model, _load(model.pk, window, deployment_key=None, environment=None), deployment_id=None, now=now)


# Distinct end users over every retained raw event is an exact COUNT(DISTINCT) - ~0.25 s for a model
# with 250,000 events - so it is cached: computed on a miss, refreshed for every model by the hourly
# `analytics.prune` in one grouped query.
UNIQUE_USERS_CACHE_SECONDS = 2 * 3600


def _unique_users_key(model_id: Any) -> str:
    return f"analytics:unique-users:{model_id}"


def _count_unique_users(model_id: Any) -> int:
    qs = UsageEvent.objects.filter(model_id=model_id).exclude(user_id="")
    return qs.aggregate(n=Count("user_id", distinct=True))["n"] or 0


def unique_users(model_id: Any) -> int:
    """Distinct end users of a model over the retained raw events (cached; at most an hour behind)."""
    key = _unique_users_key(model_id)
    try:
        cached = cache.get(key)
    except Exception:
        cached = None
    if cached is not None:
        return cached
    value = _count_unique_users(model_id)
    with contextlib.suppress(Exception):  # a cache outage only means counting again next time
        cache.set(key, value, UNIQUE_USERS_CACHE_SECONDS)
    return value


def refresh_unique_users() -> int:
    """Recount distinct end users for every model in one grouped query and cache them; returns models counted."""
    from catalog.models import ModelRegistry

    counts = dict(
        UsageEvent.objects.exclude(user_id="")
        .values_list("model_id")
        .annotate(n=Count("user_id", distinct=True))
        .order_by()
    )
    values = {_unique_users_key(pk): counts.get(pk, 0) for pk in ModelRegistry.objects.values_list("pk", flat=True)}
    cache.set_many(values, UNIQUE_USERS_CACHE_SECONDS)
    return len(values)


def model_usage(model: Any, *, now: datetime | None = None) -> dict[str, Any]:
    """``usage`` of the model detail: all retained rollups plus distinct end users over retained raw events."""
    totals = MetricBucket.objects.filter(granularity="1d", model_id=model.pk).aggregate(
        requests=Sum("request_count"), cost=Sum("cost_sum")
    )
    use_cases: dict[str, int] = defaultdict(int)
    for cases in MetricBucket.objects.filter(granularity="1d", model_id=model.pk).values_list("use_cases", flat=True):
        for name, count in cases.items():
            use_cases[name] += count
    return {
        "totalRequests": totals["requests"] or 0,
        "totalCost": _money(totals["cost"] or 0),
        "uniqueUsers": unique_users(model.pk),
        "popularUseCases": [name for name, _ in sorted(use_cases.items(), key=lambda kv: (-kv[1], kv[0]))[:5]],
    }


def last_used_by_deployment(ids: list[Any]) -> dict[str, datetime]:
    """Latest event timestamp per deployment id (text), from the rollups' ``last_event_at``."""
    keys = [uuid.UUID(str(i)).hex for i in ids]
    rows = (
        MetricBucket.objects.filter(granularity="1d", deployment_key__in=keys)
        .values_list("deployment_key")
        .annotate(last=Max("last_event_at"))
        .order_by()
    )
    return {str(uuid.UUID(key)): last for key, last in rows}


# --- dashboard ------------------------------------------------------------------------------
DASHBOARD_TOP_MODELS = 5
DASHBOARD_ACTIVITY = 20
DASHBOARD_ALERTS = 20


def open_alerts(limit: int = DASHBOARD_ALERTS) -> list[dict[str, Any]]:
    rows = Alert.objects.exclude(status=AlertStatus.RESOLVED).order_by("-opened_at")[:limit]
    return [
        {"id": str(a.pk), "type": a.type, "severity": a.severity, "message": a.message, "timestamp": iso(a.opened_at)}
        for a in rows
    ]


def dashboard(*, now: datetime | None = None) -> dict[str, Any]:
    """The spec's ``DashboardResponse`` over the last 24 hours (1h rollups)."""
    from catalog.models import ModelRegistry
    from deployments.selectors import active_deployment_count, recent_activity

    now = now or timezone.now()
    since = bucket_start(now - timedelta(hours=24), "1h")
    per_model = list(
        MetricBucket.objects.filter(granularity="1h", bucket_start__gte=since)
        .values("model_id")
        .annotate(
            requests=Sum("request_count"),
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
    names = dict(ModelRegistry.objects.filter(pk__in=[r["model_id"] for r in top]).values_list("pk", "name"))

    activity = list(recent_activity(DASHBOARD_ACTIVITY))
    for alert in Alert.objects.filter(opened_at__gte=now - timedelta(days=7)).order_by("-opened_at")[
        :DASHBOARD_ACTIVITY
    ]:
        activity.append(
            {
                "timestamp": iso(alert.opened_at),
                "type": "error",
                "modelId": str(alert.model_id),
                "message": alert.message,
            }
        )
    activity.sort(key=lambda a: a["timestamp"] or "", reverse=True)

    return {
        "summary": {
            "totalModels": ModelRegistry.objects.count(),
            "activeDeployments": active_deployment_count(),
            "totalRequests": requests,
            "totalCost": _money(sum((r["cost"] for r in per_model), Decimal(0))),
            "avgLatency": round(sum(r["lat_sum"] for r in per_model) / lat_count, 3) if lat_count else 0.0,
            "avgRating": round(sum(r["rating_sum"] for r in per_model) / rating_count, 4) if rating_count else 0.0,
        },
        "topModels": [
            {
                "modelId": str(r["model_id"]),
                "name": names.get(r["model_id"], ""),
                "requests": r["requests"],
                "cost": _money(r["cost"]),
                "rating": round(r["rating_sum"] / r["rating_count"], 4) if r["rating_count"] else 0.0,
            }
            for r in top
        ],
        "recentActivity": activity[:DASHBOARD_ACTIVITY],
        "alerts": open_alerts(),
        "window": {"from": iso(since), "to": iso(now)},
    }


def alert_queryset():
    return Alert.objects.select_related("model").order_by("-opened_at", "-id")


def recent_window_by_model(minutes: int, *, now: datetime) -> dict[uuid.UUID, dict[str, Accumulator]]:
    """Per model, per deployment key ("" = all), the last ``minutes`` of 5m rollups merged."""
    since = bucket_start(now - timedelta(minutes=minutes), "5m")
    out: dict[uuid.UUID, dict[str, Accumulator]] = defaultdict(lambda: defaultdict(Accumulator))
    fields = ("model_id", "deployment_key", *_FAST_FIELDS)
    qs = _bucket_rows(MetricBucket.objects.filter(granularity="5m", bucket_start__gte=since))
    for row in qs.values_list(*fields).iterator(chunk_size=2000):
        out[row[0]][""].merge(Accumulator.from_row(_parse_json_columns(row[2:])))
    return out
