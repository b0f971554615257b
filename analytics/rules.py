"""Threshold rules over one window's figures: the insights of a performance query and the alerts'
breach and recovery tests. Both read their thresholds from settings (``ANALYTICS_INSIGHTS``,
``ANALYTICS_ALERTS``); the README's Analytics section lists them.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings

from analytics import sketch
from analytics.metrics import Accumulator
from analytics.models import AlertSeverity, AlertType


def insights(model: Any, current: Accumulator, previous: Accumulator) -> list[dict[str, Any]]:
    """Findings with recommendations, from the window against the model's baseline and the previous window."""
    cfg = settings.ANALYTICS_INSIGHTS
    out: list[dict[str, Any]] = []
    if current.requests < cfg["min_requests"]:
        if current.requests == 0 and previous.requests >= cfg["min_requests"]:
            out.append(
                {
                    "type": "usage",
                    "severity": "warning",
                    "message": f"No requests in this period (previous period: {previous.requests}).",
                    "recommendation": "Check that clients still reach the model and that usage events are being sent.",
                }
            )
        return out
    baseline = float(model.baseline_avg_latency_ms or 0)
    p95 = sketch.quantiles(current.sketch, (0.95,))[0]
    if baseline > 0 and p95 > baseline * cfg["latency_p95_over_baseline"]:
        critical = p95 > baseline * cfg["latency_p95_over_baseline_critical"]
        out.append(
            {
                "type": "performance",
                "severity": "critical" if critical else "warning",
                "message": f"p95 latency is {p95:.0f} ms, {p95 / baseline:.1f}x the model's baseline of {baseline:.0f} ms.",
                "recommendation": "Add replicas or raise maxReplicas, lower maxTokens, or route latency-sensitive traffic to a faster model.",
            }
        )
    error_rate = current.failures / current.requests
    prev_rate = previous.failures / previous.requests if previous.requests else 0.0
    if error_rate >= cfg["error_rate_min"] and (
        previous.requests < cfg["min_requests"] or error_rate > prev_rate * cfg["error_rate_increase"]
    ):
        out.append(
            {
                "type": "performance",
                "severity": "critical" if error_rate >= 4 * cfg["error_rate_min"] else "warning",
                "message": f"Error rate is {error_rate:.1%}"
                + (f", up from {prev_rate:.1%} in the previous period." if previous.requests else "."),
                "recommendation": "Inspect the most frequent error codes below; add retries with backoff for transient provider errors.",
            }
        )
    if previous.requests >= cfg["min_requests"] and current.requests:
        cpr, prev_cpr = current.cost / current.requests, previous.cost / previous.requests
        if prev_cpr > 0 and cpr > prev_cpr * Decimal(str(cfg["cost_per_request_increase"])):
            out.append(
                {
                    "type": "cost",
                    "severity": "warning",
                    "message": f"Cost per request rose to ${float(cpr):.6f} from ${float(prev_cpr):.6f} ({float(cpr / prev_cpr - 1):+.0%}).",
                    "recommendation": "Check prompt and completion lengths (tokens per request), cap maxTokens, and cache repeated prompts.",
                }
            )
    if current.rating_count >= cfg["min_requests"] // 2 and previous.rating_count >= cfg["min_requests"] // 2:
        rating, prev_rating = current.rating_sum / current.rating_count, previous.rating_sum / previous.rating_count
        if prev_rating - rating >= cfg["rating_drop"]:
            out.append(
                {
                    "type": "quality",
                    "severity": "warning",
                    "message": f"Average user rating fell to {rating:.2f} from {prev_rating:.2f}.",
                    "recommendation": "Review recent low-rated responses, prompt or parameter changes, and compare against a previous version in an experiment.",
                }
            )
    if current.failures >= max(5, cfg["min_requests"] // 4):
        code, entry = max(current.errors.items(), key=lambda item: item[1]["count"])
        share = entry["count"] / current.failures
        if share >= cfg["dominant_error_share"]:
            out.append(
                {
                    "type": "performance",
                    "severity": "info",
                    "message": f"{code} accounts for {share:.0%} of errors ({entry['count']} of {current.failures}).",
                    "recommendation": f"Fix the cause of {code} first: {entry['message'][:200] or 'see the error messages'}",
                }
            )
    if previous.requests >= cfg["min_requests"]:
        change = current.requests / previous.requests - 1
        if abs(change) >= 0.5:
            out.append(
                {
                    "type": "usage",
                    "severity": "info",
                    "message": f"Traffic {'rose' if change > 0 else 'fell'} {abs(change):.0%} against the previous period ({current.requests} vs {previous.requests} requests).",
                    "recommendation": "Review autoscaling limits and budgets for the new load."
                    if change > 0
                    else "Check whether clients moved to another model or deployment.",
                }
            )
    return out


@dataclass
class Breach:
    type: str
    severity: str
    value: float
    threshold: float
    message: str


def alert_breaches(model: Any, acc: Accumulator) -> tuple[list[Breach], set[str]]:
    """Breaches in the window, and the alert types whose metric has recovered."""
    cfg = settings.ANALYTICS_ALERTS
    breaches: list[Breach] = []
    recovered: set[str] = set()
    error_rate = acc.failures / acc.requests
    if error_rate >= cfg["error_rate_warning"]:
        critical = error_rate >= cfg["error_rate_critical"]
        breaches.append(
            Breach(
                AlertType.ERROR_RATE,
                AlertSeverity.CRITICAL if critical else AlertSeverity.WARNING,
                error_rate,
                cfg["error_rate_critical"] if critical else cfg["error_rate_warning"],
                f"{model.name} {model.version}: error rate {error_rate:.1%} over the last {cfg['window_minutes']} minutes "
                f"({acc.failures} of {acc.requests} requests).",
            )
        )
    elif error_rate < cfg["error_rate_warning"] * cfg["recover_factor"]:
        recovered.add(AlertType.ERROR_RATE)
    baseline = float(model.baseline_avg_latency_ms or 0)
    if baseline > 0:
        p95 = sketch.quantiles(acc.sketch, (0.95,))[0]
        limit = baseline * cfg["latency_p95_over_baseline"]
        if p95 > limit:
            critical = p95 > baseline * cfg["latency_p95_over_baseline_critical"]
            breaches.append(
                Breach(
                    AlertType.LATENCY,
                    AlertSeverity.CRITICAL if critical else AlertSeverity.WARNING,
                    p95,
                    baseline * cfg["latency_p95_over_baseline_critical"] if critical else limit,
                    f"{model.name} {model.version}: p95 latency {p95:.0f} ms over the last {cfg['window_minutes']} minutes, "
                    f"{p95 / baseline:.1f}x its {baseline:.0f} ms baseline.",
                )
            )
        elif p95 < limit * cfg["recover_factor"]:
            recovered.add(AlertType.LATENCY)
    return breaches, recovered
