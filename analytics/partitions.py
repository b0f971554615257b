"""Daily range partitions of the raw usage events (PostgreSQL only; README "Partitioning (PostgreSQL)").

``analytics_usageevent`` is ``PARTITION BY RANGE ("timestamp")`` with one partition per UTC day,
``analytics_usageevent_pYYYYMMDD`` for ``[day 00:00Z, day + 1 00:00Z)``, and no DEFAULT partition
(attaching a partition next to a default one scans the default for rows that now belong elsewhere, and
ingestion's bounds - raw retention back, clock skew ahead - say which days can occur).

Partitions are created as plain tables and then ATTACHed: ``ATTACH PARTITION`` takes a SHARE UPDATE
EXCLUSIVE lock on the parent (ingestion and queries go on), where ``CREATE TABLE ... PARTITION OF``
would take ACCESS EXCLUSIVE. Creating and dropping run under one transaction-level advisory lock, so two
workers doing upkeep at once do it once. These helpers take a Django cursor inside a transaction.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, date, datetime, time, timedelta

logger = logging.getLogger(__name__)

TABLE = "analytics_usageevent"
_NAME = re.compile(rf"^{TABLE}_p(\d{{8}})$")
_LOCK_KEY = 0x616E5F7061727473  # "an_parts": pg_advisory_xact_lock key of partition upkeep
DROP_LOCK_TIMEOUT = "5s"  # DETACH needs the parent's ACCESS EXCLUSIVE lock: never queue behind long readers


def partition_name(day: date) -> str:
    return f"{TABLE}_p{day:%Y%m%d}"


def day_start(day: date) -> datetime:
    """The partition's lower bound: UTC midnight of ``day``."""
    return datetime.combine(day, time.min, tzinfo=UTC)


def utc_day(ts: datetime) -> date:
    return ts.astimezone(UTC).date()


def is_partitioned(cursor) -> bool:
    cursor.execute("SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass(%s)", [TABLE])
    return cursor.fetchone() is not None


def existing(cursor) -> dict[date, str]:
    """The daily partitions attached to the events table: {day: name}."""
    cursor.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(%s)",
        [TABLE],
    )
    days: dict[date, str] = {}
    for (name,) in cursor.fetchall():
        match = _NAME.match(name)
        if match:
            days[datetime.strptime(match.group(1), "%Y%m%d").date()] = name
    return days


def _lock(cursor) -> None:
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])


def create(cursor, first: date, last: date) -> list[str]:
    """Create and attach the missing daily partitions from ``first`` to ``last`` (inclusive).

    Idempotent; concurrent callers serialise on the advisory lock and the second finds nothing to do.
    Returns the names created.
    """
    if last < first or not is_partitioned(cursor):
        return []
    wanted = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    have = existing(cursor)
    if all(day in have for day in wanted):
        return []  # the common case: no lock taken at all
    _lock(cursor)
    have = existing(cursor)
    created = []
    for day in wanted:
        if day in have:
            continue
        name = partition_name(day)
        low, high = day_start(day).isoformat(), day_start(day + timedelta(days=1)).isoformat()
        # Identifiers and bounds are generated here (dates), never taken from input.
        cursor.execute(f'CREATE TABLE IF NOT EXISTS "{name}" (LIKE "{TABLE}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS)')
        # The bound as a CHECK first: ATTACH then skips its validation scan (the table is empty anyway).
        cursor.execute(
            f'ALTER TABLE "{name}" ADD CONSTRAINT "{name}_bound" '
            f'CHECK ("timestamp" IS NOT NULL AND "timestamp" >= \'{low}\' AND "timestamp" < \'{high}\')'
        )
        cursor.execute(f"ALTER TABLE \"{TABLE}\" ATTACH PARTITION \"{name}\" FOR VALUES FROM ('{low}') TO ('{high}')")
        cursor.execute(f'ALTER TABLE "{name}" DROP CONSTRAINT "{name}_bound"')
        created.append(name)
    if created:
        logger.info("analytics partitions created: %s", ", ".join(created))
    return created


def drop_before(cursor, cutoff: datetime) -> tuple[int, int]:
    """DETACH and DROP every daily partition whose upper bound is at or before ``cutoff``.

    Returns (partitions dropped, rows they held). The rows are counted after the DETACH, on the
    detached table, so the count holds no lock on the events table.
    """
    if not is_partitioned(cursor):
        return 0, 0
    old = sorted((day, name) for day, name in existing(cursor).items() if day_start(day + timedelta(days=1)) <= cutoff)
    if not old:
        return 0, 0
    _lock(cursor)
    cursor.execute(f"SET LOCAL lock_timeout = '{DROP_LOCK_TIMEOUT}'")
    # Deferred foreign-key checks of rows written earlier in this transaction (only ever in tests) would
    # forbid the DROP: run them now (Django's constraints are all INITIALLY DEFERRED; restored below).
    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    dropped = rows = 0
    for _day, name in old:
        cursor.execute(f'ALTER TABLE "{TABLE}" DETACH PARTITION "{name}"')
        cursor.execute(f'SELECT count(*) FROM "{name}"')  # noqa: S608 - a name of ours
        rows += cursor.fetchone()[0]
        cursor.execute(f'DROP TABLE "{name}"')
        dropped += 1
    cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    cursor.execute("SET LOCAL lock_timeout = DEFAULT")
    logger.info("analytics partitions dropped: %d (%d rows)", dropped, rows)
    return dropped, rows
