"""Raw-event reads for the experiments app (issue #11), and the slot that tells it which hours changed.

* :data:`HOURS_ROLLED_UP` - providers ``(pairs: list[(model_id, hour)]) -> None``, called by
  :func:`analytics.rollup.rollup` inside the transaction that recomputes those hours (new events and
  feedback both re-mark an hour), so experiments can mark its own aggregates dirty.
* :func:`experiment_events` - the events that measure an experiment's variants (no cache hits, the variant's
  own model, a call's last attempt only).
* :func:`experiment_hour` - one experiment's measuring events of one hour, summed per variant and unit,
  plus a latency sketch per variant (the rollup's DDSketch mapping).
* :func:`experiment_pre_period` - per user sums over a pre-period (CUPED's covariate).
* :func:`experiment_event_hours` - the hours that hold an experiment's events (full recompute).
* :func:`sketch_merge` / :func:`sketch_quantiles` - merging stored sketches and reading quantiles.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from functools import reduce
from operator import or_
from typing import Any

from django.db.models import Case, CharField, Count, F, IntegerField, Max, Q, QuerySet, Sum, Value, When, Window
from django.db.models.functions import Coalesce, Concat, NullIf, TruncHour

from analytics import sketch as _sketch
from analytics.models import UsageEvent
from modelhub.registry import Slot

HOURS_ROLLED_UP = Slot(
    "analytics.hours_rolled_up",
    "Providers ``(pairs: list[tuple[model_id, hour]]) -> None`` called inside the rollup's transaction "
    "for the (model, hour) pairs it recomputes (experiments marks its aggregates dirty).",
)


# The unit of analysis: the end user, else the call (the gateway's clientRequestId), else the event.
def _unit_expression() -> Case:
    return Case(
        When(~_blank("user_id"), then=F("user_id")),
        When(~_blank("client_request_id"), then=Concat(Value("req:"), F("client_request_id"))),
        default=Concat(Value("req:"), F("request_id")),
        output_field=CharField(),
    )


def _blank(field: str) -> Q:
    return Q(**{field: ""})


def _sums(grouped: Any) -> list[dict[str, Any]]:
    """The per-unit sums of a ``values(...)`` grouping (the columns of the experiments' aggregates)."""
    rows = grouped.annotate(
        requests=Count("id"),
        successes=Sum(Case(When(success=True, then=1), default=0, output_field=IntegerField())),
        latency_sum=Sum("latency_ms"),
        cost_sum=Sum("cost"),
        tokens_sum=Sum(F("prompt_tokens") + F("completion_tokens")),
        rated=Count("user_rating"),
        rating_sum=Sum("user_rating"),
        feedback=Count("accepted"),
        accepted=Sum(Case(When(accepted=True, then=1), default=0, output_field=IntegerField())),
        scored=Count("confidence_score"),
        confidence_sum=Sum("confidence_score"),
    ).order_by()
    return [
        {
            **row,
            "cost_sum": float(row["cost_sum"] or 0),
            "rating_sum": row["rating_sum"] or 0,
            "confidence_sum": row["confidence_sum"] or 0.0,
        }
        for row in rows
    ]


def experiment_pre_period(model_ids: Iterable[Any], start: datetime, end: datetime) -> list[dict[str, Any]]:
    """CUPED's covariate: per end user (``unit``), the same sums over the models' untagged events in
    ``[start, end)`` (the pre-period). Users only: a request-level unit has no past."""
    events = UsageEvent.objects.filter(
        model_id__in=list(model_ids), timestamp__gte=start, timestamp__lt=end, experiment_id=""
    ).exclude(user_id="")
    return _sums(events.annotate(unit=F("user_id")).values("unit"))


# How far apart the attempts of one call may be (retries and fallbacks take seconds): a call near an hour's edge
# is judged on its attempts on both sides, so both hours agree which attempt is its last.
CALL_SPAN = timedelta(minutes=15)


def experiment_events(
    experiment_id: Any, variant_models: Mapping[str, Any], start: datetime, end: datetime
) -> QuerySet[UsageEvent]:
    """The events in ``[start, end)`` that measure the experiment's variants: tagged with it, not answered by the
    response cache (cost 0, no latency: not the variant's work), served by the variant's own model (not a
    fallback to another model), and of each call (``clientRequestId``, else the event) only its last attempt on
    that model - a call counts once, with the outcome, latency and cost of its final attempt."""
    if not variant_models:
        return UsageEvent.objects.none()
    arms = reduce(or_, (Q(variant=name, model_id=model_id) for name, model_id in variant_models.items()))
    tagged = UsageEvent.objects.filter(arms, experiment_id=str(experiment_id), cached=False)
    call = Coalesce(NullIf("client_request_id", Value("")), "request_id")
    last = (
        tagged.filter(timestamp__gte=start - CALL_SPAN, timestamp__lt=end + CALL_SPAN)
        .annotate(last_attempt=Window(Max("attempt"), partition_by=[call, F("model_id")]))
        .filter(attempt=F("last_attempt"))
        .values("pk")
    )
    return tagged.filter(timestamp__gte=start, timestamp__lt=end, pk__in=last)


def experiment_hour(
    experiment_id: Any, variant_models: Mapping[str, Any], hour: datetime
) -> tuple[list[dict[str, Any]], dict[str, dict[str, list[int]]]]:
    """``(units, sketches)``: per (variant, unit) the sums of the hour's events that measure the experiment
    (:func:`experiment_events`, ``variant_models`` = ``{variant name: model id}``; ``requests, successes,
    latency_sum, cost_sum, tokens_sum, rated, rating_sum, feedback, accepted, scored, confidence_sum``), and per
    variant the stored form of its latency sketch."""
    events = experiment_events(experiment_id, variant_models, hour, hour + timedelta(hours=1))
    units = _sums(events.annotate(unit=_unit_expression()).values("variant", "unit"))
    sketches: dict[str, dict[int, int]] = {}
    for variant, latency in events.values_list("variant", "latency_ms").iterator(chunk_size=20_000):
        sketch = sketches.setdefault(variant, {})
        key = _sketch.key_for(latency)
        sketch[key] = sketch.get(key, 0) + 1
    return units, {variant: _sketch.to_json(s) for variant, s in sketches.items()}


def experiment_event_hours(
    experiment_id: Any, model_ids: Iterable[Any], start: datetime, end: datetime
) -> list[datetime]:
    """The hours in ``[start, end)`` that hold events tagged with the experiment."""
    return list(
        UsageEvent.objects.filter(
            model_id__in=list(model_ids), timestamp__gte=start, timestamp__lt=end, experiment_id=str(experiment_id)
        )
        .annotate(hour=TruncHour("timestamp"))
        .values_list("hour", flat=True)
        .distinct()
        .order_by("hour")
    )


def sketch_merge(stored: Iterable[Mapping[str, list[int]]]) -> dict[str, list[int]]:
    return _sketch.to_json(_sketch.merge(_sketch.from_json(s) for s in stored))


def sketch_quantiles(stored: Mapping[str, list[int]], qs: Iterable[float]) -> list[float]:
    return _sketch.quantiles(_sketch.from_json(stored), qs)


def sketch_count(stored: Mapping[str, list[int]]) -> int:
    return int(sum(stored.get("counts", ())))
