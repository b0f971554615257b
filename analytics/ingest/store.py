"""Storing validated events: one statement per batch, request ids already stored skipped, hours marked dirty.

A batch first claims its request ids in :class:`~analytics.models.UsageEventKey` (primary key
request_id) and stores only the events whose key it inserted: a re-sent requestId is a duplicate
whatever its timestamp - on PostgreSQL, whatever partition the event would land in (a partitioned
table's unique constraints must include the partition key, so request_id cannot be unique there).

PostgreSQL: binary COPY into a session temporary table, then one statement - a CTE ``INSERT INTO
keys ... ON CONFLICT (request_id) DO NOTHING RETURNING request_id`` joined into the ``INSERT INTO``
the events. A batch that meets a day with no partition yet (the upkeep job creates them ahead) has the
partitions created and is retried once. SQLite: ``INSERT OR IGNORE`` per key (the transaction holds the
database's write lock from its first statement), then the new events in one executemany. In the same
transaction the (model, hour) pairs the batch touched are marked dirty for the rollup (late events included).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from django.db import connection, models, transaction

from analytics import partitions
from analytics.models import DirtyHour, UsageEvent, UsageEventKey

_PG_TYPES = {
    models.CharField: "text",
    models.DateTimeField: "timestamptz",
    models.ForeignKey: "uuid",
    models.FloatField: "float8",
    models.PositiveIntegerField: "int4",
    models.PositiveSmallIntegerField: "int2",
    models.DecimalField: "numeric",
    models.BooleanField: "bool",
}
# Every column ingestion writes (the id is generated; received_at is the batch's own time), with its
# PostgreSQL type for binary COPY - read off the model, so a new column cannot be forgotten here.
_COLUMNS = tuple(
    (f.column, _PG_TYPES[type(f)]) for f in UsageEvent._meta.concrete_fields if f.name not in ("id", "received_at")
)
_EVENT_TABLE = UsageEvent._meta.db_table
_KEY_TABLE = UsageEventKey._meta.db_table
_DIRTY_TABLE = DirtyHour._meta.db_table


def _hour(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


def store(rows: list[dict], now: datetime) -> int:
    """Insert ``rows`` (skipping request ids already stored) and mark their hours dirty; returns rows inserted."""
    names = [name for name, _ in _COLUMNS]
    dirty = sorted({(row["model_id"], _hour(row["timestamp"])) for row in rows})
    if connection.vendor == "postgresql":
        return _store_postgres_retrying(rows, names, dirty, now)
    with transaction.atomic(), connection.cursor() as cursor:
        raw = connection.connection
        claim = f"INSERT OR IGNORE INTO {_KEY_TABLE} (request_id, timestamp) VALUES (?, ?)"  # noqa: S608
        new = [row for row in rows if raw.execute(claim, (row["request_id"], _sqlite_value(row["timestamp"]))).rowcount]
        if new:
            placeholders = ", ".join(["%s"] * (len(names) + 1))
            cursor.executemany(
                f"INSERT INTO {_EVENT_TABLE} ({', '.join(names)}, received_at) VALUES ({placeholders})",  # noqa: S608
                [[_sqlite_value(row[name]) for name in names] + [_sqlite_value(now)] for row in new],
            )
        cursor.executemany(
            f"INSERT OR IGNORE INTO {_DIRTY_TABLE} (model_id, hour, marked_at) VALUES (%s, %s, %s)",  # noqa: S608
            [(m.hex, _sqlite_value(h), _sqlite_value(now)) for m, h in dirty],
        )
    return len(new)


def _store_postgres_retrying(
    rows: list[dict], names: list[str], dirty: list[tuple[uuid.UUID, datetime]], now: datetime
) -> int:
    import psycopg

    try:
        with transaction.atomic():
            return _store_postgres(rows, names, dirty, now)
    except psycopg.errors.CheckViolation:
        # "no partition of relation ... found for row": a day the upkeep job has not created (yet). The
        # events' own CHECKs cannot fail here (validation bounds every value), and if it was not a
        # missing partition the retry fails the same way and raises.
        days = [partitions.utc_day(row["timestamp"]) for row in rows]
        with transaction.atomic(), connection.cursor() as cursor:
            partitions.create(cursor, min(days), max(days))
        with transaction.atomic():
            return _store_postgres(rows, names, dirty, now)


_STAGING = "analytics_ingest_staging"


def _store_postgres(rows: list[dict], names: list[str], dirty: list[tuple[uuid.UUID, datetime]], now: datetime) -> int:
    """Binary COPY into a per-session temporary table, then one INSERT of keys and events.

    COPY's binary rows are encoded by psycopg's C code (a few ms per 500 events, where
    array parameters cost ~17 ms and Django's client-side binding ~35 ms); ON CONFLICT
    needs an INSERT, hence the staging table (temporary: no WAL, emptied at commit).
    """
    import psycopg

    columns = ", ".join(names)
    staged = ", ".join(f"s.{name}" for name in names)
    with psycopg.Cursor(connection.connection) as raw:
        raw.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGING} AS "  # noqa: S608 - identifiers are ours
            f"SELECT {columns} FROM {_EVENT_TABLE} WITH NO DATA"
        )
        raw.execute(f"DELETE FROM {_STAGING}")  # noqa: S608 - emptied at commit anyway, but not inside a test transaction
        with raw.copy(f"COPY {_STAGING} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types([sqltype for _, sqltype in _COLUMNS])
            write = copy.write_row
            for row in rows:
                write([row[name] for name in names])
        raw.execute(
            # The keys first: only the events whose key this batch inserted are stored. A concurrent batch
            # with the same key waits on the key's index entry until we commit, then skips it. Keys in
            # request_id order, so two batches sharing keys wait on each other in one order (no deadlock).
            f"WITH claimed AS (INSERT INTO {_KEY_TABLE} (request_id, timestamp) "  # noqa: S608
            f"SELECT request_id, timestamp FROM {_STAGING} ORDER BY request_id "
            "ON CONFLICT (request_id) DO NOTHING RETURNING request_id) "
            f"INSERT INTO {_EVENT_TABLE} ({columns}, received_at) "
            f"SELECT {staged}, %s FROM {_STAGING} s JOIN claimed c ON c.request_id = s.request_id",
            [now],
        )
        inserted = raw.rowcount
        raw.execute(
            f"INSERT INTO {_DIRTY_TABLE} (model_id, hour, marked_at) "  # noqa: S608
            # DO UPDATE (not DO NOTHING) takes the mark's row lock until this batch commits,
            # so a rollup cannot clear the mark between reading the hour and our commit.
            "SELECT u.m, u.h, %s FROM unnest(%s::uuid[], %s::timestamptz[]) AS u(m, h) "
            "ON CONFLICT (model_id, hour) DO UPDATE SET marked_at = EXCLUDED.marked_at",
            [now, [m for m, _ in dirty], [h for _, h in dirty]],
        )
    return inserted


def _sqlite_value(value: object) -> object:
    """Values as Django's SQLite backend stores them (UUIDs as 32 hex digits, decimals as text)."""
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return connection.ops.adapt_datetimefield_value(value)
    return value
