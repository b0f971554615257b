"""Parsing query parameters the OpenAPI schema cannot fully describe (dates in every ISO form)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from django.utils.dateparse import parse_date, parse_datetime

from modelhub.api.exceptions import InvalidParameter

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def parse_iso_datetime(raw: str, name: str) -> datetime:
    """An ISO 8601 date or date-time, returned aware in UTC.

    Accepts ``2026-11-26``, ``2026-11-26T09:30``, ``...:05``, fractions of a second,
    ``Z``, ``+00:00``/``+0100`` offsets and a space instead of ``T``; a time without
    an offset is UTC. Anything else, or a date outside 1970-2100, is
    ``INVALID_PARAMETER`` naming the parameter.
    """
    text = (raw or "").strip()
    value: datetime | None = None
    try:
        if len(text) <= 10:
            day: date | None = parse_date(text)
            value = datetime.combine(day, time(0), tzinfo=UTC) if day else None
        else:
            value = parse_datetime(text.replace("z", "Z"))
    except (ValueError, OverflowError):
        value = None
    if value is None:
        raise InvalidParameter(
            f"{name} must be an ISO 8601 date or date-time.",
            details={"fields": {name: ["Use an ISO 8601 date or date-time, e.g. 2026-11-26T09:30:00Z."]}},
        )
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if not EARLIEST <= value < LATEST:
        raise InvalidParameter(
            f"{name} is out of range.", details={"fields": {name: ["Must be between 1970 and 2100."]}}
        )
    return value
