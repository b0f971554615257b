"""``PerformanceResponse`` and ``PerformanceMetrics``: a model's figures over a window, merged from buckets.

One statement whatever the window (a UNION ALL, see :func:`_statement`; compiled once per shape and
prepared on PostgreSQL): the scalar metrics per bucket start (summed by the database over deployments
and environments) with the error maps of buckets that had failures, the sketches the window needs (its
edges, and starts shared by several rows; the covered middle comes from coarser parent buckets), and
the previous window's totals for the insights. With the user and the model, a request makes three
database round trips.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from django.conf import settings
from django.db.models import Aggregate, Count, Min, Q, TextField, Value
from django.db.models.functions import Cast
from django.utils import timezone

from analytics import generations, sketch
from analytics.metrics import SCALAR_AGGREGATES, Accumulator, Window, bucket_start, money, ratio
from analytics.models import GRANULARITY_SECONDS, MetricBucket
from analytics.rules import insights
from deployments import selectors as deployment_selectors
from modelhub.api.dates import iso
from modelhub.api.exceptions import InvalidParameter
from modelhub.db import CompiledRows

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
    """Per-bucket points plus the window's total for one query."""

    def __init__(self, window: Window) -> None:
        self.window = window
        self.by_start: dict[datetime, _Point] = {}
        self.total = Accumulator()
        self.dense: list[_DensePoint] | None = None


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


class _TextList(Aggregate):
    """The values of a text expression joined with commas: ``string_agg`` / SQLite's ``group_concat``.

    Joined JSON documents read back as one JSON array (``[`` + text + ``]``), so a group's sketches or
    error maps arrive in its one row of the one statement.
    """

    function = "STRING_AGG"
    template = "%(function)s(%(expressions)s, ',')"
    output_field = TextField()

    def as_sqlite(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, function="GROUP_CONCAT", **extra)


def _json_list(text: str | None) -> list:
    return orjson.loads(f"[{text}]") if text else []


def _covered(window: Window) -> tuple[str | None, tuple[datetime, datetime] | None]:
    """The coarser granularity and the range of it that lies wholly inside the window (or None)."""
    parent = _PARENT.get(window.granularity)
    if parent is None:
        return None, None
    step = timedelta(seconds=GRANULARITY_SECONDS[parent])
    first = bucket_start(window.start, parent)
    first = first if first == window.start else first + step
    last = bucket_start(window.end, parent)
    return parent, ((first, last) if last > first else None)


# Row kinds of the one statement (its first column).
_TOTAL_ROW, _GROUP, _SHARED, _PARENT_ROW, _PREVIOUS_ROW = 0, 1, 2, 3, 4
# What a time-series point needs; the grouped rows carry only these scalars (NULL in the others' places).
_POINT_SCALARS = ("requests", "failures", "lat_count", "lat_sum", "p95", "cost")
_AT = {name: 2 + _SCALARS.index(name) for name in _POINT_SCALARS}


def _statement(
    *,
    granularity: str,
    parent: str | None,
    model_id: uuid.UUID,
    start: datetime,
    end: datetime,
    covered_start: datetime | None = None,
    covered_end: datetime | None = None,
    since: datetime | None = None,
    **scope: str,
) -> Any:
    """The one query of a series; rows ``(kind, bucket_start, *scalars, rows, errors, sketches)``:

    * ``_TOTAL_ROW`` (first: on SQLite its column types convert every row): the window's scalar figures
      summed by the database, its row count and the error maps of its edge rows that had failures;
    * ``_GROUP``: per bucket start of the window, what a time-series point needs (``_POINT_SCALARS``),
      summed over deployments and environments, the row count and - for starts on the window's edges
      (outside the covered parent buckets) - every row's sketch;
    * ``_PREVIOUS_ROW`` (with ``since``, the previous window's start): that window's scalar figures;
    * ``_SHARED``: the sketch of each row in the covered middle whose start several rows share (a trend
      point's p95 needs their merged sketch);
    * ``_PARENT_ROW``: the error map and sketch of each covered ``parent`` bucket (the total's middle).
    """
    sketch_text = Cast("latency_sketch", TextField())
    nothing = Value(None, output_field=TextField())  # NULL: the first branch's column types apply
    blanks = {f"blank_{name}": nothing for name in _SCALARS}
    point_columns = [name if name in _POINT_SCALARS else f"blank_{name}" for name in _SCALARS]
    outside = Q(bucket_start__gte=start)
    if covered_start is not None:
        outside &= Q(bucket_start__lt=covered_start) | Q(bucket_start__gte=covered_end)
    window_rows = _buckets(model_id, granularity, start, end, scope)

    def summed(qs: Any, kind: int, errors: Any) -> Any:
        return (
            qs.values("model_id")  # one group: the model's rows
            .annotate(kind=Value(kind), first=Min("bucket_start"), **SCALAR_AGGREGATES, rows=Count("id"), e=errors)
            .values_list("kind", "first", *_SCALARS, "rows", "e", "e")
            .order_by()
        )

    # The total's error maps: the edge rows' (those that had failures); the covered middle's come with the
    # parent rows below (one map a day instead of one an hour: 169 maps became 31 for 7 days at 1h).
    total = summed(
        window_rows, _TOTAL_ROW, _TextList(Cast("errors", TextField()), filter=Q(failure_count__gt=0) & outside)
    )
    grouped = (
        window_rows.values("bucket_start")
        .annotate(
            kind=Value(_GROUP),
            **{name: SCALAR_AGGREGATES[name] for name in _POINT_SCALARS},
            **{f"blank_{name}": nothing for name in _SCALARS if name not in _POINT_SCALARS},
            rows=Count("id"),
            e=nothing,
            sketch_list=_TextList(sketch_text, filter=outside),
        )
        .values_list("kind", "bucket_start", *point_columns, "rows", "e", "sketch_list")
        .order_by()
    )
    branches = [grouped]
    if since is not None:
        branches.append(summed(_buckets(model_id, granularity, since, start, scope), _PREVIOUS_ROW, nothing))
    if covered_start is not None:
        middle = _buckets(model_id, granularity, covered_start, covered_end, scope)
        shared_starts = middle.values("bucket_start").annotate(n=Count("id")).filter(n__gt=1).values("bucket_start")
        branches.append(
            middle.filter(bucket_start__in=shared_starts)
            .annotate(kind=Value(_SHARED), **blanks, rows=nothing, e=nothing, s=sketch_text)
            .values_list("kind", "bucket_start", *blanks, "rows", "e", "s")
            .order_by()
        )
        branches.append(
            _buckets(model_id, parent, covered_start, covered_end, scope)
            .annotate(kind=Value(_PARENT_ROW), **blanks, rows=nothing, e=Cast("errors", TextField()), s=sketch_text)
            .values_list("kind", "bucket_start", *blanks, "rows", "e", "s")
            .order_by()
        )
    return total.union(*branches, all=True)


class _Point:
    """One time-series point: what a bucket start's rows sum to (``_POINT_SCALARS``) and, when several
    rows share the start, their merged sketch (its p95)."""

    __slots__ = ("requests", "failures", "lat_count", "lat_sum", "p95", "cost", "sketch")

    def __init__(self, row: tuple | None = None) -> None:
        self.sketch: dict[int, int] = {}
        if row is None:
            self.requests = self.failures = self.lat_count = 0
            self.lat_sum, self.p95, self.cost = 0.0, None, Decimal(0)
            return
        self.requests = row[_AT["requests"]]
        self.failures = row[_AT["failures"]]
        self.lat_count = row[_AT["lat_count"]]
        self.lat_sum = row[_AT["lat_sum"]] or 0.0
        self.p95 = row[_AT["p95"]]
        self.cost = row[_AT["cost"]] or Decimal(0)


# Compiled once per shape (granularity, covered or not, scope): building and compiling this queryset
# (tens of annotations, three branches) costs more than running it.
_STATEMENT = CompiledRows(_statement)


class _SeriesCache:
    """This process's loaded series, each kept under the figure generations it was loaded under
    (:mod:`analytics.generations`: the next rollup of its model or a retention pass moves them on) and for
    at most ``ANALYTICS_SERIES_CACHE_SECONDS``; ``ANALYTICS_SERIES_CACHE_POINTS`` bounds the points kept
    in all (the least recently used series go first). A kept series is shared by the requests that read
    it, which only read it (``_dense`` fills its memo once)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # requests run on a thread pool
        self._entries: dict[tuple, tuple[tuple[str, str], float, int, Any]] = {}
        self.points = 0

    def get(self, key: tuple, generation: tuple[str, str]) -> Any:
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is None:
                return None
            if entry[0] != generation or entry[1] <= time.monotonic():
                self.points -= entry[2]
                return None
            self._entries[key] = entry  # re-inserted last: the dict's order is the recency
            return entry[3]

    def put(self, key: tuple, generation: tuple[str, str], points: int, value: Any) -> None:
        limit = settings.ANALYTICS_SERIES_CACHE_POINTS
        if points > limit:
            return
        expires = time.monotonic() + settings.ANALYTICS_SERIES_CACHE_SECONDS
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.points -= old[2]
            while self._entries and self.points + points > limit:
                self.points -= self._entries.pop(next(iter(self._entries)))[2]
            self._entries[key] = (generation, expires, points, value)
            self.points += points

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries, self.points = {}, 0


SERIES = _SeriesCache()


def _read(
    model_id: uuid.UUID,
    window: Window,
    *,
    previous: bool,
    deployment_key: str | None,
    environment: str | None,
) -> tuple[_Series, Accumulator]:
    """A window's series and (``previous``) the previous window's totals: kept (:data:`SERIES`) or loaded."""
    generation = None
    if settings.ANALYTICS_SERIES_CACHE_SECONDS > 0 and settings.ANALYTICS_SERIES_CACHE_POINTS > 0:
        generation = generations.current(model_id)  # before the statement: a rollup meanwhile moves it on
    key = (model_id, window.granularity, window.start, window.end, previous, deployment_key, environment)
    if generation is not None:
        kept = SERIES.get(key, generation)
        if kept is not None:
            return kept
    loaded = _load(model_id, window, previous=previous, deployment_key=deployment_key, environment=environment)
    if generation is not None:
        SERIES.put(key, generation, window.points * (2 if previous else 1), loaded)
    return loaded


def _load(
    model_id: uuid.UUID,
    window: Window,
    *,
    previous: bool,
    deployment_key: str | None,
    environment: str | None,
) -> tuple[_Series, Accumulator]:
    """A window's series from the one statement, and (``previous``) the previous window's totals."""
    parent, covered = _covered(window)
    scope = _scope(deployment_key, environment)
    values = {"model_id": model_id, "start": window.start, "end": window.end, **scope}
    if covered is not None:
        values.update(covered_start=covered[0], covered_end=covered[1])
    if previous:
        values["since"] = window.previous().start
    rows = _STATEMENT.rows({"granularity": window.granularity, "parent": parent}, **values)
    series = _Series(window)
    before = Accumulator()
    shared: dict[datetime, dict[int, int]] = defaultdict(dict)
    total_sketch: dict[int, int] = {}
    error_maps: list[dict] = []
    merge_stored = sketch.merge_stored_into
    for row in rows:
        kind = row[0]
        if kind == _GROUP:
            point = series.by_start[row[1]] = _Point(row)
            edge = row[-1]  # an edge start: its sketches are the total's too
            if row[-3] > 1:  # several rows share the start: its p95 needs their merged sketches
                point.p95 = None
                if edge:
                    for part in orjson.loads(f"[{edge}]"):
                        merge_stored(total_sketch, part)
                        merge_stored(point.sketch, part)
            elif edge:
                merge_stored(total_sketch, orjson.loads(edge))
        elif kind == _PARENT_ROW:
            merge_stored(total_sketch, orjson.loads(row[-1]))
            error_maps.append(orjson.loads(row[-2]))
        elif kind == _SHARED:
            merge_stored(shared[row[1]], orjson.loads(row[-1]))
        elif kind == _TOTAL_ROW:
            series.total = Accumulator.from_scalars(row[2:-3])
            error_maps.extend(_json_list(row[-2]))
        else:  # _PREVIOUS_ROW
            before = Accumulator.from_scalars(row[2:-3])
    for stored in error_maps:
        series.total.merge_stored_errors(stored)
    series.total.sketch = total_sketch
    for start, combined in shared.items():  # a covered start's sketches (rows come in no set order)
        series.by_start[start].sketch = combined
    return series, before


def load_series(model_id: uuid.UUID, window: Window, *, deployment_key: str | None, environment: str | None) -> _Series:
    """A window's figures, from one statement whatever its length."""
    return _read(model_id, window, previous=False, deployment_key=deployment_key, environment=environment)[0]


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
            {"timestamp": stamp, "requests": requests, "latency": latency, "cost": cost, "errors": errors}
            for stamp, requests, latency, cost, errors, _ in _dense(series)
        ],
    }


# A dense point: (ISO timestamp, requests, average latency, cost as the API writes it, failures, its _Point).
_DensePoint = tuple[str, int, float, float, int, "_Point"]


def _dense(series: _Series) -> list[_DensePoint]:
    """Every bucket of the window, zeros where nothing happened; computed once (the time series and the
    trends both read it)."""
    if series.dense is None:
        empty = _Point()
        nothing = (0, 0.0, 0.0, 0, empty)
        out = []
        start, end, step, by_start = series.window.start, series.window.end, series.window.step, series.by_start
        while start < end:
            p = by_start.get(start)
            if p is None:
                out.append((iso(start), *nothing))
            else:
                latency = round(p.lat_sum / p.lat_count, 3) if p.lat_count else 0.0
                out.append((iso(start), p.requests, latency, money(p.cost), p.failures, p))
            start += step
        series.dense = out
    return series.dense


def _p95(acc: _Point) -> float:
    """A bucket's p95: stored by the rollup for a single row, else from the merged sketch."""
    if acc.p95 is not None and not acc.sketch:
        return acc.p95
    return sketch.quantiles(acc.sketch, (0.95,))[0]


def _trends(series: _Series) -> dict[str, list[dict[str, Any]]]:
    points = _dense(series)
    return {
        "requests": [{"timestamp": s, "value": requests} for s, requests, _, _, _, _ in points],
        "latency": [{"timestamp": s, "value": round(_p95(p), 3)} for s, _, _, _, _, p in points],
        "cost": [{"timestamp": s, "value": cost} for s, _, _, cost, _, _ in points],
        "errors": [{"timestamp": s, "value": errors} for s, _, _, _, errors, _ in points],
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
    series, previous = _read(model.pk, window, previous=True, deployment_key=key, environment=environment)
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
