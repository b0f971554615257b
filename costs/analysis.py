"""``GET /cost/analysis``: the spec's ``CostAnalysisResponse`` (README "Costs, budgets and notifications"
has every formula).

Usage figures come from the 1d metric buckets (exact decimal sums of the events' costs); the
opportunities from the daily figures ``costs.refresh_cost_days`` keeps (``CostDay``: per day, model,
environment and use case), so no request scans raw events; the budget block from the budgets and the
month's spend. The answer is cached ``COSTS_ANALYSIS_CACHE_SECONDS`` per query.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from rest_framework import serializers

from analytics import selectors as analytics_selectors
from catalog import selectors as catalog_selectors
from catalog.constants import Provider
from costs import enforcement
from costs.constants import from_units
from deployments.constants import Environment
from modelhub.api.exceptions import InvalidParameter
from modelhub.api.fields import EnumField
from modelhub.api.params import IsoDateTimeParam, QuerySerializer

MAX_DAYS = 366
logger = logging.getLogger("modelhub.costs")
Z80 = 1.2816  # two-sided 80 % normal interval


class AnalysisQuery(QuerySerializer):
    from_ = IsoDateTimeParam(required=False)
    to = IsoDateTimeParam(required=False)
    environment = EnumField(choices=Environment.choices, required=False)
    provider = EnumField(choices=Provider.choices, required=False)
    modelId = serializers.UUIDField(required=False)


def _day(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def parse_query(query: Any) -> dict[str, Any]:
    params = AnalysisQuery.parse(query)
    now = timezone.now()
    period = enforcement.period_of(now)
    start = _day(params.get("from") or enforcement.period_start(period))
    raw_end = params.get("to") or enforcement.next_period_start(period)
    end = _day(raw_end) + (timedelta(days=1) if raw_end != _day(raw_end) else timedelta(0))
    if end <= start:
        raise InvalidParameter("from must be before to.", details={"fields": {"from": ["Must be before to."]}})
    if (end - start).days > MAX_DAYS:
        raise InvalidParameter(f"At most {MAX_DAYS} days.", details={"fields": {"to": [f"At most {MAX_DAYS} days."]}})
    return {
        "start": start,
        "end": end,
        "environment": params.get("environment"),
        "provider": params.get("provider"),
        "model_id": params.get("modelId"),
    }


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _num(value: Decimal) -> float:
    return float(value.quantize(Decimal("0.00000001")))


def _impact(savings: Decimal, total: Decimal) -> str:
    share = savings / total if total else Decimal(0)
    return "high" if share >= Decimal("0.10") else "medium" if share >= Decimal("0.03") else "low"


def cost_analysis(*, start, end, environment=None, provider=None, model_id=None, now=None) -> dict[str, Any]:
    key = f"costs:analysis:{start.date()}:{end.date()}:{environment}:{provider}:{model_id}"
    if now is None:
        hit = cache.get(key)
        if hit is not None:
            return hit
    answer = _compute(start, end, environment, provider, model_id, now or timezone.now())
    cache.set(key, answer, settings.COSTS_ANALYSIS_CACHE_SECONDS)
    return answer


def _model_filter(provider, model_id) -> list[Any] | None:
    """The model ids the filters allow (None: every model)."""
    if model_id is None and provider is None:
        return None
    ids = [model_id] if model_id is not None else catalog_selectors.model_ids()
    models = catalog_selectors.models_in_bulk(ids)
    return [pk for pk, m in models.items() if provider is None or m.provider == provider]


def _compute(start, end, environment, provider, model_id, now) -> dict[str, Any]:
    environments = [environment] if environment else None
    model_ids = _model_filter(provider, model_id)
    rows = analytics_selectors.cost_by_day(start, end, model_ids=model_ids, environments=environments)
    models = catalog_selectors.models_in_bulk({r["modelId"] for r in rows})
    total = Decimal(0)
    by_model: dict[str, Decimal] = defaultdict(Decimal)
    by_provider: dict[str, Decimal] = defaultdict(Decimal)
    by_env: dict[str, Decimal] = defaultdict(Decimal)
    days: dict[str, list] = {}
    last_day = min(end, _day(now) + timedelta(days=1))
    cursor = start
    while cursor < last_day:
        days[cursor.date().isoformat()] = [Decimal(0), 0]
        cursor += timedelta(days=1)
    for r in rows:
        cost = r["cost"] or Decimal(0)
        total += cost
        by_model[str(r["modelId"])] += cost
        by_provider[models[r["modelId"]].provider if r["modelId"] in models else ""] += cost
        by_env[r["environment"]] += cost
        entry = days.setdefault(r["day"].date().isoformat(), [Decimal(0), 0])
        entry[0] += cost
        entry[1] += r["requests"]
    trends = [
        {
            "date": day,
            "cost": _num(cost),
            "requests": requests,
            "avgCostPerRequest": _num(cost / requests) if requests else 0.0,
        }
        for day, (cost, requests) in sorted(days.items())
    ]
    opportunities = _opportunities(start, end, model_ids, environments, total, now)
    counted = [o for o in opportunities if not o.get("requiresExperiment")]
    potential = sum((Decimal(str(o["potentialSavings"])) for o in counted), Decimal(0))
    return {
        "currentUsage": {
            "period": {"from": _iso(start), "to": _iso(end)},
            "totalCost": _num(total),
            "costByModel": {k: _num(v) for k, v in sorted(by_model.items())},
            "costByProvider": {k: _num(v) for k, v in sorted(by_provider.items())},
            "costByEnvironment": {k: _num(v) for k, v in sorted(by_env.items())},
            "costTrends": trends,
            "modelNames": {str(pk): f"{m.name}:{m.version}" for pk, m in models.items()},
        },
        "optimization": {
            "potentialSavings": _num(potential),
            "savingsPercentage": round(float(potential / total * 100), 2) if total else 0.0,
            "opportunities": opportunities,
        },
        "budget": _budget(now),
    }


# --- opportunities ---------------------------------------------------------------------------------


def _day_figures(start, end, model_ids, environments):
    """Sums of the stored daily figures (``CostDay``, kept by ``costs.refresh_cost_days``) over the period."""
    from costs.models import CostDay

    qs = CostDay.objects.filter(day__gte=start.date(), day__lt=end.date())
    if model_ids is not None:
        qs = qs.filter(model_id__in=model_ids)
    if environments:
        qs = qs.filter(environment__in=environments)
    zero = Decimal(0)
    repeats: dict[Any, dict] = {}
    offline: dict[Any, dict] = {}
    failures: dict[Any, dict] = {}
    success: dict[Any, Decimal] = defaultdict(Decimal)
    quality: dict[tuple, dict] = {}
    for r in qs.values().iterator(chunk_size=2000):
        pk = r["model_id"]
        success[pk] += r["success_cost"]
        if r["repeat_count"]:
            entry = repeats.setdefault(pk, {"count": 0, "cost": zero})
            entry["count"] += r["repeat_count"]
            entry["cost"] += r["repeat_cost"]
        if r["offline_count"]:
            entry = offline.setdefault(pk, {"count": 0, "cost": zero})
            entry["count"] += r["offline_count"]
            entry["cost"] += r["offline_cost"]
        if r["failed"] or r["retries"]:
            entry = failures.setdefault(pk, {"failed": 0, "failed_cost": zero, "retries": 0})
            entry["failed"] += r["failed"]
            entry["failed_cost"] += r["failed_cost"]
            entry["retries"] += r["retries"]
        if r["use_case"]:
            q = quality.setdefault(
                (r["use_case"], pk),
                {
                    "use_case": r["use_case"],
                    "model_id": pk,
                    "requests": 0,
                    "successes": 0,
                    "cost": zero,
                    "accepted_count": 0,
                    "rejected_count": 0,
                    "rating_sum": 0,
                    "rating_count": 0,
                    "max_tokens": 0,
                },
            )
            for key in ("requests", "successes", "accepted_count", "rejected_count", "rating_sum", "rating_count"):
                q[key] += r[key]
            q["cost"] += r["success_cost"]
            q["max_tokens"] = max(q["max_tokens"], r["max_tokens"])
    return repeats, offline, failures, list(quality.values()), dict(success)


def _opportunities(start, end, model_ids, environments, total: Decimal, now) -> list[dict[str, Any]]:
    cfg = settings.COSTS_OPPORTUNITIES
    repeats, offline, failures, quality, success_cost = _day_figures(start, end, model_ids, environments)
    ids = set(repeats) | set(offline) | set(failures) | set(success_cost) | {q["model_id"] for q in quality}
    catalog = catalog_selectors.models_in_bulk(ids)
    out: list[dict[str, Any]] = []

    def name(pk) -> str:
        m = catalog.get(pk)
        return f"{m.name}:{m.version}" if m else str(pk)

    # 1. caching: the repeats' cost. What is left of each model's successful spend: remaining[m].
    remaining = {pk: success_cost.get(pk, Decimal(0)) for pk in ids}
    cache_savings = Decimal(0)
    cache_count = 0
    for pk, rep in repeats.items():
        cache_savings += rep["cost"]
        cache_count += rep["count"]
        remaining[pk] = remaining.get(pk, Decimal(0)) - rep["cost"]
    if cache_savings > 0:
        top = sorted(repeats, key=lambda pk: repeats[pk]["cost"], reverse=True)[:3]
        out.append(
            {
                "id": "caching",
                "type": "caching",
                "title": f"Cache repeated prompts ({cache_count} repeats within {cfg['cache_ttl_seconds']} s)",
                "description": (
                    f"{cache_count} successful calls repeated a (model, prompt) answered less than "
                    f"{cfg['cache_ttl_seconds']} s before; a response cache would have answered them at no cost. "
                    f"Most on: {', '.join(name(pk) for pk in top)}."
                ),
                "potentialSavings": _num(cache_savings),
                "effort": "low",
                "impact": _impact(cache_savings, total),
                "implementation": {
                    "steps": [
                        f"Enable networking.responseCache (ttlSeconds {cfg['cache_ttl_seconds']}) on the deployments "
                        f"of {', '.join(name(pk) for pk in top)}",
                        "Send deterministic requests (temperature 0) so they are cacheable",
                        "Watch x-modelhub-cache hit rates and cached events' savings",
                    ],
                    "estimatedTime": "1 hour",
                    "riskLevel": "low",
                },
            }
        )

    # 2. model routing, per use case, on what caching left.
    by_use_case: dict[str, dict[Any, dict]] = defaultdict(dict)
    for q in quality:
        by_use_case[q["use_case"]][q["model_id"]] = q
    routed: dict[Any, Decimal] = defaultdict(Decimal)
    for use_case, per_model in sorted(by_use_case.items()):
        for pk, q in per_model.items():
            current = catalog.get(pk)
            if current is None or not q["cost"] or current.baseline_cost_per_1k_tokens <= 0:
                continue
            best = None
            for other_pk, other in per_model.items():
                candidate = catalog.get(other_pk)
                if (
                    candidate is None
                    or other_pk == pk
                    or candidate.model_type != current.model_type
                    or candidate.baseline_cost_per_1k_tokens >= current.baseline_cost_per_1k_tokens
                    or candidate.context_window < (q["max_tokens"] or 0)
                ):
                    continue
                if best is None or candidate.baseline_cost_per_1k_tokens < catalog[best[0]].baseline_cost_per_1k_tokens:
                    best = (other_pk, other)
            if best is None:
                continue
            candidate, other = catalog[best[0]], best[1]
            ratio = candidate.baseline_cost_per_1k_tokens / current.baseline_cost_per_1k_tokens
            share = remaining.get(pk, Decimal(0)) / success_cost[pk] if success_cost.get(pk) else Decimal(0)
            savings = (q["cost"] * share * (1 - ratio)).quantize(Decimal("0.00000001"))
            if savings <= 0:
                continue
            proven = other["requests"] >= cfg["min_samples"] and _quality_close(q, other, cfg)
            if proven:
                routed[pk] += savings
            out.append(_routing(use_case, name(pk), name(best[0]), q, other, savings, total, proven, cfg))
    for pk, saved in routed.items():
        remaining[pk] = remaining.get(pk, Decimal(0)) - saved

    # 3. batching: offline traffic on providers with a batch discount, on what is left.
    batch_savings = Decimal(0)
    batch_models = []
    for pk, row in offline.items():
        m = catalog.get(pk)
        discount = Decimal(str(cfg["batch_discounts"].get(m.provider, 0))) if m else Decimal(0)
        if not discount or not row["cost"] or not success_cost.get(pk):
            continue
        share = max(Decimal(0), remaining.get(pk, Decimal(0))) / success_cost[pk]
        saved = (row["cost"] * share * discount).quantize(Decimal("0.00000001"))
        if saved > 0:
            batch_savings += saved
            batch_models.append((pk, row["count"]))
    if batch_savings > 0:
        calls = sum(c for _, c in batch_models)
        out.append(
            {
                "id": "batching",
                "type": "batching",
                "title": f"Send {calls} non-interactive calls through the providers' batch APIs",
                "description": (
                    f"{calls} calls had no end user waiting (no userId); providers with a batch API "
                    f"({', '.join(sorted({catalog[pk].provider for pk, _ in batch_models}))}) price them at a discount."
                ),
                "potentialSavings": _num(batch_savings),
                "effort": "high" if len(batch_models) > 3 else "medium",
                "impact": _impact(batch_savings, total),
                "implementation": {
                    "steps": [
                        f"Queue the offline traffic of {', '.join(name(pk) for pk, _ in batch_models[:3])}",
                        "Submit it as batch jobs (results within 24 h)",
                        "Ingest the batch results as usage events with their discounted cost",
                    ],
                    "estimatedTime": "2-3 days",
                    "riskLevel": "medium" if len(batch_models) > 3 else "low",
                },
            }
        )

    # 4. fallback: cost burned on failed calls (never overlaps the above, which count successes).
    burned = sum((r["failed_cost"] or Decimal(0) for r in failures.values()), Decimal(0))
    failed = sum(r["failed"] for r in failures.values())
    retries = sum(r["retries"] for r in failures.values())
    if burned > 0:
        worst = sorted(failures, key=lambda pk: failures[pk]["failed_cost"] or 0, reverse=True)[:3]
        out.append(
            {
                "id": "fallback",
                "type": "fallback",
                "title": f"Stop paying for {failed} failed calls",
                "description": (
                    f"{failed} calls failed after being billed, and {retries} were retries or fallbacks. "
                    f"Most on: {', '.join(name(pk) for pk in worst)}."
                ),
                "potentialSavings": _num(burned),
                "effort": "medium" if failed > 100 else "low",
                "impact": _impact(burned, total),
                "implementation": {
                    "steps": [
                        f"Put a healthy fallback deployment in networking.fallbacks of {name(worst[0])}",
                        "Fail fast: lower networking.timeout so a hung call is not billed in full",
                        "Check the error codes of the failing calls on the performance page",
                    ],
                    "estimatedTime": "half a day",
                    "riskLevel": "low",
                },
            }
        )
    return out


def _quality_close(current: dict, other: dict, cfg: dict) -> bool:
    def rate(row, key):
        return row["successes"] / row["requests"] if key == "success" and row["requests"] else None

    margin = cfg["quality_margin"]
    if rate(other, "success") < rate(current, "success") - margin["success"]:
        return False
    fed_c = current["accepted_count"] + current["rejected_count"]
    fed_o = other["accepted_count"] + other["rejected_count"]
    if fed_c and fed_o and other["accepted_count"] / fed_o < current["accepted_count"] / fed_c - margin["acceptance"]:
        return False
    if not (current["rating_count"] and other["rating_count"]):
        return True
    rating_c = current["rating_sum"] / current["rating_count"]
    return other["rating_sum"] / other["rating_count"] >= rating_c - margin["rating"]


def _routing(use_case, current, cheaper, q, other, savings, total, proven, cfg) -> dict[str, Any]:
    if proven:
        return {
            "id": f"model_routing:{use_case}:{current}",
            "type": "model_routing",
            "title": f"Route '{use_case}' from {current} to {cheaper}",
            "description": (
                f"{cheaper} served {other['requests']} '{use_case}' calls with quality within the margin of "
                f"{current} ({q['requests']} calls) at a lower price."
            ),
            "potentialSavings": _num(savings),
            "effort": "medium",
            "impact": _impact(savings, total),
            "implementation": {
                "steps": [
                    f"Point the '{use_case}' traffic at a deployment of {cheaper}",
                    "Keep the current deployment as networking.fallbacks",
                    "Watch success, acceptance and ratings for a week",
                ],
                "estimatedTime": "1 day",
                "riskLevel": "low" if other["requests"] >= 10 * cfg["min_samples"] else "medium",
            },
        }
    return {
        "id": f"model_routing:{use_case}:{current}:experiment",
        "type": "model_routing",
        "title": f"A/B test {cheaper} against {current} for '{use_case}'",
        "description": (
            f"{cheaper} is cheaper, but {other['requests']} samples (need {cfg['min_samples']}) or its quality do not "
            f"show it is as good for '{use_case}' yet: run an experiment (/experiments) before routing."
        ),
        "potentialSavings": _num(savings),
        "effort": "medium",
        "impact": _impact(savings, total),
        "implementation": {
            "steps": [
                f"Create an experiment with {current} as control and {cheaper} as treatment for '{use_case}'",
                f"Collect at least {cfg['min_samples']} calls per variant with feedback",
                "Route if the guardrails hold",
            ],
            "estimatedTime": "1-2 weeks",
            "riskLevel": "medium",
        },
        "requiresExperiment": True,
    }


# --- budget ----------------------------------------------------------------------------------------


def projection(daily: dict[str, Decimal], now: datetime, month_to_date: Decimal) -> dict[str, float]:
    """Month-to-date + each remaining day's expected cost: the mean of the same weekday over the last
    four weeks before today (all of them when fewer than 7 days of history), today counted for its
    remaining fraction; the 80 % interval adds +-1.2816 x sqrt(sum of those days' weekday variances)."""
    today = _day(now)
    history = [(today - timedelta(days=k)) for k in range(1, 29)]
    known = [(d, daily.get(d.date().isoformat())) for d in history]
    known = [(d, v) for d, v in known if v is not None]
    by_dow: dict[int, list[float]] = defaultdict(list)
    for d, v in known:
        by_dow[d.weekday()].append(float(v))
    pooled = [float(v) for _, v in known]
    use_pooled = len(known) < 7

    def stats(dow: int) -> tuple[float, float]:
        values = pooled if use_pooled or not by_dow.get(dow) else by_dow[dow]
        if not values:
            return 0.0, 0.0
        mean = statistics.fmean(values)
        var = statistics.variance(values) if len(values) > 1 else 0.0
        return mean, var

    end = enforcement.next_period_start(enforcement.period_of(now))
    elapsed = (now - today).total_seconds() / 86400
    expected, variance = 0.0, 0.0
    cursor = today
    while cursor < end:
        fraction = (1 - elapsed) if cursor == today else 1.0
        mean, var = stats(cursor.weekday())
        expected += mean * fraction
        variance += var * fraction * fraction
        cursor += timedelta(days=1)
    projected = float(month_to_date) + expected
    spread = Z80 * math.sqrt(variance)
    return {"projected": projected, "low": max(float(month_to_date), projected - spread), "high": projected + spread}


def _budget(now: datetime) -> dict[str, Any]:
    from costs.selectors import budget_queryset

    period = enforcement.period_of(now)
    month_start = enforcement.period_start(period)
    budgets = list(budget_queryset())
    monthly = min((b.monthly_budget for b in budgets), default=Decimal(0))
    binding = next((b for b in budgets if b.monthly_budget == monthly), None)
    # One read of the 1d buckets: the last 35 days hold this month (its spend) and the projection's weeks.
    rows = analytics_selectors.cost_by_day(_day(now) - timedelta(days=35), _day(now) + timedelta(days=1))
    daily: dict[str, Decimal] = defaultdict(Decimal)
    spend = Decimal(0)
    for r in rows:
        cost = r["cost"] or Decimal(0)
        daily[r["day"].date().isoformat()] += cost
        if r["day"] >= month_start:
            spend += cost
    try:
        from costs.ledger import counter_key, get_ledger

        ledger = get_ledger()
        counter = ledger.values([counter_key(period, "all")])[0]
        held = ledger.held([counter_key(period, "all")])[0]
        if counter is not None:
            spend = max(spend, from_units(counter - held))
    except Exception:  # Redis down: the recorded spend alone
        logger.warning("budget counters unavailable for the analysis", exc_info=True)
    proj = projection(daily, now, spend)
    alerts = []
    if binding is not None:
        if spend >= monthly:
            alerts.append(
                {"type": "budget_exceeded", "threshold": 100.0, "message": f"Spend {spend} USD reached the budget."}
            )
        for alert in binding.alerts or ():
            t = Decimal(str(alert["threshold"]))
            if t < 100 and spend * 100 >= monthly * t:
                alerts.append(
                    {
                        "type": "budget_warning",
                        "threshold": float(t),
                        "message": f"Spend {spend} USD passed {t}% of {monthly} USD (action {alert['action']}).",
                    }
                )
        if proj["projected"] > float(monthly) and spend < monthly:
            alerts.append(
                {
                    "type": "budget_warning",
                    "threshold": 100.0,
                    "message": f"Projected to reach {proj['projected']:.2f} USD by month end, over {monthly} USD.",
                }
            )
    alerts.extend(_unusual(daily, now, month_start))
    return {
        "monthlyBudget": float(monthly),
        "currentSpend": _num(spend),
        "remainingBudget": _num(max(Decimal(0), monthly - spend)),
        "projectedEndOfMonth": round(proj["projected"], 8),
        "projectionInterval": {
            "low": round(proj["low"], 8),
            "high": round(proj["high"], 8),
            "confidence": 0.8,
            "method": "month-to-date + same-weekday mean of the last 4 weeks per remaining day",
        },
        "alerts": alerts,
    }


def _unusual(daily: dict[str, Decimal], now: datetime, month_start: datetime) -> list[dict[str, Any]]:
    """A day of this month whose cost is above mean + 3 sigma (and 2x the mean) of the same weekday in
    the four weeks before it."""
    cfg = settings.COSTS_OPPORTUNITIES
    out = []
    day = month_start
    while day <= _day(now):
        value = daily.get(day.date().isoformat())
        prior = [daily.get((day - timedelta(days=7 * k)).date().isoformat()) for k in range(1, 5)]
        prior = [float(v) for v in prior if v is not None]
        if value is not None and len(prior) >= 2:
            mean = statistics.fmean(prior)
            sd = statistics.stdev(prior)
            limit = max(mean + cfg["unusual_sigma"] * sd, 2 * mean)
            if float(value) > limit and float(value) > 0:
                out.append(
                    {
                        "type": "unusual_spend",
                        "threshold": round(limit, 8),
                        "message": f"{day.date()} cost {value} USD, usually {mean:.4f} USD on that weekday.",
                    }
                )
        day += timedelta(days=1)
    return out
