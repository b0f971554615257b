"""Query parameters: strict query serializers, and dates in every ISO form."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from modelhub.api.exceptions import InvalidParameter, validation_details

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
    try:
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-01:00 is past datetime.max in UTC
        value = LATEST
    if not EARLIEST <= value < LATEST:
        raise InvalidParameter(
            f"{name} is out of range.", details={"fields": {name: ["Must be between 1970 and 2100."]}}
        )
    return value


@extend_schema_field(OpenApiTypes.DATETIME)
class IsoDateTimeParam(serializers.Field):
    """A query date-time in every form :func:`parse_iso_datetime` takes (OpenAPI: ``date-time``)."""

    def to_internal_value(self, data: Any) -> datetime:
        try:
            return parse_iso_datetime(data if isinstance(data, str) else "", self.field_name)
        except InvalidParameter as exc:
            raise serializers.ValidationError(exc.details["fields"][self.field_name]) from None

    def to_representation(self, value: datetime) -> str:
        return value.isoformat()


MAX_QUERY_PARAMETERS = 50


class QuerySerializer(serializers.Serializer):
    """Query parameters declared as serializer fields (which also document them in OpenAPI).

    :meth:`parse` answers ``INVALID_PARAMETER`` for an unknown parameter, a repeated one, or a
    value its field refuses (enum errors carry ``allowedValues``). A field named ``from`` (a Python
    keyword) is declared under ``from_`` and renamed.
    """

    @classmethod
    def parse(cls, query: Any) -> dict[str, Any]:
        serializer = cls()
        names = set(serializer.fields)
        problems: dict[str, list[str]] = {}
        if len(query) > MAX_QUERY_PARAMETERS:  # checked whole below, so no parameter is silently dropped
            raise InvalidParameter(f"At most {MAX_QUERY_PARAMETERS} query parameters are allowed.")
        for name in query:
            if name not in names:
                problems[str(name)[:100]] = ["Unknown parameter."]
            elif len(query.getlist(name)) > 1:
                problems[name] = ["Give this parameter once."]
        if problems:
            raise InvalidParameter("Invalid query parameters.", details={"fields": problems})
        serializer = cls(data={name: query[name] for name in query})
        if not serializer.is_valid():
            _, _, details = validation_details(serializer.errors)
            names = ", ".join(sorted(details["fields"]))
            raise InvalidParameter(f"Invalid query parameters: {names}.", details=details)
        return dict(serializer.validated_data)

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        if "from_" in fields:
            fields["from"] = fields.pop("from_")
        return fields
