"""The first pass over one usage event: JSON types, bounds, required fields, clock skew and retention.

The rules are read off :class:`~analytics.serializers.UsageEventSerializer` - the one declaration,
which OpenAPI documents too - into a table of :class:`_Check` rows, then applied in a tight loop
(no serializer objects per event: this is the hub's hottest path).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from rest_framework import serializers

from analytics.serializers import UsageEventSerializer
from modelhub.api.exceptions import ErrorCode

_INVALID = ErrorCode.INVALID_PARAMETER


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


class Problems:
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


def validate(item: object, now: datetime, oldest: datetime, newest: datetime) -> tuple[dict | None, Problems]:
    """First pass: types, ranges, required fields. Returns the cleaned row (snake_case) or None."""
    problems = Problems()
    if type(item) is not dict:
        problems.add("", ErrorCode.INVALID_REQUEST, "each event must be a JSON object")
        return None, problems
    if not item.keys() <= ALLOWED_FIELDS:  # a subset test builds no set (the difference did, for every event)
        for name in sorted(item.keys() - ALLOWED_FIELDS)[:5]:
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
        "client_request_id": item.get("clientRequestId") or "",
        "attempt": item.get("attempt") or 1,
        "cached": item.get("cached") is True,
        "reservation_id": item.get("reservationId") or "",
    }, problems
