"""Query parameters of GET /analytics/alerts."""

from __future__ import annotations

import django_filters

from analytics.models import Alert, AlertSeverity, AlertStatus, AlertType
from modelhub.api.filters import FastFilterSet, ListFilter


class AlertFilterSet(FastFilterSet):
    """``status``, ``severity`` and ``type`` take several values (repeated or comma-separated)."""

    status = ListFilter(field_name="status", choices=AlertStatus.values)
    severity = ListFilter(field_name="severity", choices=AlertSeverity.values)
    type = ListFilter(field_name="type", choices=AlertType.values)
    modelId = django_filters.UUIDFilter(field_name="model_id")

    class Meta:
        model = Alert
        fields: list[str] = []
