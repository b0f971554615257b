"""Results from usage events: ingestion -> analytics rollup -> the HOURS_ROLLED_UP slot -> experiment aggregates
-> GET /experiments/{id}/results, compared with scipy on the same raw data."""

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone
from scipy import stats as sps

from analytics.rollup import rollup
from analytics.services import ingest_usage
from experiments import services
from experiments.models import ExperimentUnitHour, VariantSummary
from tests.analytics.helpers import event
from tests.conftest import API, assert_error
from tests.experiments.helpers import create_experiment
from tests.factories import DeploymentFactory

pytestmark = pytest.mark.django_db


def _events(experiment, model, variant, users, *, rating, cost, latency=100.0, per_user=1, rng=None, offset=0):
    rng = rng or np.random.default_rng(0)
    at = timezone.now() - timedelta(minutes=1)
    items = []
    for u in range(users):
        for _ in range(per_user):
            items.append(
                event(
                    model,
                    at=at,
                    userId=f"{variant}-{offset + u}",
                    experimentId=str(experiment.pk),
                    variant=variant,
                    userRating=int(np.clip(round(rng.normal(rating, 1.0)), 1, 5)),
                    cost=round(float(cost * rng.uniform(0.9, 1.1)), 8),
                    latencyMs=float(latency * rng.lognormal(0, 0.2)),
                )
            )
    for i in range(0, len(items), 1000):
        assert ingest_usage(items[i : i + 1000]).accepted == len(items[i : i + 1000])
    return items


def _aggregate():
    rollup()
    return services.experiments_aggregate()


def _results(client, experiment):
    response = client.get(f"{API}/experiments/{experiment.pk}/results")
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def running(personas, model):
    deployment = DeploymentFactory(model=model, owner=personas["developer"], environment="production")
    return create_experiment(
        personas["developer"], model, start=True, deploymentId=str(deployment.pk), analysis={"mode": "fixed"}
    )


def test_results_in_the_spec_shape_with_scipy_figures(client_for, running, model):
    rng = np.random.default_rng(42)
    control = _events(running, model, "control", 300, rating=3.6, cost=0.01, rng=rng)
    cool = _events(running, model, "cool", 300, rating=3.9, cost=0.01, rng=rng)
    assert _aggregate()["hours"] >= 1
    body = _results(client_for("analyst"), running)
    assert set(body) >= {"experimentId", "status", "duration", "variants", "recommendations"}
    assert body["status"] == "running" and set(body["duration"]) >= {"startedAt", "totalDays"}
    a, b = body["variants"]
    assert set(a) >= {"name", "traffic", "sampleSize", "metrics", "performance"}
    assert set(a["metrics"]["primary"]) >= {"value", "confidence", "improvement"}
    assert set(a["performance"]) == {"avgLatency", "successRate", "costPerRequest"}
    assert a["sampleSize"] == 300 and b["sampleSize"] == 300 and a["traffic"] == 50
    ra = np.array([e["userRating"] for e in control], float)
    rb = np.array([e["userRating"] for e in cool], float)
    ref = sps.ttest_ind(rb, ra, equal_var=False)
    assert b["metrics"]["primary"]["value"] == pytest.approx(rb.mean(), abs=1e-9)
    assert b["metrics"]["primary"]["confidence"] == pytest.approx(1 - ref.pvalue, abs=1e-6)
    assert b["metrics"]["primary"]["improvement"] == pytest.approx((rb.mean() / ra.mean() - 1) * 100, abs=1e-6)
    lat_a = np.array([e["latencyMs"] for e in control])
    lat_b = np.array([e["latencyMs"] for e in cool])
    ref_lat = sps.ttest_ind(lat_b, lat_a, equal_var=False)
    secondary = b["metrics"]["secondary"]["response_time"]
    assert secondary["value"] == pytest.approx(lat_b.mean(), rel=1e-9)
    assert secondary["confidence"] == pytest.approx(1 - ref_lat.pvalue, abs=1e-6)
    assert a["performance"]["avgLatency"] == pytest.approx(lat_a.mean(), rel=1e-6)
    assert a["performance"]["costPerRequest"] == pytest.approx(np.mean([e["cost"] for e in control]), rel=1e-6)
    assert body["srm"]["mismatch"] is False
    assert set(b["guardrails"]) == {"costPerRequest", "p95Latency", "successRate"}


def test_ratio_metrics_over_users_with_many_requests_match_the_linearised_welch_test(client_for, running, model):
    rng = np.random.default_rng(5)
    control = _events(running, model, "control", 120, rating=3.5, cost=0.01, per_user=4, rng=rng)
    cool = _events(running, model, "cool", 120, rating=3.8, cost=0.01, per_user=4, rng=rng)
    _aggregate()
    body = _results(client_for("admin"), running)

    def linearised(items):
        per_user = {}
        for e in items:
            s = per_user.setdefault(e["userId"], [0.0, 0])
            s[0] += e["userRating"]
            s[1] += 1
        x = np.array([v[0] for v in per_user.values()])
        y = np.array([v[1] for v in per_user.values()], float)
        r = x.sum() / y.sum()
        z = (x - r * y) / y.mean()
        return r, z.std(ddof=1), len(x)

    ra, sa, na = linearised(control)
    rb, sb, nb = linearised(cool)
    ref = sps.ttest_ind_from_stats(rb, sb, nb, ra, sa, na, equal_var=False)
    primary = body["variants"][1]["metrics"]["primary"]
    assert primary["confidence"] == pytest.approx(1 - ref.pvalue, abs=1e-6)
    assert body["variants"][1]["units"] == 120 and body["variants"][1]["sampleSize"] == 480


def test_better_rated_but_20_percent_more_expensive_is_not_the_winner(client_for, running, model):
    rng = np.random.default_rng(1)
    _events(running, model, "control", 400, rating=3.0, cost=0.010, rng=rng)
    _events(running, model, "cool", 400, rating=4.2, cost=0.012, rng=rng)
    _aggregate()
    body = _results(client_for("developer"), running)
    cool = body["variants"][1]
    assert cool["metrics"]["primary"]["confidence"] > 0.999  # clearly better rated
    assert cool["guardrails"]["costPerRequest"]["status"] == "failed"
    assert "winner" not in body
    assert any("costPerRequest" in r["message"] for r in body["recommendations"])
    assert_error(
        client_for("developer").post(f"{API}/experiments/{running.pk}/promote", {}, format="json"),
        409,
        "INVALID_REQUEST",
    )


def test_a_clear_winner_within_guardrails_is_declared_and_promoted(client_for, running, model):
    rng = np.random.default_rng(2)
    _events(running, model, "control", 400, rating=3.0, cost=0.010, rng=rng)
    _events(running, model, "cool", 400, rating=4.2, cost=0.010, rng=rng)
    _aggregate()
    body = _results(client_for("developer"), running)
    assert body["winner"]["variant"] == "cool", body["recommendations"]
    assert body["recommendations"][0]["type"] == "deploy_winner"
    assert all(g["status"] == "passed" for g in body["variants"][1]["guardrails"].values())
    done = client_for("developer").post(f"{API}/experiments/{running.pk}/promote", {}, format="json")
    assert done.status_code == 200, done.content
    assert done.json()["promoted"]["variant"] == "cool"
    running.deployment.refresh_from_db()
    assert running.deployment.config["parameters"]["temperature"] == 0.2
    # Recorded in both audit trails: the experiment's and the deployment's own.
    step = running.deployment.transitions.order_by("-created_at", "-id").first()
    assert step.from_status == step.to_status == "running" and step.actor_username == "developer"
    assert "promoted variant 'cool'" in step.reason
    assert running.transitions.filter(reason__icontains="cool").exists()


def test_sample_ratio_mismatch_is_detected(client_for, running, model):
    rng = np.random.default_rng(3)
    _events(running, model, "control", 600, rating=3.0, cost=0.01, rng=rng)
    _events(running, model, "cool", 400, rating=4.5, cost=0.01, rng=rng)
    _aggregate()
    body = _results(client_for("viewer"), running)
    assert body["srm"]["mismatch"] is True
    assert body["srm"]["pValue"] == pytest.approx(sps.chisquare([600, 400]).pvalue, rel=1e-6)
    assert "winner" not in body
    assert body["recommendations"][0]["type"] == "adjust_weights"


def test_aggregation_is_a_recompute_not_an_increment(client_for, running, model):
    rng = np.random.default_rng(4)
    _events(running, model, "control", 50, rating=3.0, cost=0.01, rng=rng)
    _aggregate()
    first = list(VariantSummary.objects.filter(experiment=running).values_list("variant", "units", "sums"))
    rows = ExperimentUnitHour.objects.filter(experiment=running).count()
    services.experiment_reaggregate(experiment=running)  # every hour again
    from experiments.models import DirtyHour

    hours = list(ExperimentUnitHour.objects.filter(experiment=running).values_list("hour", flat=True).distinct())
    DirtyHour.objects.bulk_create([DirtyHour(experiment=running, hour=h) for h in hours])
    services.experiments_aggregate()  # a redelivered task
    again = list(VariantSummary.objects.filter(experiment=running).values_list("variant", "units", "sums"))
    assert again == first and ExperimentUnitHour.objects.filter(experiment=running).count() == rows == 50
    # a late event of a user already counted, then feedback on it: the hour is re-marked and recomputed
    late = _events(running, model, "control", 1, rating=5.0, cost=0.01, rng=rng)
    _aggregate()
    assert VariantSummary.objects.get(experiment=running, variant="control").units == 50
    assert VariantSummary.objects.get(experiment=running, variant="control").sums["requests"][0] == 51
    assert late


def test_sequential_mode_is_the_default_and_more_conservative(client_for, personas, model):
    experiment = create_experiment(personas["developer"], model, start=True)
    rng = np.random.default_rng(9)
    _events(experiment, model, "control", 200, rating=3.5, cost=0.01, rng=rng)
    _events(experiment, model, "cool", 200, rating=3.75, cost=0.01, rng=rng)
    _aggregate()
    sequential = _results(client_for("admin"), experiment)
    assert sequential["analysis"]["mode"] == "sequential"
    on_request = client_for("admin").get(f"{API}/experiments/{experiment.pk}/results?mode=fixed").json()
    assert on_request["analysis"]["mode"] == "fixed"
    assert_error(
        client_for("admin").get(f"{API}/experiments/{experiment.pk}/results?mode=bayes"), 400, "INVALID_PARAMETER"
    )
    assert_error(
        client_for("admin").get(f"{API}/experiments/{experiment.pk}/results?colour=1"), 400, "INVALID_PARAMETER"
    )
    on_request = client_for("admin").get(f"{API}/experiments/{experiment.pk}/results?mode=fixed").json()
    assert on_request["analysis"]["mode"] == "fixed"
    assert_error(
        client_for("admin").get(f"{API}/experiments/{experiment.pk}/results?mode=bayes"), 400, "INVALID_PARAMETER"
    )
    assert_error(
        client_for("admin").get(f"{API}/experiments/{experiment.pk}/results?colour=1"), 400, "INVALID_PARAMETER"
    )
    experiment.analysis = {"mode": "fixed"}
    experiment.save(update_fields=["analysis"])
    fixed = _results(client_for("admin"), experiment)
    assert fixed["variants"][1]["metrics"]["primary"] == on_request["variants"][1]["metrics"]["primary"]
    assert fixed["variants"][1]["metrics"]["primary"] == on_request["variants"][1]["metrics"]["primary"]
    assert (
        sequential["variants"][1]["metrics"]["primary"]["confidence"]
        < fixed["variants"][1]["metrics"]["primary"]["confidence"]
    )


def test_auto_stop_on_a_failed_guardrail(client_for, personas, model):
    experiment = create_experiment(
        personas["developer"], model, start=True, analysis={"mode": "fixed", "autoStop": True}
    )
    rng = np.random.default_rng(8)
    _events(experiment, model, "control", 300, rating=3.0, cost=0.010, rng=rng)
    _events(experiment, model, "cool", 300, rating=3.0, cost=0.013, rng=rng)
    _aggregate()
    experiment.refresh_from_db()
    assert experiment.status == "stopped"
    assert experiment.status_reason == "Auto-stopped: guardrail costPerRequest failed."
    assert experiment.transitions.filter(to_status="stopped", actor__isnull=True).count() == 1
    _aggregate()  # again: nothing more to do
    assert experiment.transitions.filter(to_status="stopped").count() == 1


def test_a_slower_variant_fails_the_p95_latency_guardrail(client_for, running, model):
    rng = np.random.default_rng(12)
    _events(running, model, "control", 500, rating=3.0, cost=0.01, latency=200.0, rng=rng)
    _events(running, model, "cool", 500, rating=4.0, cost=0.01, latency=260.0, rng=rng)  # +30 %
    _aggregate()
    body = _results(client_for("developer"), running)
    p95 = body["variants"][1]["guardrails"]["p95Latency"]
    assert p95["status"] == "failed" and 0.2 < p95["estimate"] < 0.4
    assert "winner" not in body
    assert body["variants"][1]["guardrails"]["costPerRequest"]["status"] == "passed"


def test_results_without_data_or_with_one_arm_answer_with_nulls(client_for, running, model):
    empty = _results(client_for("viewer"), running)
    assert [v["sampleSize"] for v in empty["variants"]] == [0, 0]
    assert empty["variants"][1]["metrics"]["primary"]["value"] is None
    assert empty["srm"] is None and "winner" not in empty
    assert empty["recommendations"][0]["type"] == "continue_testing"
    _events(running, model, "control", 30, rating=3.0, cost=0.01)
    _aggregate()
    one = _results(client_for("viewer"), running)
    assert one["variants"][0]["sampleSize"] == 30 and one["variants"][1]["sampleSize"] == 0
    assert one["srm"]["mismatch"] is True  # 30 against 0 at 50/50
    assert one["variants"][1]["guardrails"]["costPerRequest"]["status"] == "inconclusive"


def test_cuped_uses_the_pre_period_and_matches_scipy_on_adjusted_values(client_for, personas, model):
    experiment = create_experiment(personas["developer"], model, start=True, analysis={"mode": "fixed", "cuped": True})
    rng = np.random.default_rng(31)
    before = timezone.now() - timedelta(days=2)
    pre, post = [], []
    levels = {}
    for variant, effect in (("control", 0.0), ("cool", 0.25)):
        for u in range(250):
            user = f"{variant}-{u}"
            levels[user] = rng.normal(3.2, 0.9)
            pre.append(
                event(
                    model,
                    at=before,
                    userId=user,
                    userRating=int(np.clip(round(levels[user] + rng.normal(0, 0.5)), 1, 5)),
                )
            )
            post.append(
                event(model, at=timezone.now() - timedelta(minutes=1), userId=user, experimentId=str(experiment.pk),
                      variant=variant, userRating=int(np.clip(round(levels[user] + effect + rng.normal(0, 0.5)), 1, 5)))
            )  # fmt: skip
    assert ingest_usage(pre).accepted == 500 and ingest_usage(post).accepted == 500
    _aggregate()
    body = _results(client_for("analyst"), experiment)
    assert body["analysis"]["cuped"] is True
    cuped = body["variants"][1]["metrics"]["primary"]["cuped"]
    assert cuped["varianceReduction"] > 0.3
    x = {e["userId"]: e["userRating"] for e in post}
    x0 = {e["userId"]: e["userRating"] for e in pre}
    arms = {v: [u for u in x if u.startswith(v)] for v in ("control", "cool")}
    xa, xb = (np.array([x[u] for u in arms[v]], float) for v in ("control", "cool"))
    x0a, x0b = (np.array([x0[u] for u in arms[v]], float) for v in ("control", "cool"))
    cov = np.cov(xa, x0a)[0, 1] / len(xa) + np.cov(xb, x0b)[0, 1] / len(xb)
    theta = cov / (np.var(x0a, ddof=1) / len(xa) + np.var(x0b, ddof=1) / len(xb))
    pooled = np.concatenate([x0a, x0b]).mean()
    reference = sps.ttest_ind(xb - theta * (x0b - pooled), xa - theta * (x0a - pooled), equal_var=False)
    assert cuped["theta"] == pytest.approx(theta, rel=1e-9)
    assert body["variants"][1]["metrics"]["primary"]["confidence"] == pytest.approx(1 - reference.pvalue, abs=1e-6)


def test_a_mark_re_created_while_its_hour_is_recomputed_survives(client_for, running, model, monkeypatch):
    """The rollup re-marks an hour (new events) while the aggregator recomputes it: the new mark must survive
    the aggregator's run, and the next run counts the new events."""
    from experiments import aggregates
    from experiments.models import DirtyHour

    rng = np.random.default_rng(7)
    _events(running, model, "control", 5, rating=3.0, cost=0.01, rng=rng)
    rollup()
    hours = list(DirtyHour.objects.filter(experiment=running).values_list("hour", flat=True))
    assert hours
    original = aggregates.recompute_hour
    concurrent = []

    def recompute_then_a_rollup_marks_again(experiment_id, hour, model_ids=None):
        done = original(experiment_id, hour, model_ids)
        if not concurrent:  # new events of this hour arrive and are rolled up after the recompute read them
            concurrent.extend(_events(running, model, "control", 3, rating=3.0, cost=0.01, rng=rng, offset=100))
            aggregates.mark_hours([(model.pk, hour)])
        return done

    monkeypatch.setattr(aggregates, "recompute_hour", recompute_then_a_rollup_marks_again)
    services.experiments_aggregate()
    assert set(DirtyHour.objects.filter(experiment=running).values_list("hour", flat=True)) == set(hours)
    monkeypatch.setattr(aggregates, "recompute_hour", original)
    services.experiments_aggregate()
    assert VariantSummary.objects.get(experiment=running, variant="control").units == 8
    assert not DirtyHour.objects.filter(experiment=running).exists()


def test_only_the_answering_attempt_of_the_variants_own_model_counts(client_for, personas, model):
    """Cache hits (cost 0, ~0 latency), retries and fallbacks to another model are tagged like any attempt; the
    aggregates count each call once, by its last attempt on the variant's model, and never a cache hit."""
    from experiments.models import DirtyHour
    from tests.factories import ModelRegistryFactory

    fallback_model = ModelRegistryFactory(name="fallback-provider", version="1")
    deployment = DeploymentFactory(model=model, owner=personas["developer"], environment="production")
    experiment = create_experiment(personas["developer"], model, start=True, deploymentId=str(deployment.pk))
    at = timezone.now() - timedelta(minutes=1)
    tag = {"experimentId": str(experiment.pk)}
    items = [
        # a call retried once: attempt 1 failed (slow), attempt 2 answered
        event(
            model,
            at=at,
            userId="u1",
            variant="control",
            clientRequestId="call-1",
            attempt=1,
            success=False,
            latencyMs=900.0,
            cost=0.01,
            **tag,
        ),
        event(
            model,
            at=at + timedelta(seconds=1),
            userId="u1",
            variant="control",
            clientRequestId="call-1",
            attempt=2,
            latencyMs=100.0,
            cost=0.01,
            **tag,
        ),
        # the same prompt again, answered by the response cache: not the variant's work
        event(
            model,
            at=at,
            userId="u1",
            variant="control",
            clientRequestId="call-2",
            cached=True,
            latencyMs=0.5,
            cost=0.0,
            **tag,
        ),
        # the variant failed and the call fell back to another model: the variant's own (failed) attempt counts
        event(
            model,
            at=at,
            userId="u2",
            variant="cool",
            clientRequestId="call-3",
            attempt=1,
            success=False,
            latencyMs=300.0,
            cost=0.02,
            **tag,
        ),
        event(
            fallback_model,
            at=at,
            userId="u2",
            variant="cool",
            clientRequestId="call-3",
            attempt=2,
            latencyMs=50.0,
            cost=0.5,
            **tag,
        ),
        # a plain call without a clientRequestId counts as itself
        event(model, at=at, userId="u2", variant="cool", latencyMs=200.0, cost=0.02, **tag),
    ]
    assert ingest_usage(items).accepted == len(items)
    from experiments.aggregates import mark_hours

    hour = at.replace(minute=0, second=0, microsecond=0)
    mark_hours([(model.pk, hour), (fallback_model.pk, hour)])
    assert DirtyHour.objects.filter(experiment=experiment).exists()
    services.experiments_aggregate()
    sums = {s.variant: s.sums for s in VariantSummary.objects.filter(experiment=experiment)}
    assert sums["control"]["requests"][0] == 1 and sums["control"]["successes"][0] == 1
    assert sums["control"]["latency_sum"][0] == pytest.approx(100.0)
    assert sums["cool"]["requests"][0] == 2 and sums["cool"]["successes"][0] == 1
    assert sums["cool"]["latency_sum"][0] == pytest.approx(500.0)
    assert sums["cool"]["cost_sum"][0] == pytest.approx(0.04)
    again = services.experiment_reaggregate(experiment=experiment)  # a full recompute agrees
    assert again >= 1
    assert {s.variant: s.sums for s in VariantSummary.objects.filter(experiment=experiment)} == sums
