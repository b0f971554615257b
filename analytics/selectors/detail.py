"""The model detail's sections that analytics owns, filled through ``catalog.selectors.MODEL_DETAIL``."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from analytics.selectors.performance import performance_metrics
from analytics.selectors.usage import last_used_by_deployment, model_usage
from modelhub.api.dates import iso

PERFORMANCE_WINDOWS = {
    "last24h": (timedelta(hours=24), "1h"),
    "last7d": (timedelta(days=7), "1d"),
    "last30d": (timedelta(days=30), "1d"),
}


def fill_model_detail(model: Any, detail: dict[str, Any], now: datetime) -> None:
    """``performance`` (24 h, 7 d, 30 d), ``usage``, and each listed deployment's ``lastUsed``."""
    deployments = detail.get("deployments", [])
    last_used = last_used_by_deployment([d["id"] for d in deployments])
    for item in deployments:
        item["lastUsed"] = iso(last_used.get(str(item["id"])))
    detail["performance"] = {
        name: performance_metrics(model, start=now - span, end=now, granularity=granularity, now=now)
        for name, (span, granularity) in PERFORMANCE_WINDOWS.items()
    }
    detail["usage"] = model_usage(model, now=now)
