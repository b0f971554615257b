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


def mark_all_dirty(*, since: datetime | None = None) -> int:
    """Mark every (model, hour) with raw events for recomputation - a full re-roll (tests only)."""
    from analytics.metrics import bucket_start
    from analytics.models import DirtyHour, UsageEvent

    qs = UsageEvent.objects.all()
    if since is not None:
        qs = qs.filter(timestamp__gte=since)
    pairs = {(m, bucket_start(ts, "1h")) for m, ts in qs.values_list("model_id", "timestamp")}
    now = timezone.now()
    DirtyHour.objects.bulk_create(
        [DirtyHour(model_id=m, hour=h, marked_at=now) for m, h in pairs], ignore_conflicts=True
    )
    return len(pairs)
