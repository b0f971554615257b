"""Building usage events for tests."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from django.utils import timezone

_seq = itertools.count()


def event(model: Any, *, at: datetime | None = None, **fields: Any) -> dict[str, Any]:
    """A valid camelCase usage event for ``model``; keyword arguments override fields."""
    at = at or timezone.now()
    body = {
        "requestId": f"req-{next(_seq)}-{at.timestamp()}",
        "timestamp": at.isoformat(),
        "modelId": str(model.pk),
        "latencyMs": 100.0,
        "promptTokens": 100,
        "completionTokens": 50,
        "success": True,
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not ...}
