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


def cost_day_stats(day_start: datetime, *, ttl_seconds: int) -> list[dict[str, Any]]:
    """One UTC day's figures per (model, environment, useCase) for the costs app's opportunities (its
    background job stores them, so ``GET /cost/analysis`` never scans raw events):

    requests, successes, ``success_cost`` (successful, not cached), failures and their cost, retries
    (attempt > 1), ``offline_*`` (successful, not cached, no end user), feedback counts, rating sums, the
    largest call (prompt + completion), and ``repeat_*``: successful calls whose (model, promptHash) was
    answered successfully less than ``ttl_seconds`` before (looking back across midnight)."""
    from datetime import timedelta

    day_end = day_start + timedelta(days=1)
    day = UsageEvent.objects.filter(timestamp__gte=day_start, timestamp__lt=day_end)
    ok = Q(success=True, cached=False)
    rows = (
        day.values("model_id", "environment", "use_case")
        .annotate(
            requests=Count("id"),
            successes=Count("id", filter=Q(success=True)),
            success_cost=Sum("cost", filter=ok),
            failed=Count("id", filter=Q(success=False)),
            failed_cost=Sum("cost", filter=Q(success=False)),
            retries=Count("id", filter=Q(attempt__gt=1)),
            offline_count=Count("id", filter=ok & Q(user_id="")),
            offline_cost=Sum("cost", filter=ok & Q(user_id="")),
            accepted_count=Count("id", filter=Q(accepted=True)),
            rejected_count=Count("id", filter=Q(accepted=False)),
            rating_sum=Sum("user_rating"),
            rating_count=Count("user_rating"),
            max_tokens=Max(F("prompt_tokens") + F("completion_tokens")),
        )
        .order_by()
    )
    out = {(r["model_id"], r["environment"], r["use_case"]): {**r, "repeat_count": 0, "repeat_cost": 0} for r in rows}
    lookback = UsageEvent.objects.filter(
        timestamp__gte=day_start - timedelta(seconds=ttl_seconds), timestamp__lt=day_end, success=True, cached=False
    ).exclude(prompt_hash="")
    ranked = lookback.annotate(
        previous=Window(Lag("timestamp"), partition_by=[F("model_id"), F("prompt_hash")], order_by=F("timestamp").asc())
    ).values_list("model_id", "environment", "use_case", "timestamp", "previous", "cost")
    for model_id, environment, use_case, ts, previous, cost in ranked.iterator(chunk_size=5000):
        if ts < day_start or previous is None or (ts - previous).total_seconds() >= ttl_seconds:
            continue
        entry = out.get((model_id, environment, use_case))
        if entry is not None:
            entry["repeat_count"] += 1
            entry["repeat_cost"] += cost
    return list(out.values())


def cost_by_reservation(reservation_ids: list[str]) -> dict[str, Any]:
    """``{reservation id: summed cost}`` of the events that carry one of ``reservation_ids``."""
    rows = (
        UsageEvent.objects.filter(reservation_id__in=reservation_ids)
        .values("reservation_id")
        .annotate(cost=Sum("cost"))
        .order_by()
    )
    return {r["reservation_id"]: r["cost"] for r in rows}
