"""Input serializers that hold JSON to its documented types and reject unknown fields.

DRF is lenient by default: ``"5"`` passes as an integer, ``0`` as a string, ``"true"``
as a boolean, and unknown keys are dropped without a word. A contract-first API
answers each of those with ``400`` and the offending field, so a client learns of
its bug instead of having data silently reinterpreted or ignored.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers


def json_type_error(field: serializers.Field, value: Any) -> str | None:
    """What is wrong with ``value``'s JSON type for ``field`` (None when it fits)."""
    if value is None:
        return None  # allow_null is DRF's to judge
    if isinstance(field, serializers.BooleanField):
        ok, expected = isinstance(value, bool), "a boolean"
    elif isinstance(field, serializers.IntegerField):
        ok, expected = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif isinstance(field, (serializers.FloatField, serializers.DecimalField)):
        ok, expected = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
    elif isinstance(field, (serializers.CharField, serializers.ChoiceField, serializers.UUIDField)):
        ok, expected = isinstance(value, str), "a string"
    elif isinstance(field, serializers.ListField):
        ok, expected = isinstance(value, list), "an array"
    elif isinstance(field, (serializers.DictField, serializers.Serializer)):
        ok, expected = isinstance(value, dict), "an object"
    else:
        return None
    return None if ok else f"Must be {expected}."


class StrictCharField(serializers.CharField):
    """A CharField that takes only JSON strings."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictInputSerializer(serializers.Serializer):
    """Base for request bodies: exact JSON types, no unknown fields."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            errors: dict[str, list[str]] = {}
            for name in data:
                if name not in self.fields or self.fields[name].read_only:
                    errors[str(name)[:100]] = ["Unknown field."]
            for name, field in self.fields.items():
                if name in data and not field.read_only:
                    problem = json_type_error(field, data[name])
                    if problem:
                        errors[name] = [problem]
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


class StrictRegexField(serializers.RegexField):
    """A RegexField (its pattern is documented in OpenAPI) that takes only JSON strings."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


# A trimmed, non-empty token: what tags, capabilities and versions look like.
TRIMMED = r"^\S(.*\S)?$"
