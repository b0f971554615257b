"""Formatting for API values in templates (the API sends ISO 8601 strings and plain numbers)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import template

register = template.Library()


@register.filter
def when(value: Any) -> str:
    """``2026-12-02T06:05:07.123Z`` -> ``2026-12-02 06:05 UTC`` (unparseable values as given)."""
    if not value:
        return "–"
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    return parsed.strftime("%Y-%m-%d %H:%M UTC")


@register.filter
def money(value: Any) -> str:
    """A cost in US dollars: four decimals under a dollar, two above."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "–"
    return f"${number:,.4f}" if abs(number) < 1 else f"${number:,.2f}"


@register.filter
def percent(value: Any, digits: int = 1) -> str:
    """A 0-1 ratio as a percentage."""
    try:
        return f"{float(value) * 100:.{int(digits)}f}%"
    except (TypeError, ValueError):
        return "–"
