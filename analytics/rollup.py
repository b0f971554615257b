"""Rolling raw usage events up into metric buckets (1m, 5m, 15m, 1h, 1d).

Idempotent by construction: a bucket is *recomputed* from raw rows (or, for 1d, from
the freshly recomputed 1h buckets plus an exact distinct-user count over the day's raw
rows) and upserted under ``analytics_bucket_unique`` - never incremented. Running the
rollup twice, or over a day already rolled up, writes identical rows.

What to recompute comes from :class:`~analytics.models.DirtyHour`: ingestion marks the
(model, hour) pairs it touched, in the same transaction as the events, with an upsert
that locks the mark until the ingest commits. The rollup claims marks with
``SELECT ... FOR UPDATE`` and deletes them in the transaction that writes the buckets,
so an event is either visible to the recompute or re-marks its hour afterwards; late
events (timestamps in an hour already rolled up) simply mark that hour again.
Runs are serialized per chunk by a PostgreSQL advisory lock (SQLite serializes writers
itself), so two workers running the task at once cannot interleave day recomputes.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from analytics import sketch
from analytics.models import GRANULARITY_SECONDS, DirtyHour, MetricBucket, UsageEvent
from analytics.sketch import merge_into as merge_sketch
from modelhub.db import iter_values_rows

logger = logging.getLogger(__name__)

ROLLUP_LOCK_KEY = 0x6D68_726F  # "mhro": pg_advisory_xact_lock key of the rollup
_ZERO = Decimal(0)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Accumulator:
    """Additive metrics of a set of events; built from raw rows or merged from buckets."""

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
            merge_sketch(self.sketch, other.sketch)
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

    @classmethod
    def from_row(cls, row: tuple) -> Accumulator:
        """From a ``values_list(*BUCKET_VALUE_FIELDS)`` row."""
        acc = cls()
        (
            acc.requests,
            acc.successes,
            acc.failures,
            acc.lat_count,
            acc.lat_sum,
            acc.lat_min,
            acc.lat_max,
            sk,
            acc.prompt_sum,
            acc.prompt_max,
            acc.completion_sum,
            acc.completion_max,
            acc.cost,
            acc.conf_sum,
            acc.conf_count,
            acc.rating_sum,
            acc.rating_count,
            acc.accepted,
            acc.rejected,
            errors,
            use_cases,
            acc.distinct_users,
            acc.last_event_at,
        ) = row
        acc.sketch = sketch.from_json(sk)
        acc.merge_stored_errors(errors)
        acc.use_cases = dict(use_cases)
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
        return {
            "request_count": self.requests,
            "success_count": self.successes,
            "failure_count": self.failures,
            "latency_count": self.lat_count,
            "latency_sum": self.lat_sum,
            "latency_min": self.lat_min,
            "latency_max": self.lat_max,
            "latency_sketch": sketch.to_json(self.sketch),
            "latency_p95": sketch.quantiles(self.sketch, (0.95,))[0] if self.lat_count else None,
            "prompt_tokens_sum": self.prompt_sum,
            "prompt_tokens_max": self.prompt_max,
            "completion_tokens_sum": self.completion_sum,
            "completion_tokens_max": self.completion_max,
            "cost_sum": self.cost,
            "confidence_sum": self.conf_sum,
            "confidence_count": self.conf_count,
            "rating_sum": self.rating_sum,
            "rating_count": self.rating_count,
            "accepted_count": self.accepted,
            "rejected_count": self.rejected,
            "errors": {
                code: {"count": e["count"], "lastOccurred": e["lastOccurred"].isoformat(), "message": e["message"]}
                for code, e in sorted(self.errors.items())
            },
            "use_cases": dict(sorted(self.use_cases.items())),
            "distinct_users": len(self.users) if self.users else self.distinct_users,
            "last_event_at": self.last_event_at,
        }


BUCKET_VALUE_FIELDS = (
    "request_count",
    "success_count",
    "failure_count",
    "latency_count",
    "latency_sum",
    "latency_min",
    "latency_max",
    "latency_sketch",
    "prompt_tokens_sum",
    "prompt_tokens_max",
    "completion_tokens_sum",
    "completion_tokens_max",
    "cost_sum",
    "confidence_sum",
    "confidence_count",
    "rating_sum",
    "rating_count",
    "accepted_count",
    "rejected_count",
    "errors",
    "use_cases",
    "distinct_users",
    "last_event_at",
)


def bucket_start(ts: datetime, granularity: str) -> datetime:
    seconds = GRANULARITY_SECONDS[granularity]
    epoch = int((ts - _EPOCH).total_seconds())
    return _EPOCH + timedelta(seconds=epoch - epoch % seconds)


_UPDATE_FIELDS = [
    f.name
    for f in MetricBucket._meta.concrete_fields
    if f.name not in {"id", "granularity", "bucket_start", "model", "deployment_key", "environment"}
]
_UNIQUE_FIELDS = ["granularity", "model", "deployment_key", "environment", "bucket_start"]
_SUB_HOUR = ("1m", "5m", "15m", "1h")


@dataclass
class RollupReport:
    hours: int = 0
    days: int = 0
    buckets: int = 0
    events: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "hours": self.hours,
            "days": self.days,
            "buckets": self.buckets,
            "events": self.events,
            "seconds": round(self.seconds, 3),
        }


def _retention_cutoffs(now: datetime) -> dict[str, datetime]:
    return {g: now - timedelta(days=days) for g, days in settings.ANALYTICS_RETENTION_DAYS.items()}


_EVENT_FIELDS = (
    "deployment_id",
    "environment",
    "timestamp",
    "latency_ms",
    "prompt_tokens",
    "completion_tokens",
    "cost",
    "success",
    "error_code",
    "error_message",
    "confidence_score",
    "user_rating",
    "accepted",
    "use_case",
    "user_id",
)


def compute_hour(model_id: uuid.UUID, hour: datetime, cutoffs: dict[str, datetime]) -> tuple[int, list[dict[str, Any]]]:
    """The 1m/5m/15m/1h buckets of one model's hour, from its raw rows. Returns (events, bucket rows)."""
    end = hour + timedelta(hours=1)
    minutes: dict[tuple[str, str, datetime], Accumulator] = {}
    events = 0
    rows = UsageEvent.objects.filter(model_id=model_id, timestamp__gte=hour, timestamp__lt=end).values_list(
        *_EVENT_FIELDS
    )
    for (
        dep,
        env,
        ts,
        lat,
        prompt,
        completion,
        cost,
        ok,
        code,
        message,
        conf,
        rating,
        accepted,
        use_case,
        user,
    ) in iter_values_rows(rows):
        minute = ts.replace(second=0, microsecond=0)
        key = (dep.hex if dep else "", env, minute)
        acc = minutes.get(key)
        if acc is None:
            acc = minutes[key] = Accumulator()
        acc.add_event(ts, lat, prompt, completion, cost, ok, code, message, conf, rating, accepted, use_case, user)
        events += 1

    per_granularity: dict[str, dict[tuple[str, str, datetime], Accumulator]] = {"1m": minutes}
    for granularity in ("5m", "15m", "1h"):
        coarse: dict[tuple[str, str, datetime], Accumulator] = {}
        for (dep, env, start), acc in minutes.items():
            key = (dep, env, bucket_start(start, granularity))
            target = coarse.get(key)
            if target is None:
                target = coarse[key] = Accumulator()
            target.merge(acc)
        per_granularity[granularity] = coarse
    buckets = [
        {
            "granularity": g,
            "bucket_start": start,
            "model_id": model_id,
            "deployment_key": dep,
            "environment": env,
            **acc.bucket_fields(),
        }
        for g, accs in per_granularity.items()
        if hour >= cutoffs[g] - timedelta(hours=1)
        for (dep, env, start), acc in accs.items()
    ]
    return events, buckets


def compute_day(model_id: uuid.UUID, day: datetime) -> list[dict[str, Any]]:
    """One model's 1d buckets: its (just recomputed) 1h buckets merged, plus exact distinct users from raw rows."""
    end = day + timedelta(days=1)
    hours = MetricBucket.objects.filter(
        granularity="1h", model_id=model_id, bucket_start__gte=day, bucket_start__lt=end
    )
    merged: dict[tuple[str, str], Accumulator] = defaultdict(Accumulator)
    for row in hours.values_list("deployment_key", "environment", *BUCKET_VALUE_FIELDS):
        merged[(row[0], row[1])].merge(Accumulator.from_row(row[2:]))
    users = (
        UsageEvent.objects.filter(model_id=model_id, timestamp__gte=day, timestamp__lt=end)
        .exclude(user_id="")
        .values_list("deployment_id", "environment")
        .annotate(n=Count("user_id", distinct=True))
        .order_by()
    )
    distinct = {(dep.hex if dep else "", env): n for dep, env, n in users}
    buckets = []
    for (dep, env), acc in merged.items():
        fields = acc.bucket_fields()
        fields["distinct_users"] = distinct.get((dep, env), 0)
        buckets.append(
            {
                "granularity": "1d",
                "bucket_start": day,
                "model_id": model_id,
                "deployment_key": dep,
                "environment": env,
                **fields,
            }
        )
    return buckets


# A scope is (model_id, granularity, start, end): after a write, the buckets in each scope are
# exactly the rows given - upserted under analytics_bucket_unique, and any other bucket in the
# scope (a key the raw rows no longer produce) deleted.
Scope = tuple[uuid.UUID, str, datetime, datetime]


def write_buckets(buckets: list[dict[str, Any]], scopes: list[Scope]) -> None:
    if connection.vendor == "postgresql":
        _write_buckets_postgres(buckets, scopes)
        return
    keep = {
        (b["granularity"], b["model_id"], b["deployment_key"], b["environment"], b["bucket_start"]) for b in buckets
    }
    for model_id, granularity, start, end in scopes:
        rows = MetricBucket.objects.filter(
            model_id=model_id, granularity=granularity, bucket_start__gte=start, bucket_start__lt=end
        )
        stale = [
            pk
            for pk, *key in rows.values_list(
                "pk", "granularity", "model_id", "deployment_key", "environment", "bucket_start"
            )
            if tuple(key) not in keep
        ]
        if stale:
            MetricBucket.objects.filter(pk__in=stale).delete()
    if buckets:
        MetricBucket.objects.bulk_create(
            [MetricBucket(**b) for b in buckets],
            update_conflicts=True,
            unique_fields=_UNIQUE_FIELDS,
            update_fields=_UPDATE_FIELDS,
            batch_size=500,
        )


_BUCKET_TABLE = MetricBucket._meta.db_table
_BUCKET_STAGING = "analytics_bucket_staging"
_BUCKET_COLUMNS = [
    ("granularity", "text"),
    ("bucket_start", "timestamptz"),
    ("model_id", "uuid"),
    ("deployment_key", "text"),
    ("environment", "text"),
    ("request_count", "int8"),
    ("success_count", "int8"),
    ("failure_count", "int8"),
    ("latency_count", "int8"),
    ("latency_sum", "float8"),
    ("latency_min", "float8"),
    ("latency_max", "float8"),
    ("latency_sketch", "jsonb"),
    ("latency_p95", "float8"),
    ("prompt_tokens_sum", "int8"),
    ("prompt_tokens_max", "int8"),
    ("completion_tokens_sum", "int8"),
    ("completion_tokens_max", "int8"),
    ("cost_sum", "numeric"),
    ("confidence_sum", "float8"),
    ("confidence_count", "int8"),
    ("rating_sum", "int8"),
    ("rating_count", "int8"),
    ("accepted_count", "int8"),
    ("rejected_count", "int8"),
    ("errors", "jsonb"),
    ("use_cases", "jsonb"),
    ("distinct_users", "int8"),
    ("last_event_at", "timestamptz"),
]


def _write_buckets_postgres(buckets: list[dict[str, Any]], scopes: list[Scope]) -> None:
    """Binary COPY into a temporary staging table, then one DELETE of stale keys and one upsert.

    The ORM's bulk upsert cost ~0.7 ms of Python per bucket (26 fields prepared one by one);
    a day of 20 busy models is ~37,000 buckets.
    """
    import psycopg
    from psycopg.types.json import set_json_dumps

    columns = ", ".join(name for name, _ in _BUCKET_COLUMNS)
    updates = ", ".join(f"{name} = EXCLUDED.{name}" for name, _ in _BUCKET_COLUMNS[5:])
    with psycopg.Cursor(connection.connection) as raw:
        set_json_dumps(_json_dumps, context=raw)
        raw.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {_BUCKET_STAGING} AS SELECT {columns} FROM {_BUCKET_TABLE} WITH NO DATA"  # noqa: S608
        )
        raw.execute(f"DELETE FROM {_BUCKET_STAGING}")  # noqa: S608
        with raw.copy(f"COPY {_BUCKET_STAGING} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types([sqltype for _, sqltype in _BUCKET_COLUMNS])
            for bucket in buckets:
                copy.write_row([bucket[name] for name, _ in _BUCKET_COLUMNS])
        if scopes:
            raw.execute(
                f"DELETE FROM {_BUCKET_TABLE} b "  # noqa: S608
                "USING unnest(%s::uuid[], %s::text[], %s::timestamptz[], %s::timestamptz[]) AS sc(m, g, s, e) "
                "WHERE b.model_id = sc.m AND b.granularity = sc.g AND b.bucket_start >= sc.s AND b.bucket_start < sc.e "
                f"AND NOT EXISTS (SELECT 1 FROM {_BUCKET_STAGING} t WHERE t.granularity = b.granularity "
                "AND t.model_id = b.model_id AND t.deployment_key = b.deployment_key AND t.environment = b.environment "
                "AND t.bucket_start = b.bucket_start)",
                [[s[0] for s in scopes], [s[1] for s in scopes], [s[2] for s in scopes], [s[3] for s in scopes]],
            )
        raw.execute(
            f"INSERT INTO {_BUCKET_TABLE} ({columns}) SELECT {columns} FROM {_BUCKET_STAGING} "  # noqa: S608
            f"ON CONFLICT (granularity, model_id, deployment_key, environment, bucket_start) DO UPDATE SET {updates}"
        )


def _json_dumps(value: Any) -> str:
    import orjson

    return orjson.dumps(value).decode()


def _lock() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ROLLUP_LOCK_KEY])


def rollup(*, chunk_hours: int = 24, max_chunks: int | None = None, now: datetime | None = None) -> RollupReport:
    """Recompute every dirty (model, hour) and the days they belong to, chunk by chunk."""
    started = time.monotonic()
    report = RollupReport()
    touched_models: set[uuid.UUID] = set()
    chunks = 0
    while max_chunks is None or chunks < max_chunks:
        now_ = now or timezone.now()
        cutoffs = _retention_cutoffs(now_)
        with transaction.atomic():
            _lock()
            claimed = list(
                DirtyHour.objects.select_for_update()
                .order_by("model_id", "hour")
                .values_list("pk", "model_id", "hour")[:chunk_hours]
            )
            if not claimed:
                break
            DirtyHour.objects.filter(pk__in=[pk for pk, _, _ in claimed]).delete()
            days: set[tuple[uuid.UUID, datetime]] = set()
            buckets: list[dict[str, Any]] = []
            scopes: list[Scope] = []
            for _, model_id, hour in claimed:
                if hour < cutoffs["raw"] - timedelta(hours=1):
                    continue  # its raw rows are past retention: nothing to recompute from
                events, hour_buckets = compute_hour(model_id, hour, cutoffs)
                buckets += hour_buckets
                scopes += [
                    (model_id, g, hour, hour + timedelta(hours=1))
                    for g in _SUB_HOUR
                    if hour >= cutoffs[g] - timedelta(hours=1)
                ]
                report.events += events
                days.add((model_id, bucket_start(hour, "1d")))
                touched_models.add(model_id)
            write_buckets(buckets, scopes)
            report.buckets += len(buckets)
            day_buckets: list[dict[str, Any]] = []
            day_scopes: list[Scope] = []
            for model_id, day in sorted(days):
                if day >= cutoffs["1d"] - timedelta(days=1):
                    day_buckets += compute_day(model_id, day)
                    day_scopes.append((model_id, "1d", day, day + timedelta(days=1)))
            write_buckets(day_buckets, day_scopes)
            report.buckets += len(day_buckets)
            report.hours += len(claimed)
            report.days += len(days)
        chunks += 1
    if touched_models:
        refresh_model_stats(touched_models, now=now)
    report.seconds = time.monotonic() - started
    if report.hours:
        logger.info("rollup: %s", report.as_dict())
    return report


def mark_all_dirty(*, since: datetime | None = None) -> int:
    """Mark every (model, hour) with raw events (since ``since``) for recomputation - a full re-roll."""
    qs = UsageEvent.objects.all()
    if since is not None:
        qs = qs.filter(timestamp__gte=since)
    pairs = {
        (m, bucket_start(ts, "1h")) for m, ts in qs.values_list("model_id", "timestamp").iterator(chunk_size=10000)
    }
    now = timezone.now()
    DirtyHour.objects.bulk_create(
        [DirtyHour(model_id=m, hour=h, marked_at=now) for m, h in pairs], ignore_conflicts=True
    )
    return len(pairs)


def refresh_model_stats(model_ids: set[uuid.UUID] | None = None, *, now: datetime | None = None) -> int:
    """Set the catalog's ``popularity`` (requests, last 30 days) and ``avg_rating`` from the 1d rollups."""
    from catalog.services import model_usage_stats_set

    now = now or timezone.now()
    since = bucket_start(now - timedelta(days=30), "1d")
    qs = MetricBucket.objects.filter(granularity="1d", bucket_start__gte=since)
    if model_ids is not None:
        qs = qs.filter(model_id__in=model_ids)
    from django.db.models import Sum

    stats = {
        row["model_id"]: (
            row["requests"] or 0,
            (row["rating_sum"] / row["rating_count"]) if row["rating_count"] else None,
        )
        for row in qs.values("model_id")
        .annotate(requests=Sum("request_count"), rating_sum=Sum("rating_sum"), rating_count=Sum("rating_count"))
        .order_by()
    }
    return model_usage_stats_set(stats, only=model_ids)
