"""``usage`` of ``GET /marketplace/my-models`` items (through ``marketplace.selectors.ENTITLEMENT_DETAILS``):
what was used under each entitlement since its period started, from the 1h rollups.

A user's entitlement counts the traffic of the deployments that user owns of the model; a hub-wide one
counts every deployment of it. Hours are whole (the bucket of the period's first hour counts entirely)
and reach back at most the 1h retention (95 days); figures are as fresh as the last rollup (a minute).
For usage-priced plans ``estimatedCharge`` is tokens / unit x the plan's price, exactly.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from functools import reduce
from operator import or_
from typing import Any

from django.db.models import Q, Sum
from django.utils.dateparse import parse_datetime

from analytics.models import Granularity, MetricBucket
from deployments import selectors as deployment_selectors

UNITS = {"1k_tokens": 1_000, "1m_tokens": 1_000_000}


def _hour(value: Any) -> Any:
    return value.replace(minute=0, second=0, microsecond=0)


def fill_entitlement_usage(items: list[dict[str, Any]], user: Any) -> None:
    if not items:
        return
    starts = {item["id"]: _hour(parse_datetime(item["period"]["start"])) for item in items}
    owned: dict[str, set[str]] = {}
    if getattr(user, "pk", None):
        for deployment_id, model_id in (
            deployment_selectors.deployment_queryset()
            .filter(owner=user, model_id__in={item["modelId"] for item in items})
            .values_list("id", "model_id")
        ):
            owned.setdefault(str(model_id), set()).add(
                uuid.UUID(str(deployment_id)).hex
            )  # deployment_key is the hex form
    since = min(starts.values())
    rows = (
        MetricBucket.objects.filter(
            reduce(or_, (Q(model_id=item["modelId"], bucket_start__gte=starts[item["id"]]) for item in items)),
            granularity=Granularity.HOUR,
            bucket_start__gte=since,
        )
        .values("model_id", "deployment_key", "bucket_start")
        .annotate(
            requests=Sum("request_count"),
            prompt=Sum("prompt_tokens_sum"),
            completion=Sum("completion_tokens_sum"),
            cost=Sum("cost_sum"),
        )
    )
    rows = list(rows)
    for item in items:
        keys = None if item["scope"] == "hub" else owned.get(item["modelId"], set())
        start = starts[item["id"]]
        total = {"requests": 0, "prompt": 0, "completion": 0, "cost": Decimal(0)}
        for row in rows:
            if str(row["model_id"]) != item["modelId"] or row["bucket_start"] < start:
                continue
            if keys is not None and row["deployment_key"] not in keys:
                continue
            for name in total:
                total[name] += row[name] or 0
        tokens = total["prompt"] + total["completion"]
        plan = item["plan"]
        charge = None
        if plan["pricingModel"] == "usage" and plan["unit"] in UNITS:
            amount = Decimal(plan["price"]["amount"]) * tokens / UNITS[plan["unit"]]
            charge = {"amount": _money(amount), "currency": plan["price"]["currency"]}
        item["usage"] = {
            "since": start.isoformat().replace("+00:00", "Z"),
            "requests": total["requests"],
            "promptTokens": total["prompt"],
            "completionTokens": total["completion"],
            "cost": {"amount": _money(total["cost"]), "currency": "USD"},
            "estimatedCharge": charge,
        }


def _money(amount: Decimal) -> str:
    text = format(amount.quantize(Decimal("0.00000001")).normalize(), "f")
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"
