"""``PerformanceResponse`` and ``PerformanceMetrics``: a model's figures over a window, merged from buckets.

At most four queries whatever the window: the scalar metrics per bucket start (summed by the
database over deployments and environments), the error breakdown of buckets that had failures,
the sketches the window needs (its edges, and starts shared by several rows; the covered middle
comes from coarser parent buckets), and the previous window's totals for the insights.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from django.conf import settings
from django.db.models import Count, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from analytics import sketch
from analytics.metrics import SCALAR_AGGREGATES, Accumulator, Window, bucket_start, money, ratio, with_json_text
from analytics.models import GRANULARITY_SECONDS, MetricBucket
from analytics.rules import insights
from deployments import selectors as deployment_selectors
from modelhub.api.dates import iso
from modelhub.api.exceptions import InvalidParameter
from modelhub.db import iter_values_rows

_MONTH_SECONDS = 30 * 86400
# The coarser granularity whose sketches cover a window's middle (7 days at 1h: 6 day sketches, not 144).
_PARENT = {"1m": "15m", "5m": "1h", "15m": "1h", "1h": "1d"}
_SCALARS = tuple(SCALAR_AGGREGATES)


def performance_window(start: datetime, end: datetime, granularity: str, *, now: datetime) -> Window:
    """The aligned window of a query, or ``INVALID_PARAMETER`` when it cannot be answered.

    Bounded in points (``ANALYTICS_MAX_POINTS``) and by the granularity's retention.
    """
    if start >= end:
        raise InvalidParameter("from must be before to.", details={"fields": {"from": ["Must be before to."]}})
    window = Window.aligned(start, end, granularity)
    if window.points > settings.ANALYTICS_MAX_POINTS:
        raise InvalidParameter(
            f"The range spans {window.points} {granularity} buckets; the most is {settings.ANALYTICS_MAX_POINTS}.",
            details={
                "fields": {"granularity": ["Use a coarser granularity or a shorter range."]},
                "points": window.points,
            },
        )
    kept = settings.ANALYTICS_RETENTION_DAYS[granularity]
    if window.start < now - timedelta(days=kept + 1):
        raise InvalidParameter(
            f"{granularity} buckets are kept for {kept} days; this range starts earlier.",
            details={"fields": {"from": [f"Use a coarser granularity for ranges older than {kept} days."]}},
        )
    return window


class _Series:
    """Per-bucket accumulators plus their total for one query."""

    def __init__(self, window: Window) -> None:
        self.window = window
        self.by_start: dict[datetime, Accumulator] = {}
        self.total = Accumulator()
        self.dense: list[tuple[str, Accumulator]] | None = None


def _buckets(model_id: uuid.UUID, granularity: str, start: datetime, end: datetime, scope: dict[str, str]) -> Any:
    return MetricBucket.objects.filter(
        granularity=granularity, model_id=model_id, bucket_start__gte=start, bucket_start__lt=end, **scope
    )


def _scope(deployment_key: str | None, environment: str | None) -> dict[str, str]:
    scope = {}
    if deployment_key is not None:
        scope["deployment_key"] = deployment_key
    if environment is not None:
        scope["environment"] = environment
    return scope


def load_series(model_id: uuid.UUID, window: Window, *, deployment_key: str | None, environment: str | None) -> _Series:
    scope = _scope(deployment_key, environment)
    qs = _buckets(model_id, window.granularity, window.start, window.end, scope)
    parent, covered = _PARENT.get(window.granularity), None
    if parent is not None:
        step = timedelta(seconds=GRANULARITY_SECONDS[parent])
        first = bucket_start(window.start, parent)
        first = first if first == window.start else first + step
        last = bucket_start(window.end, parent)
        if last > first:
            covered = (first, last)
    # First the scalar figures per bucket start, summed over deployments and environments by the database ...
    series = _Series(window)
    rows_at: dict[datetime, int] = {}
    per_start = (
        qs.values("bucket_start")
        .annotate(**SCALAR_AGGREGATES, rows=Count("id"))
        .order_by("bucket_start")
        .values_list("bucket_start", *_SCALARS, "rows")
    )
    for row in iter_values_rows(per_start):
        start, rows = row[0], row[-1]
        acc = Accumulator.from_scalars(row[1:-1])
        if rows > 1:
            acc.p95 = None  # several rows share the start: its p95 needs their merged sketches
        rows_at[start] = rows
        series.by_start[start] = acc
        series.total.merge(acc, sketch=False)
    # ... the error breakdown (only buckets that had failures carry one) ...
    for (text,) in iter_values_rows(with_json_text(qs.filter(failure_count__gt=0)).values_list("errors_text")):
        series.total.merge_stored_errors(orjson.loads(text))
    # ... then the sketches that are needed: the window's edges (outside the covered parent buckets) and
    # starts with several rows; the covered middle comes from the parents' sketches.
    needed = [start for start, n in rows_at.items() if n > 1 or covered is None or not covered[0] <= start < covered[1]]
    if needed:
        merged: dict[datetime, dict[int, int]] = defaultdict(dict)
        rows = with_json_text(qs.filter(bucket_start__in=needed)).values_list("bucket_start", "latency_sketch_text")
        for start, text in iter_values_rows(rows):
            part = sketch.from_json(orjson.loads(text))
            if rows_at[start] > 1:
                sketch.merge_into(merged[start], part)
            if covered is None or not covered[0] <= start < covered[1]:
                sketch.merge_into(series.total.sketch, part)
        for start, combined in merged.items():
            series.by_start[start].sketch = combined
    if covered is not None:
        coarse = _buckets(model_id, parent, covered[0], covered[1], scope)
        for (text,) in iter_values_rows(coarse.annotate(s=Cast("latency_sketch", TextField())).values_list("s")):
            sketch.merge_into(series.total.sketch, sketch.from_json(orjson.loads(text)))
    return series


# What the insights compare against the previous window (aggregating every metric costs ~9 ms more).
_PREVIOUS = ("requests", "failures", "cost", "rating_sum", "rating_count")


def _totals(model_id: uuid.UUID, window: Window, *, deployment_key: str | None, environment: str | None) -> Accumulator:
    """The previous window's totals that the insights read, in one aggregate query."""
    qs = _buckets(model_id, window.granularity, window.start, window.end, _scope(deployment_key, environment))
    sums = qs.aggregate(**{name: SCALAR_AGGREGATES[name] for name in _PREVIOUS})
    acc = Accumulator()
    for name in _PREVIOUS:
        if sums[name] is not None:
            setattr(acc, name, sums[name])
    acc.successes = acc.requests - acc.failures
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
            "successRate": ratio(t.successes, t.requests),
            "errorRate": ratio(t.failures, t.requests),
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
                "avgPerRequest": ratio(t.prompt_sum, t.requests),
                "maxPerRequest": t.prompt_max,
            },
            "completion": {
                "total": t.completion_sum,
                "avgPerRequest": ratio(t.completion_sum, t.requests),
                "maxPerRequest": t.completion_max,
            },
            "total": tokens,
        },
        "cost": {
            "total": money(t.cost),
            "avgPerRequest": money(t.cost / t.requests) if t.requests else 0.0,
            "costPer1kTokens": money(t.cost * 1000 / tokens) if tokens else baseline_price,
            "projectedMonthly": money(t.cost * Decimal(_MONTH_SECONDS) / Decimal(observed)) if observed > 0 else 0.0,
        },
        "quality": {
            "avgConfidenceScore": ratio(t.conf_sum, t.conf_count),
            "avgUserRating": ratio(t.rating_sum, t.rating_count),
            "acceptanceRate": ratio(t.accepted, feedback),
            "rejectionRate": ratio(t.rejected, feedback),
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
                "cost": money(acc.cost),
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
        "cost": [{"timestamp": s, "value": money(a.cost)} for s, a in points],
        "errors": [{"timestamp": s, "value": a.failures} for s, a in points],
    }


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
    """The spec's ``PerformanceResponse``; an unanswerable window is ``INVALID_PARAMETER`` (see :func:`performance_window`)."""
    now = now or timezone.now()
    window = performance_window(start, end, granularity, now=now)
    key = None
    if deployment_id is not None:
        home = deployment_selectors.deployment_homes([deployment_id]).get(uuid.UUID(deployment_id))
        if home is None or home[0] != model.pk:
            raise InvalidParameter(
                "deploymentId is not a deployment of this model.",
                details={"fields": {"deploymentId": ["No deployment of this model has this id."]}},
            )
        key = uuid.UUID(deployment_id).hex
    series = load_series(model.pk, window, deployment_key=key, environment=environment)
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
    """``PerformanceMetrics`` alone (the model detail's windows; no insights, no previous window)."""
    now = now or timezone.now()
    window = Window.aligned(start, end, granularity)
    series = load_series(model.pk, window, deployment_key=None, environment=None)
    return _metrics(model, series, deployment_id=None, now=now)
