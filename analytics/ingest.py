"""Usage-event ingestion: the hub's hottest path.

``ingest_events(items)`` validates a batch item by item (no serializer objects, no
per-row ORM instances), stores every valid event in one statement and reports each
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

from analytics.models import DirtyHour, Environment, UsageEvent
from modelhub.api.exceptions import ErrorCode

_ENVIRONMENTS = frozenset(Environment.values)
_COST_QUANTUM = Decimal("0.00000001")
_THOUSAND = Decimal(1000)
_MAX_LATENCY_MS = 24 * 3600 * 1000.0
_MAX_TOKENS = 100_000_000
_MAX_COST = 1_000_000

# field -> (required, kind, bound) for the generic checks; modelId/deploymentId/timestamp are special.
_STRING_FIELDS = {
    "requestId": 128,
    "userId": 255,
    "errorCode": 64,
    "errorMessage": 1000,
    "useCase": 100,
    "experimentId": 64,
    "variant": 64,
    "promptHash": 128,
}
ALLOWED_FIELDS = frozenset(
    {
        "requestId",
        "timestamp",
        "modelId",
        "deploymentId",
        "environment",
        "userId",
        "latencyMs",
        "promptTokens",
        "completionTokens",
        "cost",
        "success",
        "errorCode",
        "errorMessage",
        "confidenceScore",
        "userRating",
        "accepted",
        "useCase",
        "experimentId",
        "variant",
        "promptHash",
    }
)
REQUIRED_FIELDS = ("requestId", "timestamp", "modelId", "latencyMs", "promptTokens", "completionTokens", "success")


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


def _lookup_models(ids: set[uuid.UUID]) -> dict[uuid.UUID, Decimal]:
    from catalog.models import ModelRegistry

    if not ids:
        return {}
    return dict(ModelRegistry.objects.filter(pk__in=ids).values_list("pk", "baseline_cost_per_1k_tokens"))


def _lookup_deployments(ids: set[uuid.UUID]) -> dict[uuid.UUID, tuple[uuid.UUID, str]]:
    from deployments.selectors import deployment_homes

    return deployment_homes(ids)


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

    for name, max_length in _STRING_FIELDS.items():
        value = item.get(name)
        if value is not None and (type(value) is not str or len(value) > max_length or "\x00" in value):
            problems.add(name, ErrorCode.INVALID_PARAMETER, f"must be a string of at most {max_length} characters")
    if type(item["requestId"]) is str and not item["requestId"].strip():
        problems.add("requestId", ErrorCode.INVALID_PARAMETER, "must not be blank")

    ts = _parse_timestamp(item["timestamp"])
    if ts is None:
        problems.add("timestamp", ErrorCode.INVALID_PARAMETER, "must be an ISO 8601 date-time with a time zone")
    elif ts > newest:
        problems.add(
            "timestamp",
            ErrorCode.INVALID_PARAMETER,
            f"is in the future (more than {settings.ANALYTICS_MAX_CLOCK_SKEW_SECONDS}s ahead)",
        )
    elif ts < oldest:
        problems.add("timestamp", ErrorCode.INVALID_PARAMETER, "is older than the raw-event retention period")

    model_id = _parse_uuid(item["modelId"])
    if model_id is None:
        problems.add("modelId", ErrorCode.INVALID_PARAMETER, "must be a UUID")
    deployment_id = None
    if item.get("deploymentId") is not None:
        deployment_id = _parse_uuid(item["deploymentId"])
        if deployment_id is None:
            problems.add("deploymentId", ErrorCode.INVALID_PARAMETER, "must be a UUID")
    environment = item.get("environment")
    if environment is not None and (type(environment) is not str or environment not in _ENVIRONMENTS):
        problems.add("environment", ErrorCode.INVALID_PARAMETER, f"must be one of {', '.join(sorted(_ENVIRONMENTS))}")

    latency = item["latencyMs"]
    if not _is_number(latency) or not 0 <= latency <= _MAX_LATENCY_MS:
        problems.add("latencyMs", ErrorCode.INVALID_PARAMETER, f"must be a number between 0 and {_MAX_LATENCY_MS:.0f}")
    for name in ("promptTokens", "completionTokens"):
        value = item[name]
        if type(value) is not int or not 0 <= value <= _MAX_TOKENS:
            problems.add(name, ErrorCode.INVALID_PARAMETER, f"must be an integer between 0 and {_MAX_TOKENS}")
    cost = item.get("cost")
    if cost is not None and (not _is_number(cost) or not 0 <= cost <= _MAX_COST):
        problems.add("cost", ErrorCode.INVALID_PARAMETER, f"must be a number between 0 and {_MAX_COST}")
    success = item["success"]
    if type(success) is not bool:
        problems.add("success", ErrorCode.INVALID_PARAMETER, "must be true or false")
    elif success and (item.get("errorCode") or item.get("errorMessage")):
        problems.add("errorCode", ErrorCode.INVALID_PARAMETER, "only failed requests (success: false) carry an error")
    confidence = item.get("confidenceScore")
    if confidence is not None and (not _is_number(confidence) or not 0 <= confidence <= 1):
        problems.add("confidenceScore", ErrorCode.INVALID_PARAMETER, "must be a number between 0 and 1")
    rating = item.get("userRating")
    if rating is not None and (type(rating) is not int or not 1 <= rating <= 5):
        problems.add("userRating", ErrorCode.INVALID_PARAMETER, "must be an integer from 1 to 5")
    accepted = item.get("accepted")
    if accepted is not None and type(accepted) is not bool:
        problems.add("accepted", ErrorCode.INVALID_PARAMETER, "must be true, false or null")
    if problems.items:
        return None, problems

    return {
        "request_id": item["requestId"],
        "timestamp": ts,
        "model_id": model_id,
        "deployment_id": deployment_id,
        "environment": environment,
        "user_id": item.get("userId") or "",
        "latency_ms": float(latency),
        "prompt_tokens": item["promptTokens"],
        "completion_tokens": item["completionTokens"],
        "cost": cost,
        "success": success,
        "error_code": (item.get("errorCode") or ("UNKNOWN" if not success else "")),
        "error_message": item.get("errorMessage") or "",
        "confidence_score": None if confidence is None else float(confidence),
        "user_rating": rating,
        "accepted": accepted,
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

    models = _lookup_models({row["model_id"] for _, row in cleaned})
    deployments = _lookup_deployments({row["deployment_id"] for _, row in cleaned if row["deployment_id"]})

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
