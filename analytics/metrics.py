"""The metric vocabulary that the rollup writes and every reader merges.

* :data:`METRICS` - the one table of metric columns: each :class:`~analytics.models.MetricBucket`
  value column, the :class:`Accumulator` attribute it holds, and how two buckets combine.
  The column types come from the model's field declarations; the rollup's COPY writer, the
  per-bucket aggregate query and :meth:`Accumulator.from_row` are all derived from here.
* :class:`Accumulator` - additive metrics of a set of events (raw rows or merged buckets).
* :class:`Window` and :func:`bucket_start` - bucket-aligned time ranges.

Longer than 350 lines on purpose: the Accumulator's add/merge are written out (the rollup's inner
loop) beside the metric table they must cover, so the two are read and changed together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from django.db import models
from django.db.models import BigIntegerField, Max, Min, Sum, TextField, Value
from django.db.models.functions import Cast

from analytics import sketch
from analytics.models import GRANULARITY_SECONDS, MetricBucket, TextJSONField

_ZERO = Decimal(0)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Metric:
    """One value column of a bucket.

    ``combine`` says how buckets merge: ``sum``/``min``/``max`` are scalar aggregates a
    database can do; ``sketch``, ``errors`` and ``use_cases`` are JSON merged in Python.
    """

    column: str
    attr: str
    combine: str

    @property
    def scalar(self) -> bool:
        return self.combine in ("sum", "min", "max")

    @property
    def json(self) -> bool:
        return not self.scalar


METRICS: tuple[Metric, ...] = (
    Metric("request_count", "requests", "sum"),
    Metric("success_count", "successes", "sum"),
    Metric("failure_count", "failures", "sum"),
    Metric("latency_count", "lat_count", "sum"),
    Metric("latency_sum", "lat_sum", "sum"),
    Metric("latency_min", "lat_min", "min"),
    Metric("latency_max", "lat_max", "max"),
    Metric("latency_sketch", "sketch", "sketch"),
    # A single bucket's p95 (from its sketch), kept so a time series needs no sketches. Buckets
    # sharing a start need their merged sketch instead, so "max" only serves the one-row case.
    Metric("latency_p95", "p95", "max"),
    Metric("prompt_tokens_sum", "prompt_sum", "sum"),
    Metric("prompt_tokens_max", "prompt_max", "max"),
    Metric("completion_tokens_sum", "completion_sum", "sum"),
    Metric("completion_tokens_max", "completion_max", "max"),
    Metric("cost_sum", "cost", "sum"),
    Metric("confidence_sum", "conf_sum", "sum"),
    Metric("confidence_count", "conf_count", "sum"),
    Metric("rating_sum", "rating_sum", "sum"),
    Metric("rating_count", "rating_count", "sum"),
    Metric("accepted_count", "accepted", "sum"),
    Metric("rejected_count", "rejected", "sum"),
    Metric("errors", "errors", "errors"),
    Metric("use_cases", "use_cases", "use_cases"),
    Metric("distinct_users", "distinct_users", "sum"),  # an upper bound when buckets merge
    Metric("last_event_at", "last_event_at", "max"),
)

# What identifies a bucket (its unique constraint), in the constraint's column order.
KEY_COLUMNS = ("granularity", "model_id", "deployment_key", "environment", "bucket_start")
VALUE_COLUMNS = tuple(m.column for m in METRICS)
SCALAR_METRICS = tuple(m for m in METRICS if m.scalar)
_JSON_POSITIONS = tuple(i for i, m in enumerate(METRICS) if m.json)

_PG_TYPES = {
    models.BigIntegerField: "int8",
    models.FloatField: "float8",
    models.DecimalField: "numeric",
    models.JSONField: "jsonb",
    TextJSONField: "json",
    models.DateTimeField: "timestamptz",
    models.CharField: "text",
    models.ForeignKey: "uuid",
}


def _pg_type(column: str) -> str:
    return _PG_TYPES[type(MetricBucket._meta.get_field(column))]


# Every column the rollup writes, with its PostgreSQL type (for binary COPY): the key, then the metrics.
BUCKET_COLUMNS: tuple[tuple[str, str], ...] = tuple((c, _pg_type(c)) for c in (*KEY_COLUMNS, *VALUE_COLUMNS))


def check_metric_table() -> list[str]:
    """Problems between :data:`METRICS` and the model (a test and the system checks run this)."""
    declared = {f.column for f in MetricBucket._meta.concrete_fields} - {"id", *KEY_COLUMNS}
    problems = [f"MetricBucket.{c} is not in analytics.metrics.METRICS" for c in sorted(declared - set(VALUE_COLUMNS))]
    problems += [f"METRICS names {c}, which MetricBucket lacks" for c in sorted(set(VALUE_COLUMNS) - declared)]
    problems += [f"Accumulator has no slot {m.attr}" for m in METRICS if m.attr not in Accumulator.__slots__]
    return problems


# --- reading buckets -----------------------------------------------------------------------------
# The JSON columns are read as text and parsed with orjson (Django's JSONField uses the json module).
_EMPTY_SKETCH = '{"keys": [], "counts": []}'


def with_json_text(qs: Any, *, sketch_column: bool = True) -> Any:
    """Annotate ``<column>_text`` for each JSON column; without ``sketch_column`` the sketch is left out."""
    columns = {f"{m.column}_text": Cast(m.column, TextField()) for m in METRICS if m.json}
    if not sketch_column:
        columns["latency_sketch_text"] = Value(_EMPTY_SKETCH, output_field=TextField())
    return qs.annotate(**columns)


# values_list() names that read every metric, JSON columns as text (after :func:`with_json_text`).
VALUE_FIELDS_AS_TEXT = tuple(f"{m.column}_text" if m.json else m.column for m in METRICS)


def parse_json_columns(row: tuple) -> tuple:
    """A ``VALUE_FIELDS_AS_TEXT`` row with its JSON text parsed."""
    values = list(row)
    for i in _JSON_POSITIONS:
        values[i] = orjson.loads(values[i])
    return tuple(values)


def _int_sum(field: str) -> Cast:
    # SUM(bigint) is numeric in PostgreSQL: cast back so rows read straight from psycopg hold ints.
    return Cast(Sum(field), BigIntegerField())


def _aggregate(metric: Metric) -> Any:
    if metric.combine == "min":
        return Min(metric.column)
    if metric.combine == "max":
        return Max(metric.column)
    field = MetricBucket._meta.get_field(metric.column)
    return _int_sum(metric.column) if isinstance(field, models.BigIntegerField) else Sum(metric.column)


# Scalar metrics summed (min/max-ed) over several buckets by the database, keyed by accumulator attribute.
SCALAR_AGGREGATES: dict[str, Any] = {m.attr: _aggregate(m) for m in SCALAR_METRICS}
_SCALAR_ATTRS = tuple(m.attr for m in SCALAR_METRICS)
_SCALAR_IS_SUM = tuple(m.combine == "sum" for m in SCALAR_METRICS)


# --- time ----------------------------------------------------------------------------------------
def bucket_start(ts: datetime, granularity: str) -> datetime:
    seconds = GRANULARITY_SECONDS[granularity]
    epoch = int((ts - _EPOCH).total_seconds())
    return _EPOCH + timedelta(seconds=epoch - epoch % seconds)


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


# --- the accumulator -----------------------------------------------------------------------------
class Accumulator:
    """Additive metrics of a set of events; built from raw rows or merged from buckets.

    :meth:`add_event` and :meth:`merge` are written out rather than looped over
    :data:`METRICS`: they are the rollup's inner loop (a test checks they cover the table).
    """

    __slots__ = (
        "requests",
        "successes",
        "failures",
        "lat_count",
        "lat_sum",
        "lat_min",
        "lat_max",
        "sketch",
        "prompt_sum",
        "prompt_max",
        "completion_sum",
        "completion_max",
        "cost",
        "conf_sum",
        "conf_count",
        "rating_sum",
        "rating_count",
        "accepted",
        "rejected",
        "errors",
        "use_cases",
        "users",
        "distinct_users",
        "last_event_at",
        "p95",
    )

    def __init__(self) -> None:
        self.requests = self.successes = self.failures = self.lat_count = 0
        self.lat_sum = 0.0
        self.lat_min: float | None = None
        self.lat_max: float | None = None
        self.sketch: dict[int, int] = {}
        self.prompt_sum = self.prompt_max = self.completion_sum = self.completion_max = 0
        self.cost = _ZERO
        self.conf_sum = 0.0
        self.conf_count = self.rating_sum = self.rating_count = self.accepted = self.rejected = 0
        self.errors: dict[str, dict[str, Any]] = {}
        self.use_cases: dict[str, int] = {}
        self.users: set[str] = set()
        self.distinct_users = 0
        self.last_event_at: datetime | None = None
        self.p95: float | None = None  # the stored p95 of a single bucket (None: read it from the sketch)

    # -- from raw events -------------------------------------------------------------
    def add_event(
        self, ts, latency, prompt, completion, cost, success, code, message, conf, rating, accepted, use_case, user
    ) -> None:
        self.requests += 1
        if success:
            self.successes += 1
        else:
            self.failures += 1
            entry = self.errors.get(code)
            if entry is None:
                self.errors[code] = {"count": 1, "lastOccurred": ts, "message": message}
            else:
                entry["count"] += 1
                if ts >= entry["lastOccurred"]:
                    entry["lastOccurred"] = ts
                    entry["message"] = message
        self.lat_count += 1
        self.lat_sum += latency
        if self.lat_min is None or latency < self.lat_min:
            self.lat_min = latency
        if self.lat_max is None or latency > self.lat_max:
            self.lat_max = latency
        k = sketch.key_for(latency)
        self.sketch[k] = self.sketch.get(k, 0) + 1
        self.prompt_sum += prompt
        if prompt > self.prompt_max:
            self.prompt_max = prompt
        self.completion_sum += completion
        if completion > self.completion_max:
            self.completion_max = completion
        self.cost += cost
        if conf is not None:
            self.conf_sum += conf
            self.conf_count += 1
        if rating is not None:
            self.rating_sum += rating
            self.rating_count += 1
        if accepted is True:
            self.accepted += 1
        elif accepted is False:
            self.rejected += 1
        if use_case:
            self.use_cases[use_case] = self.use_cases.get(use_case, 0) + 1
        if user:
            self.users.add(user)
        if self.last_event_at is None or ts > self.last_event_at:
            self.last_event_at = ts

    # -- merging -----------------------------------------------------------------------
    def merge(self, other: Accumulator, *, sketch: bool = True) -> None:
        self.requests += other.requests
        self.successes += other.successes
        self.failures += other.failures
        self.lat_count += other.lat_count
        self.lat_sum += other.lat_sum
        if other.lat_min is not None and (self.lat_min is None or other.lat_min < self.lat_min):
            self.lat_min = other.lat_min
        if other.lat_max is not None and (self.lat_max is None or other.lat_max > self.lat_max):
            self.lat_max = other.lat_max
        if sketch:
            _merge_sketch(self.sketch, other.sketch)
        self.prompt_sum += other.prompt_sum
        self.prompt_max = max(self.prompt_max, other.prompt_max)
        self.completion_sum += other.completion_sum
        self.completion_max = max(self.completion_max, other.completion_max)
        self.cost += other.cost
        self.conf_sum += other.conf_sum
        self.conf_count += other.conf_count
        self.rating_sum += other.rating_sum
        self.rating_count += other.rating_count
        self.accepted += other.accepted
        self.rejected += other.rejected
        for code, entry in other.errors.items():
            mine = self.errors.get(code)
            if mine is None:
                self.errors[code] = dict(entry)
            else:
                mine["count"] += entry["count"]
                if entry["lastOccurred"] >= mine["lastOccurred"]:
                    mine["lastOccurred"] = entry["lastOccurred"]
                    mine["message"] = entry["message"]
        for use_case, count in other.use_cases.items():
            self.use_cases[use_case] = self.use_cases.get(use_case, 0) + count
        self.users |= other.users
        self.distinct_users += other.distinct_users  # an upper bound when merging stored buckets
        if other.last_event_at is not None and (self.last_event_at is None or other.last_event_at > self.last_event_at):
            self.last_event_at = other.last_event_at

    # -- stored buckets ----------------------------------------------------------------
    @classmethod
    def from_row(cls, row: tuple) -> Accumulator:
        """From a row of every metric in :data:`METRICS` order (JSON columns already parsed)."""
        acc = cls()
        for metric, value in zip(METRICS, row, strict=True):
            if metric.combine == "sketch":
                acc.sketch = sketch.from_json(value)
            elif metric.combine == "errors":
                acc.merge_stored_errors(value)
            elif metric.combine == "use_cases":
                acc.use_cases = dict(value)
            else:
                setattr(acc, metric.attr, value)
        return acc

    @classmethod
    def from_scalars(cls, values: tuple | list) -> Accumulator:
        """From one value per :data:`SCALAR_METRICS` entry, in that order; a ``None`` sum is zero."""
        acc = cls()
        for attr, is_sum, value in zip(_SCALAR_ATTRS, _SCALAR_IS_SUM, values, strict=True):
            if value is not None or not is_sum:
                setattr(acc, attr, value)
        return acc

    def merge_stored_errors(self, stored: dict[str, dict[str, Any]]) -> None:
        """Add a bucket's ``errors`` column (``{code: {count, lastOccurred (ISO), message}}``)."""
        for code, e in stored.items():
            occurred = datetime.fromisoformat(e["lastOccurred"])
            mine = self.errors.get(code)
            if mine is None:
                self.errors[code] = {"count": e["count"], "lastOccurred": occurred, "message": e["message"]}
            else:
                mine["count"] += e["count"]
                if occurred >= mine["lastOccurred"]:
                    mine["lastOccurred"], mine["message"] = occurred, e["message"]

    def bucket_fields(self) -> dict[str, Any]:
        """The bucket row's value columns (every name in :data:`VALUE_COLUMNS`)."""
        out = {m.column: getattr(self, m.attr) for m in SCALAR_METRICS}
        out["latency_sketch"] = sketch.to_json(self.sketch)
        out["latency_p95"] = sketch.quantiles(self.sketch, (0.95,))[0] if self.lat_count else None
        out["errors"] = {
            code: {"count": e["count"], "lastOccurred": e["lastOccurred"].isoformat(), "message": e["message"]}
            for code, e in sorted(self.errors.items())
        }
        out["use_cases"] = dict(sorted(self.use_cases.items()))
        out["distinct_users"] = len(self.users) if self.users else self.distinct_users
        return out


_merge_sketch = sketch.merge_into


# --- how figures are written ---------------------------------------------------------------------
def money(value: Decimal | float) -> float:
    """A decimal amount as the API writes it: a JSON number, rounded to 8 places (the stored precision)."""
    return float(round(Decimal(value), 8))


def ratio(num: float, den: float) -> float:
    return round(num / den, 6) if den else 0.0
