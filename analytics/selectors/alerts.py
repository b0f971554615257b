"""Alerts as the API lists them, the ``alert:new`` event, and the recent window the periodic check judges."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from analytics.metrics import VALUE_FIELDS_AS_TEXT, Accumulator, bucket_start, parse_json_columns, with_json_text
from analytics.models import Alert, MetricBucket


def alert_queryset() -> Any:
    return Alert.objects.order_by("-opened_at", "-id")


def alert_event(alert: Alert) -> dict[str, Any]:
    """The spec's ``alert:new`` payload. Alerts are per model, so ``deploymentId`` is always null."""
    return {
        "id": str(alert.pk),
        "type": alert.type,
        "severity": alert.severity,
        "message": alert.message,
        "modelId": str(alert.model_id),
        "deploymentId": None,
    }


def recent_window_by_model(minutes: int, *, now: datetime) -> dict[uuid.UUID, dict[str, Accumulator]]:
    """Per model, per deployment key ("" = all), the last ``minutes`` of 5m rollups merged."""
    since = bucket_start(now - timedelta(minutes=minutes), "5m")
    out: dict[uuid.UUID, dict[str, Accumulator]] = defaultdict(lambda: defaultdict(Accumulator))
    qs = with_json_text(MetricBucket.objects.filter(granularity="5m", bucket_start__gte=since))
    for row in qs.values_list("model_id", *VALUE_FIELDS_AS_TEXT).iterator(chunk_size=2000):
        out[row[0]][""].merge(Accumulator.from_row(parse_json_columns(row[1:])))
    return out
