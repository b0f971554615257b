"""GET /cost/analysis against hand-computed values (the README's formulas)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db.models import Sum
from django.utils import timezone

from analytics.models import UsageEvent
from analytics.rollup import rollup
from analytics.services import ingest_usage
from costs.analysis import _day, projection
from costs.services import refresh_cost_days
from tests.analytics.helpers import event
from tests.conftest import API
from tests.costs.helpers import budget
from tests.factories import ModelRegistryFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def traffic():
    """A (0.01 USD/1k) and B (0.002 USD/1k), both OpenAI text models; every call is 1,000 prompt tokens.

    * A, use case support, end user u1: 10 calls = 0.10; three share promptHash h1 within 2 minutes (2 repeats);
    * B, use case support, end user u2: 60 calls = 0.12 (enough samples, same success rate);
    * A, use case batch-job, no end user: 5 calls = 0.05 (batch-able);
    * A, 2 failed calls billed 0.005 each = 0.01.
    Total 0.28 USD, 77 calls."""
    a = ModelRegistryFactory(name="big", baseline_cost_per_1k_tokens=Decimal("0.01"))
    b = ModelRegistryFactory(name="small", baseline_cost_per_1k_tokens=Decimal("0.002"))
    base = timezone.now() - timedelta(days=3)
    items = []
    for i in range(10):
        at = base + timedelta(seconds=60 * i) if i < 3 else base + timedelta(hours=i)
        items.append(
            event(
                a,
                at=at,
                promptTokens=1000,
                completionTokens=0,
                useCase="support",
                userId="u1",
                promptHash="h1" if i < 3 else f"a{i}",
            )
        )
    for i in range(60):
        at = base - timedelta(days=1, minutes=i)
        items.append(event(b, at=at, promptTokens=1000, completionTokens=0, useCase="support", userId="u2"))
    for i in range(5):
        items.append(
            event(a, at=base - timedelta(days=2, minutes=i), promptTokens=1000, completionTokens=0, useCase="batch-job")
        )
    for i in range(2):
        items.append(
            event(
                a,
                at=base + timedelta(minutes=30 + i),
                promptTokens=500,
                completionTokens=0,
                success=False,
                errorCode="upstream_error",
                cost=0.005,
                userId="u3",
            )
        )
    assert ingest_usage(items).accepted == 77
    rollup()
    from costs.models import CostDay

    def stored():
        return sorted(
            tuple(sorted(r.items()))
            for r in CostDay.objects.values().iterator()
            if r.pop("id") and r.pop("computed_at")
        )

    refresh_cost_days()
    once = stored()
    refresh_cost_days()  # the job run again (or twice at once): the same rows
    assert once and stored() == once
    return a, b


def test_totals_and_opportunities_match_the_hand_computed_values(traffic, client_for):
    a, b = traffic
    period = {"from": (_day(timezone.now()) - timedelta(days=15)).isoformat(), "to": _day(timezone.now()).isoformat()}
    response = client_for("analyst").get(f"{API}/cost/analysis", period)
    assert response.status_code == 200, response.content
    body = response.json()
    usage = body["currentUsage"]
    events_total = UsageEvent.objects.aggregate(s=Sum("cost"))["s"]
    assert events_total == Decimal("0.28") and usage["totalCost"] == 0.28
    assert usage["costByModel"] == {str(a.pk): 0.16, str(b.pk): 0.12}
    assert usage["costByProvider"] == {"openai": 0.28} and usage["costByEnvironment"] == {"production": 0.28}
    assert round(sum(t["cost"] for t in usage["costTrends"]), 8) == 0.28
    assert sum(t["requests"] for t in usage["costTrends"]) == 77
    assert len(usage["costTrends"]) == 15  # one point per day, zeros included
    found = {o["type"]: o for o in body["optimization"]["opportunities"]}
    # caching: the 2 repeats of h1 on A
    assert found["caching"]["potentialSavings"] == 0.02
    # routing on what caching left: 0.10 x (0.13 / 0.15) x (1 - 0.002 / 0.01)
    routing = found["model_routing"]
    assert routing["potentialSavings"] == 0.06933333 and "requiresExperiment" not in routing
    # batching on what is left: 0.05 x ((0.13 - 0.06933333) / 0.15) x 0.5
    assert found["batching"]["potentialSavings"] == 0.01011111
    # fallback: the failed calls' cost
    assert found["fallback"]["potentialSavings"] == 0.01
    assert body["optimization"]["potentialSavings"] == 0.10944444
    assert body["optimization"]["savingsPercentage"] == 39.09
    for o in found.values():
        assert o["effort"] in {"low", "medium", "high"} and o["implementation"]["steps"]
    only_b = client_for("analyst").get(f"{API}/cost/analysis", {**period, "modelId": str(b.pk)}).json()["currentUsage"]
    assert only_b["totalCost"] == 0.12 and list(only_b["costByModel"]) == [str(b.pk)]
    other = client_for("analyst").get(f"{API}/cost/analysis", {**period, "provider": "anthropic"}).json()
    assert other["currentUsage"]["totalCost"] == 0.0 and other["optimization"]["opportunities"] == []
    staging = client_for("analyst").get(f"{API}/cost/analysis", {**period, "environment": "staging"}).json()
    assert staging["currentUsage"]["totalCost"] == 0.0


def test_too_few_samples_suggest_an_experiment_and_count_nothing(client_for):
    a = ModelRegistryFactory(baseline_cost_per_1k_tokens=Decimal("0.01"))
    b = ModelRegistryFactory(baseline_cost_per_1k_tokens=Decimal("0.002"))
    at = timezone.now() - timedelta(hours=2)
    items = [event(a, at=at, useCase="qa", userId="u", promptTokens=1000, completionTokens=0) for _ in range(5)]
    items += [event(b, at=at, useCase="qa", userId="u", promptTokens=1000, completionTokens=0) for _ in range(5)]
    ingest_usage(items)
    rollup()
    refresh_cost_days()
    body = client_for("admin").get(f"{API}/cost/analysis").json()
    routing = [o for o in body["optimization"]["opportunities"] if o["type"] == "model_routing"]
    assert routing and routing[0]["requiresExperiment"] is True and "A/B test" in routing[0]["title"]
    assert body["optimization"]["potentialSavings"] == 0.0


def test_projection_is_weekday_aware():
    now = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)  # a Tuesday, half gone
    daily = {}
    for k in range(1, 29):
        day = now - timedelta(days=k)
        daily[day.date().isoformat()] = Decimal(3) if day.weekday() == 5 else Decimal(1)
    # today's half (1 x 0.5) + Nov 11-30: Saturdays 14, 21, 28 at 3, the 17 other days at 1
    result = projection(daily, now, Decimal(10))
    assert result["projected"] == pytest.approx(10 + 0.5 + 9 + 17)
    assert result["low"] == result["high"] == pytest.approx(36.5)  # no spread: no interval width
    daily[(now - timedelta(days=7)).date().isoformat()] = Decimal(5)  # one Tuesday far off
    spread = projection(daily, now, Decimal(10))
    assert spread["low"] < spread["projected"] < spread["high"]


def test_budget_block_and_alerts(client_for, personas):
    model = ModelRegistryFactory(baseline_cost_per_1k_tokens=Decimal("1"))
    budget(personas["admin"], 10, alerts=[{"threshold": 50, "action": "notify", "channels": []}])
    ingest_usage([event(model, promptTokens=6000, completionTokens=0)])
    rollup()
    b = client_for("admin").get(f"{API}/cost/analysis").json()["budget"]
    assert b["monthlyBudget"] == 10.0 and b["currentSpend"] == 6.0 and b["remainingBudget"] == 4.0
    assert {"type": "budget_warning", "threshold": 50.0} in [
        {k: a[k] for k in ("type", "threshold")} for a in b["alerts"]
    ]
    assert b["projectionInterval"]["confidence"] == 0.8 and b["projectedEndOfMonth"] >= 6.0


def test_query_is_bounded(client_for):
    bad = client_for("admin").get(f"{API}/cost/analysis", {"from": "2026-01-01", "to": "2027-06-01"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "INVALID_PARAMETER"
    assert client_for("admin").get(f"{API}/cost/analysis", {"sort": "x"}).status_code == 400
    assert client_for("viewer").get(f"{API}/cost/analysis").status_code == 403


def test_a_day_far_above_its_weekday_is_unusual_spend(client_for):
    model = ModelRegistryFactory(baseline_cost_per_1k_tokens=Decimal("1"))
    today = _day(timezone.now())  # midnight: never in the future, always today
    items = [
        event(model, at=today - timedelta(days=7 * k), promptTokens=1000, completionTokens=0) for k in (1, 2, 3, 4)
    ]
    items.append(event(model, at=today - timedelta(days=14), promptTokens=500, completionTokens=0))
    items.append(event(model, at=today, promptTokens=10_000, completionTokens=0))  # 10 USD today
    assert ingest_usage(items).accepted == 6
    rollup()
    alerts = client_for("admin").get(f"{API}/cost/analysis").json()["budget"]["alerts"]
    unusual = [a for a in alerts if a["type"] == "unusual_spend"]
    # the same weekday before: 1, 1.5, 1, 1 -> mean 1.125, sd 0.25: the limit is max(1.875, 2.25) = 2.25
    assert unusual and unusual[-1]["threshold"] == 2.25 and "10" in unusual[-1]["message"]
