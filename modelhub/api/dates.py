"""How the API writes date-times: ISO 8601 in UTC with a ``Z`` (``2026-11-26T09:30:00.123456Z``)."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(value: datetime | None) -> str | None:
    """``value`` as the API writes it; ``None`` stays ``None``."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
