"""Usage-event ingestion: the hub's hottest path.

``ingest_events(items)`` validates a batch item by item (no serializer objects, no
per-row ORM instances: a table of checks read off :class:`~analytics.serializers.UsageEventSerializer`,
the one declaration that OpenAPI documents too), stores every valid event in one statement and reports each
invalid one by index; nothing valid is dropped. A ``requestId`` already stored (or
repeated within the batch) is accepted and counted once, as a duplicate.

On PostgreSQL the batch is one ``INSERT ... SELECT FROM unnest(arrays) ON CONFLICT
(request_id) DO NOTHING`` (one round trip, parameters as typed arrays); on SQLite an
``INSERT OR IGNORE`` executemany. In the same transaction the (model, hour) pairs the
batch touched are marked dirty for the rollup (late events included).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from rest_framework import serializers

from analytics.models import DirtyHour, Environment, UsageEvent
from analytics.serializers import UsageEventSerializer
from catalog import selectors as catalog_selectors
from deployments.selectors import deployment_homes
from modelhub.api.exceptions import ErrorCode

_INVALID = ErrorCode.INVALID_PARAMETER

_COST_QUANTUM = Decimal("0.00000001")
_THOUSAND = Decimal(1000)


@dataclass(frozen=True)
class _Check:
    """One field's rule, read off :class:`~analytics.serializers.UsageEventSerializer`."""

    name: str
    kind: str  # "str" | "int" | "number" | "bool" | "uuid" | "datetime" | "enum"
    low: Any = None
    high: Any = None
    allow_blank: bool = True
    choices: frozenset[str] = frozenset()


def _check_for(name: str, field: serializers.Field) -> _Check:
    # The order matters: EnumField is a ChoiceField; every number field here has both bounds.
    if isinstance(field, serializers.ChoiceField):
        return _Check(name, "enum", choices=frozenset(field.choice_strings_to_values))
    if isinstance(field, serializers.BooleanField):
        return _Check(name, "bool")
    if isinstance(field, serializers.IntegerField):
        return _Check(name, "int", field.min_value, field.max_value)
    if isinstance(field, serializers.FloatField):
        return _Check(name, "number", field.min_value, field.max_value)
    if isinstance(field, serializers.UUIDField):
        return _Check(name, "uuid")
    if isinstance(field, serializers.DateTimeField):
        return _Check(name, "datetime")
    if isinstance(field, serializers.CharField):
        return _Check(name, "str", high=field.max_length, allow_blank=field.allow_blank)
    raise TypeError(f"UsageEventSerializer.{name}: no ingest rule for {type(field).__name__}")


_FIELDS = UsageEventSerializer().fields
CHECKS: tuple[_Check, ...] = tuple(_check_for(name, field) for name, field in _FIELDS.items())
ALLOWED_FIELDS = frozenset(_FIELDS)
REQUIRED_FIELDS = tuple(name for name, field in _FIELDS.items() if field.required)


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def as_response(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": len(self.rejected),
            "errors": self.rejected,
        }


class _Problems:
    """Collects the errors of one event: ``[{"field", "code", "message"}]``."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def add(self, name: str, code: ErrorCode | str, message: str) -> None:
        self.items.append({"field": name, "code": str(code), "message": message})


def _is_number(value: object) -> bool:
    return (type(value) is int) or (type(value) is float)


def _parse_timestamp(value: object) -> datetime | None:
    if type(value) is not str or not 10 <= len(value) <= 40:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.astimezone(UTC)


def _parse_uuid(value: object, _cache: dict[str, uuid.UUID | None] = {}) -> uuid.UUID | None:  # noqa: B006 - a memo
    if type(value) is not str or len(value) > 36:
        return None
    parsed = _cache.get(value, False)
    if parsed is False:
        try:
            parsed = uuid.UUID(value)
        except ValueError:
            parsed = None
        if len(_cache) > 10_000:  # model and deployment ids repeat; bound the memo anyway
            _cache.clear()
        _cache[value] = parsed
    return parsed


def _validate(item: object, now: datetime, oldest: datetime, newest: datetime) -> tuple[dict | None, _Problems]:
    """First pass: types, ranges, required fields. Returns the cleaned row (snake_case) or None."""
    problems = _Problems()
    if type(item) is not dict:
        problems.add("", ErrorCode.INVALID_REQUEST, "each event must be a JSON object")
        return None, problems
    unknown = item.keys() - ALLOWED_FIELDS
    for name in sorted(unknown)[:5]:
        problems.add(name, ErrorCode.INVALID_PARAMETER, "unknown field")
    for name in REQUIRED_FIELDS:
        if item.get(name) is None:
            problems.add(name, ErrorCode.MISSING_REQUIRED_FIELD, "this field is required")
    if problems.items:
        return None, problems

    ts = model_id = deployment_id = None
    for check in CHECKS:
        value = item.get(check.name)
        if value is None:
            continue  # absent or null: required fields were checked above, the rest may be null
        kind = check.kind
        if kind == "str":
            if type(value) is not str or len(value) > check.high or "\x00" in value:
                problems.add(check.name, _INVALID, f"must be a string of at most {check.high} characters")
            elif not check.allow_blank and not value.strip():
                problems.add(check.name, _INVALID, "must not be blank")
        elif kind == "int":
            if type(value) is not int or not check.low <= value <= check.high:
                problems.add(check.name, _INVALID, f"must be an integer from {check.low} to {check.high}")
        elif kind == "number":
            if not _is_number(value) or not check.low <= value <= check.high:
                problems.add(check.name, _INVALID, f"must be a number from {check.low} to {check.high}")
        elif kind == "bool":
            if type(value) is not bool:
                problems.add(check.name, _INVALID, "must be true or false")
        elif kind == "enum":
            if type(value) is not str or value not in check.choices:
                problems.add(check.name, _INVALID, f"must be one of {', '.join(sorted(check.choices))}")
        elif kind == "uuid":
            parsed = _parse_uuid(value)
            if parsed is None:
                problems.add(check.name, _INVALID, "must be a UUID")
            elif check.name == "modelId":
                model_id = parsed
            else:
                deployment_id = parsed
        else:  # datetime: only the event's timestamp
            ts = _parse_timestamp(value)
            if ts is None:
                problems.add(check.name, _INVALID, "must be an ISO 8601 date-time with a time zone")
            elif ts > newest:
                skew = settings.ANALYTICS_MAX_CLOCK_SKEW_SECONDS
                problems.add(check.name, _INVALID, f"is in the future (more than {skew}s ahead)")
            elif ts < oldest:
                problems.add(check.name, _INVALID, "is older than the raw-event retention period")
    success = item["success"]
    if success is True and (item.get("errorCode") or item.get("errorMessage")):
        problems.add("errorCode", _INVALID, "only failed requests (success: false) carry an error")
    if problems.items:
        return None, problems

    return {
        "request_id": item["requestId"],
        "timestamp": ts,
        "model_id": model_id,
        "deployment_id": deployment_id,
        "environment": item.get("environment"),
        "user_id": item.get("userId") or "",
        "latency_ms": float(item["latencyMs"]),
        "prompt_tokens": item["promptTokens"],
        "completion_tokens": item["completionTokens"],
        "cost": item.get("cost"),
        "success": success,
        "error_code": (item.get("errorCode") or ("UNKNOWN" if not success else "")),
        "error_message": item.get("errorMessage") or "",
        "confidence_score": None if item.get("confidenceScore") is None else float(item["confidenceScore"]),
        "user_rating": item.get("userRating"),
        "accepted": item.get("accepted"),
        "use_case": item.get("useCase") or "",
        "experiment_id": item.get("experimentId") or "",
        "variant": item.get("variant") or "",
        "prompt_hash": item.get("promptHash") or "",
    }, problems


def _reject(result: IngestResult, index: int, item: object, problems: list[dict[str, str]]) -> None:
    request_id = item.get("requestId") if type(item) is dict and type(item.get("requestId")) is str else None
    result.rejected.append(
        {
            "index": index,
            "requestId": request_id,
            "code": problems[0]["code"],
            "message": problems[0]["message"],
            "fields": problems,
        }
    )


def ingest_events(items: list[object], *, now: datetime | None = None) -> IngestResult:
    """Validate and store a batch of usage events; see the module docstring."""
    now = now or timezone.now()
    newest = now + timedelta(seconds=settings.ANALYTICS_MAX_CLOCK_SKEW_SECONDS)
    oldest = now - timedelta(days=settings.ANALYTICS_RETENTION_DAYS["raw"])
    result = IngestResult()

    cleaned: list[tuple[int, dict]] = []
    for index, item in enumerate(items):
        row, problems = _validate(item, now, oldest, newest)
        if row is None:
            _reject(result, index, item, problems.items)
        else:
            cleaned.append((index, row))

    models = catalog_selectors.model_prices({row["model_id"] for _, row in cleaned})
    deployments = deployment_homes({row["deployment_id"] for _, row in cleaned if row["deployment_id"]})

    rows: list[dict] = []
    seen: set[str] = set()
    for index, row in cleaned:
        price = models.get(row["model_id"])
        if price is None:
            _reject(
                result,
                index,
                items[index],
                [{"field": "modelId", "code": ErrorCode.MODEL_NOT_FOUND.value, "message": "no model with this id"}],
            )
            continue
        if row["deployment_id"] is not None:
            deployment = deployments.get(row["deployment_id"])
            if deployment is None:
                _reject(
                    result,
                    index,
                    items[index],
                    [
                        {
                            "field": "deploymentId",
                            "code": ErrorCode.DEPLOYMENT_NOT_FOUND.value,
                            "message": "no deployment with this id",
                        }
                    ],
                )
                continue
            if deployment[0] != row["model_id"]:
                _reject(
                    result,
                    index,
                    items[index],
                    [
                        {
                            "field": "deploymentId",
                            "code": ErrorCode.INVALID_PARAMETER.value,
                            "message": "the deployment serves a different model",
                        }
                    ],
                )
                continue
            if row["environment"] is None:
                row["environment"] = deployment[1]
            elif row["environment"] != deployment[1]:
                _reject(
                    result,
                    index,
                    items[index],
                    [
                        {
                            "field": "environment",
                            "code": ErrorCode.INVALID_PARAMETER.value,
                            "message": f"the deployment runs in {deployment[1]}",
                        }
                    ],
                )
                continue
        if row["environment"] is None:
            row["environment"] = Environment.PRODUCTION
        if row["cost"] is None:
            tokens = row["prompt_tokens"] + row["completion_tokens"]
            row["cost"] = (tokens * price / _THOUSAND).quantize(_COST_QUANTUM, ROUND_HALF_UP)
        else:
            row["cost"] = Decimal(repr(row["cost"])).quantize(_COST_QUANTUM, ROUND_HALF_UP)
        if row["request_id"] in seen:
            result.duplicates += 1
            continue
        seen.add(row["request_id"])
        rows.append(row)

    if rows:
        inserted = _store(rows, now)
        result.accepted = inserted
        result.duplicates += len(rows) - inserted
    result.rejected.sort(key=lambda r: r["index"])
    return result


_COLUMNS = (
    ("request_id", "text"),
    ("timestamp", "timestamptz"),
    ("model_id", "uuid"),
    ("deployment_id", "uuid"),
    ("environment", "text"),
    ("user_id", "text"),
    ("latency_ms", "float8"),
    ("prompt_tokens", "int4"),
    ("completion_tokens", "int4"),
    ("cost", "numeric"),
    ("success", "bool"),
    ("error_code", "text"),
    ("error_message", "text"),
    ("confidence_score", "float8"),
    ("user_rating", "int2"),
    ("accepted", "bool"),
    ("use_case", "text"),
    ("experiment_id", "text"),
    ("variant", "text"),
    ("prompt_hash", "text"),
)
_EVENT_TABLE = UsageEvent._meta.db_table
_DIRTY_TABLE = DirtyHour._meta.db_table


def _hour(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


def _store(rows: list[dict], now: datetime) -> int:
    """Insert ``rows`` (skipping request ids already stored) and mark their hours dirty; returns rows inserted."""
    names = [name for name, _ in _COLUMNS]
    dirty = sorted({(row["model_id"], _hour(row["timestamp"])) for row in rows})
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            inserted = _store_postgres(rows, names, dirty, now)
        else:
            placeholders = ", ".join(["%s"] * (len(names) + 1))
            before = connection.connection.total_changes
            cursor.executemany(
                f"INSERT OR IGNORE INTO {_EVENT_TABLE} ({', '.join(names)}, received_at) VALUES ({placeholders})",  # noqa: S608
                [[_sqlite_value(row[name]) for name in names] + [_sqlite_value(now)] for row in rows],
            )
            inserted = connection.connection.total_changes - before
            cursor.executemany(
                f"INSERT OR IGNORE INTO {_DIRTY_TABLE} (model_id, hour, marked_at) VALUES (%s, %s, %s)",  # noqa: S608
                [(m.hex, _sqlite_value(h), _sqlite_value(now)) for m, h in dirty],
            )
    return inserted


_STAGING = "analytics_ingest_staging"


def _store_postgres(rows: list[dict], names: list[str], dirty: list[tuple[uuid.UUID, datetime]], now: datetime) -> int:
    """Binary COPY into a per-session temporary table, then one INSERT ... ON CONFLICT DO NOTHING.

    COPY's binary rows are encoded by psycopg's C code (a few ms per 500 events, where
    array parameters cost ~17 ms and Django's client-side binding ~35 ms); ON CONFLICT
    needs an INSERT, hence the staging table (temporary: no WAL, emptied at commit).
    """
    import psycopg

    columns = ", ".join(names)
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
            f"INSERT INTO {_EVENT_TABLE} ({columns}, received_at) "  # noqa: S608
            f"SELECT {columns}, %s FROM {_STAGING} ON CONFLICT (request_id) DO NOTHING",
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
