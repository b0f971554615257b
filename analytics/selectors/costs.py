"""Spend read for the costs app: from the 1d metric buckets (exact decimal sums of the events' costs),
and the raw-event aggregates its optimization opportunities need (bounded by the period asked)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Count, F, Max, Q, Sum, Window
from django.db.models.functions import Lag

from analytics.models import Granularity, MetricBucket, UsageEvent


def cost_by_day(start: datetime, end: datetime, *, model_ids: list[Any] | None = None, environments=None):
    """``[{day, modelId, environment, cost, requests, failures}]`` of the 1d buckets in ``[start, end)``
    (``start``/``end`` whole UTC days), summed over deployments."""
    qs = MetricBucket.objects.filter(granularity=Granularity.DAY, bucket_start__gte=start, bucket_start__lt=end)
    if model_ids is not None:
        qs = qs.filter(model_id__in=model_ids)
    if environments:
        qs = qs.filter(environment__in=environments)
    rows = (
        qs.values("bucket_start", "model_id", "environment")
        .annotate(cost=Sum("cost_sum"), requests=Sum("request_count"), failures=Sum("failure_count"))
        .order_by()
    )
    return [
        {
            "day": r["bucket_start"],
            "modelId": r["model_id"],
            "environment": r["environment"],
            "cost": r["cost"],
            "requests": r["requests"],
            "failures": r["failures"],
        }
        for r in rows
    ]


def _events(start: datetime, end: datetime, model_ids, environments):
    qs = UsageEvent.objects.filter(timestamp__gte=start, timestamp__lt=end)
    if model_ids is not None:
        qs = qs.filter(model_id__in=model_ids)
    if environments:
        qs = qs.filter(environment__in=environments)
    return qs


def repeat_costs(start, end, *, ttl_seconds: int, model_ids=None, environments=None) -> dict[Any, dict[str, Any]]:
    """Per model: the events whose (model, promptHash) was already answered successfully less than
    ``ttl_seconds`` before (``{"count", "cost"}``) - what a response cache would have answered."""
    base = _events(start, end, model_ids, environments).filter(success=True, cached=False).exclude(prompt_hash="")
    ranked = base.annotate(
        previous=Window(Lag("timestamp"), partition_by=[F("model_id"), F("prompt_hash")], order_by=F("timestamp").asc())
    ).values("model_id", "timestamp", "previous", "cost")
    out: dict[Any, dict[str, Any]] = {}
    for row in ranked.iterator(chunk_size=5000):
        previous = row["previous"]
        if previous is None or (row["timestamp"] - previous).total_seconds() >= ttl_seconds:
            continue
        entry = out.setdefault(row["model_id"], {"count": 0, "cost": 0})
        entry["count"] += 1
        entry["cost"] += row["cost"]
    return out


def use_case_quality(start, end, *, model_ids=None, environments=None) -> list[dict[str, Any]]:
    """Per (useCase, model): requests, successes, cost, accepted/rejected counts, rating sum/count
    (first attempts and cache misses alike: everything that was paid)."""
    qs = _events(start, end, model_ids, environments).exclude(use_case="")
    rows = (
        qs.values("use_case", "model_id")
        .annotate(
            requests=Count("id"),
            successes=Count("id", filter=Q(success=True)),
            cost=Sum("cost"),
            accepted_count=Count("id", filter=Q(accepted=True)),
            rejected_count=Count("id", filter=Q(accepted=False)),
            rating_sum=Sum("user_rating"),
            rating_count=Count("user_rating"),
            max_tokens=Max(F("prompt_tokens") + F("completion_tokens")),
        )
        .order_by()
    )
    return list(rows)


def failure_costs(start, end, *, model_ids=None, environments=None) -> dict[Any, dict[str, Any]]:
    """Per model: cost and count of failed calls, and of retries/fallbacks (attempt > 1) that succeeded."""
    qs = _events(start, end, model_ids, environments)
    rows = (
        qs.values("model_id")
        .annotate(
            failed=Count("id", filter=Q(success=False)),
            failed_cost=Sum("cost", filter=Q(success=False)),
            retries=Count("id", filter=Q(attempt__gt=1)),
            retry_cost=Sum("cost", filter=Q(attempt__gt=1, success=True)),
        )
        .order_by()
    )
    return {r["model_id"]: r for r in rows}


def offline_costs(start, end, *, model_ids=None, environments=None) -> dict[Any, dict[str, Any]]:
    """Per model: cost and count of successful, non-cached events without an end user (batch-able traffic:
    nobody waits for the answer) - the costs app applies the provider's batch discount."""
    qs = _events(start, end, model_ids, environments).filter(success=True, cached=False, user_id="")
    rows = qs.values("model_id").annotate(count=Count("id"), cost=Sum("cost")).order_by()
    return {r["model_id"]: r for r in rows}


def cost_by_reservation(reservation_ids: list[str]) -> dict[str, Any]:
    """``{reservation id: summed cost}`` of the events that carry one of ``reservation_ids``."""
    rows = (
        UsageEvent.objects.filter(reservation_id__in=reservation_ids)
        .values("reservation_id")
        .annotate(cost=Sum("cost"))
        .order_by()
    )
    return {r["reservation_id"]: r["cost"] for r in rows}


def success_costs(start, end, *, model_ids=None, environments=None) -> dict[Any, Any]:
    """Per model: the cost of successful, non-cached calls (what caching, routing and batching act on)."""
    qs = _events(start, end, model_ids, environments).filter(success=True, cached=False)
    return {r["model_id"]: r["cost"] for r in qs.values("model_id").annotate(cost=Sum("cost")).order_by()}
