"""Serializer fields shared by the apps."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from modelhub.api.exceptions import ALLOWED_KEY


class EnumField(serializers.ChoiceField):
    """A ChoiceField whose error carries the allowed values into ``details.allowedValues``."""

    def to_internal_value(self, data: Any) -> Any:
        if data == "" and self.allow_blank:
            return ""
        try:
            return self.choice_strings_to_values[str(data)]
        except (KeyError, TypeError):
            raise serializers.ValidationError(
                {
                    "message": [f'"{str(data)[:100]}" is not a valid choice.'],
                    ALLOWED_KEY: list(self.choice_strings_to_values),
                }
            ) from None


class StringListField(serializers.ListField):
    """A bounded list of short, non-blank, de-duplicated strings (tags, capabilities, ...)."""

    def __init__(self, *, max_items: int = 50, max_item_length: int = 100, **kwargs: Any):
        from modelhub.api.serializers import TRIMMED, StrictRegexField

        kwargs.setdefault("child", StrictRegexField(TRIMMED, max_length=max_item_length, trim_whitespace=False))
        kwargs.setdefault("max_length", max_items)
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> list[str]:
        values = super().to_internal_value(data)
        return list(dict.fromkeys(values))


class NumberField(serializers.FloatField):
    """An output number shown as stored: ``10`` stays ``10`` (a FloatField would write ``10.0``).

    For numbers kept in JSON (a deployment's ``timeout``, ``temperature``): OpenAPI still
    says ``number``; the compiled fast path passes them through.
    """

    def to_representation(self, value: Any) -> Any:
        return value
