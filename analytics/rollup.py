"""Rolling raw usage events up into metric buckets (1m, 5m, 15m, 1h, 1d).

Idempotent by construction: a bucket is *recomputed* from raw rows (or, for 1d, from
the freshly recomputed 1h buckets plus an exact distinct-user count over the day's raw
rows) and upserted under ``analytics_bucket_unique`` - never incremented. Running the
rollup twice, or over a day already rolled up, writes identical rows.

What to recompute comes from :class:`~analytics.models.DirtyHour`, an append-only log: ingestion
inserts the (model, hour) pairs it touched in the same transaction as the events. The rollup
deletes the marks it claims (:func:`claim_hours`) in the transaction that writes the buckets, *before*
it reads the raw rows: a mark it deleted was committed with its events, so the later reads see them,
and a mark not yet committed is not seen and stays for the next run. Late events (timestamps in an
hour already rolled up) simply mark that hour again.
Hours are claimed hour-major and each hour's raw rows read once for all its claimed models; the days
they fall in are marked (:class:`~analytics.models.DirtyDay`) in the same transaction and recomputed
after the hours, once each. Runs are serialized per chunk by a PostgreSQL advisory lock (SQLite serializes writers
itself), so two workers running the task at once cannot interleave day recomputes.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Q, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from analytics import generations
from analytics.metrics import BUCKET_COLUMNS, KEY_COLUMNS, VALUE_COLUMNS, Accumulator, bucket_start
from analytics.models import DirtyDay, DirtyHour, MetricBucket, UsageEvent
from analytics.selectors.experiments import HOURS_ROLLED_UP
from analytics.services import refresh_model_stats
from modelhub import metrics
from modelhub.db import iter_values_rows

logger = logging.getLogger(__name__)

ROLLUP_LOCK_KEY = 0x6D68_726F  # "mhro": pg_advisory_xact_lock key of the rollup


_UPDATE_FIELDS = list(VALUE_COLUMNS)
_UNIQUE_FIELDS = [c.removesuffix("_id") for c in KEY_COLUMNS]  # the ORM names the foreign key "model"
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


def compute_hours(
    hour: datetime, model_ids: list[uuid.UUID], cutoffs: dict[str, datetime]
) -> dict[uuid.UUID, tuple[int, list[dict[str, Any]]]]:
    """The 1m/5m/15m/1h buckets of some models' hour, from ONE read of its raw rows.

    ``{model_id: (events, bucket rows)}``, every given model included (no events: no buckets, so its stale
    ones are deleted). One read per hour rather than per (model, hour): ingestion interleaves the models, so
    one model's hour lies on nearly every heap page of that hour - twenty models read one by one read every
    page twenty times (and plan against every partition twenty times).
    """
    end = hour + timedelta(hours=1)
    # Per model: (deployment_key, environment, minute of the hour) -> accumulator; the minute as an int (the
    # rows are all in this hour), its start datetime only built per bucket.
    minutes: dict[uuid.UUID, dict[tuple[str, str, int], Accumulator]] = {m: {} for m in model_ids}
    # The ids read as text: a dict lookup by UUID hashes in Python (~1 us a row, a second a day).
    by_text = {**{str(m): m for m in model_ids}, **{m.hex: m for m in model_ids}}  # PostgreSQL's text, SQLite's
    per_text = {text: minutes[m] for text, m in by_text.items()}
    rows = (
        UsageEvent.objects.filter(model_id__in=model_ids, timestamp__gte=hour, timestamp__lt=end)
        .annotate(model_text=Cast("model_id", TextField()), deployment_text=Cast("deployment_id", TextField()))
        .values_list("model_text", "deployment_text", *_EVENT_FIELDS[1:])
    )
    for (
        model_text,
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
        key = (dep.replace("-", "") if dep else "", env, ts.minute)  # deployment_key: the id's 32 hex digits
        per_model = per_text[model_text]
        acc = per_model.get(key)
        if acc is None:
            acc = per_model[key] = Accumulator()
        acc.add_event(ts, lat, prompt, completion, cost, ok, code, message, conf, rating, accepted, use_case, user)
    events = {m: sum(acc.requests for acc in minutes[m].values()) for m in model_ids}
    starts = [hour + timedelta(minutes=m) for m in range(60)]
    return {
        m: (
            events[m],
            _hour_buckets(m, hour, {(dep, env, starts[i]): acc for (dep, env, i), acc in minutes[m].items()}, cutoffs),
        )
        for m in model_ids
    }


def _hour_buckets(
    model_id: uuid.UUID,
    hour: datetime,
    minutes: dict[tuple[str, str, datetime], Accumulator],
    cutoffs: dict[str, datetime],
) -> list[dict[str, Any]]:
    # Each granularity from the next finer one (5m from 1m, 15m from 5m, 1h from 15m): 76 merges per key and
    # hour instead of 180 from the minutes each time (every metric merges associatively).
    per_granularity: dict[str, dict[tuple[str, str, datetime], Accumulator]] = {"1m": minutes}
    finer = minutes
    for granularity in ("5m", "15m", "1h"):
        coarse: dict[tuple[str, str, datetime], Accumulator] = {}
        for (dep, env, start), acc in finer.items():
            key = (dep, env, bucket_start(start, granularity))
            target = coarse.get(key)
            if target is None:
                target = coarse[key] = Accumulator()
            target.merge(acc)
        per_granularity[granularity] = finer = coarse
    return [
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


def compute_days(day: datetime, model_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[dict[str, Any]]]:
    """Some models' 1d buckets of one day: their (just recomputed) 1h buckets merged, plus exact distinct users
    from the raw rows - counted for all the models in one read of the day (as :func:`compute_hours` reads an
    hour once: one model's day lies on nearly every heap page of that day)."""
    end = day + timedelta(days=1)
    hours = MetricBucket.objects.filter(
        granularity="1h", model_id__in=model_ids, bucket_start__gte=day, bucket_start__lt=end
    )
    merged: dict[uuid.UUID, dict[tuple[str, str], Accumulator]] = {m: defaultdict(Accumulator) for m in model_ids}
    for row in hours.values_list("model_id", "deployment_key", "environment", *VALUE_COLUMNS):
        merged[row[0]][(row[1], row[2])].merge(Accumulator.from_row(row[3:]))
    users = (
        UsageEvent.objects.filter(model_id__in=model_ids, timestamp__gte=day, timestamp__lt=end)
        .exclude(user_id="")
        .values_list("model_id", "deployment_id", "environment")
        .annotate(n=Count("user_id", distinct=True))
        .order_by()
    )
    distinct = {(m, dep.hex if dep else "", env): n for m, dep, env, n in users}
    out: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for model_id, per_key in merged.items():
        buckets = out[model_id] = []
        for (dep, env), acc in per_key.items():
            fields = acc.bucket_fields()
            fields["distinct_users"] = distinct.get((model_id, dep, env), 0)
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
    return out


# A scope is (model_id, granularity, start, end): after a write, the buckets in each scope are
# exactly the rows given - upserted under analytics_bucket_unique, and any other bucket in the
# scope (a key the raw rows no longer produce) deleted.
Scope = tuple[uuid.UUID, str, datetime, datetime]


def write_buckets(buckets: list[dict[str, Any]], scopes: list[Scope]) -> None:
    """Replace the buckets of ``scopes`` with ``buckets``; the models' figure generations move on at commit
    (registered after the writes: outside a transaction ``on_commit`` runs at once)."""
    _write_buckets(buckets, scopes)
    generations.models_written({scope[0] for scope in scopes} | {bucket["model_id"] for bucket in buckets})


def _write_buckets(buckets: list[dict[str, Any]], scopes: list[Scope]) -> None:
    if connection.vendor == "postgresql":
        _write_buckets_postgres(buckets, scopes)
        return
    keep = {tuple(b[c] for c in KEY_COLUMNS) for b in buckets}
    for model_id, granularity, start, end in scopes:
        rows = MetricBucket.objects.filter(
            model_id=model_id, granularity=granularity, bucket_start__gte=start, bucket_start__lt=end
        )
        stale = [pk for pk, *key in rows.values_list("pk", *KEY_COLUMNS) if tuple(key) not in keep]
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


def _write_buckets_postgres(buckets: list[dict[str, Any]], scopes: list[Scope]) -> None:
    """Binary COPY into a temporary staging table, then one DELETE of stale keys and one upsert.

    The ORM's bulk upsert cost ~0.7 ms of Python per bucket (26 fields prepared one by one);
    a day of 20 busy models is ~37,000 buckets.
    """
    import psycopg
    from psycopg.types.json import set_json_dumps

    columns = ", ".join(name for name, _ in BUCKET_COLUMNS)
    updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in VALUE_COLUMNS)
    with psycopg.Cursor(connection.connection) as raw:
        set_json_dumps(_json_dumps, context=raw)
        raw.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {_BUCKET_STAGING} AS SELECT {columns} FROM {_BUCKET_TABLE} WITH NO DATA"  # noqa: S608
        )
        raw.execute(f"DELETE FROM {_BUCKET_STAGING}")  # noqa: S608
        with raw.copy(f"COPY {_BUCKET_STAGING} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types([sqltype for _, sqltype in BUCKET_COLUMNS])
            for bucket in buckets:
                copy.write_row([bucket[name] for name, _ in BUCKET_COLUMNS])
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
            f"ON CONFLICT ({', '.join(KEY_COLUMNS)}) DO UPDATE SET {updates}"
        )


def _json_dumps(value: Any) -> str:
    import orjson

    return orjson.dumps(value).decode()


def _claim_days(*, before: datetime, limit: int) -> list[tuple[int, uuid.UUID, datetime]]:
    """Up to ``limit`` DirtyDay marks made before ``before``, time-major, row-locked and deleted in the
    caller's transaction: ``(pk, model_id, day)``. (Only the rollup writes day marks, one per (model, day).)"""
    claimed = list(
        DirtyDay.objects.select_for_update()
        .filter(marked_at__lte=before)
        .order_by("day", "model_id")
        .values_list("pk", "model_id", "day")[:limit]
    )
    if claimed:
        DirtyDay.objects.filter(pk__in=[pk for pk, _, _ in claimed]).delete()
    return claimed


def claim_hours(*, before: datetime, limit: int) -> list[tuple[uuid.UUID, datetime]]:
    """Up to ``limit`` distinct (model, hour) pairs marked before ``before``, hour-major, their marks deleted
    in the caller's transaction (which must then read the hours' raw rows).

    READ COMMITTED: the DELETE sees every mark committed before it began, each committed with its
    events, and the reads after it see those events. Marks made after ``before`` stay (ingestion
    re-marks the current hour all the time); so do marks whose batch has not committed.
    """
    pairs = list(
        DirtyHour.objects.filter(marked_at__lte=before)
        .order_by("hour", "model_id")
        .values_list("model_id", "hour")
        .distinct()[:limit]
    )
    if pairs:
        by_hour: dict[datetime, list[uuid.UUID]] = defaultdict(list)
        for model_id, hour in pairs:
            by_hour[hour].append(model_id)
        marked = Q()
        for hour, model_ids in by_hour.items():
            marked |= Q(hour=hour, model_id__in=model_ids)
        DirtyHour.objects.filter(marked, marked_at__lte=before).delete()
    return pairs


def _rollup_days(report: RollupReport, *, now: datetime | None, chunk_days: int = 50) -> None:
    """Recompute the 1d buckets of every marked day (marked before this phase began), chunk by chunk."""
    phase_started = timezone.now()
    while True:
        cutoff = _retention_cutoffs(now or timezone.now())["1d"] - timedelta(days=1)
        with transaction.atomic():
            _lock()
            claimed = _claim_days(before=phase_started, limit=chunk_days)
            if not claimed:
                return
            by_day: dict[datetime, list[uuid.UUID]] = defaultdict(list)
            for _, model_id, day in claimed:
                if day >= cutoff:
                    by_day[day].append(model_id)
            day_buckets: list[dict[str, Any]] = []
            day_scopes: list[Scope] = []
            for day, model_ids in by_day.items():
                for model_id, buckets in compute_days(day, model_ids).items():
                    day_buckets += buckets
                    day_scopes.append((model_id, "1d", day, day + timedelta(days=1)))
            write_buckets(day_buckets, day_scopes)
            report.buckets += len(day_buckets)
            report.days += len(claimed)


def _lock() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ROLLUP_LOCK_KEY])


def rollup(*, chunk_hours: int = 48, max_chunks: int | None = None, now: datetime | None = None) -> RollupReport:
    """Recompute every dirty (model, hour), chunk by chunk, then every day those hours fall in, once.

    Marks are claimed hour by hour (all of an hour's models in one chunk where they fit, so the hour's raw rows
    are read once) and only those made before the run began: ingestion re-marks the current hour all the
    time, and the run would otherwise chase it for as long as traffic lasts. Each hour chunk marks its days
    (:class:`~analytics.models.DirtyDay`, in the same transaction); the days are recomputed after the hours,
    each once, however many chunks touched them.
    """
    started = time.monotonic()
    report = RollupReport()
    touched_models: set[uuid.UUID] = set()
    run_started = timezone.now()
    chunks = 0
    while max_chunks is None or chunks < max_chunks:
        cutoffs = _retention_cutoffs(now or timezone.now())
        with transaction.atomic():
            _lock()
            claimed = claim_hours(before=run_started, limit=chunk_hours)
            if not claimed:
                break
            HOURS_ROLLED_UP.notify(claimed)  # experiments (#11)
            by_hour: dict[datetime, list[uuid.UUID]] = defaultdict(list)
            for model_id, hour in claimed:
                if hour >= cutoffs["raw"] - timedelta(hours=1):  # else its raw rows are past retention
                    by_hour[hour].append(model_id)
            buckets: list[dict[str, Any]] = []
            scopes: list[Scope] = []
            days: set[tuple[uuid.UUID, datetime]] = set()
            for hour, model_ids in by_hour.items():
                for model_id, (events, hour_buckets) in compute_hours(hour, model_ids, cutoffs).items():
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
            DirtyDay.objects.bulk_create(
                [DirtyDay(model_id=model_id, day=day) for model_id, day in sorted(days)], ignore_conflicts=True
            )
            report.buckets += len(buckets)
            report.hours += len(claimed)
        chunks += 1
    _rollup_days(report, now=now)
    if touched_models:
        refresh_model_stats(touched_models, now=now)
    report.seconds = time.monotonic() - started
    metrics.rollup_duration.observe(report.seconds)
    metrics.rollup_events.inc(report.events)
    metrics.rollup_last_success.set(time.time())
    if report.hours:
        logger.info("rollup: %s", report.as_dict())
    return report
