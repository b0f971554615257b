"""An experiment created through the API splits real gateway traffic (tests/gateway's ``gw``: a real uvicorn hub
and a stub upstream over TCP) by its weights and rules; the usage events are tagged; results count them."""

import json

import pytest

from analytics.models import UsageEvent
from analytics.rollup import rollup
from experiments import services
from tests.conftest import API
from tests.experiments.helpers import experiment_body

pytestmark = pytest.mark.slow

UNLIMITED = {"requestsPerMinute": 1_000_000, "burstLimit": 100_000}


def _start(client, model, deployment, **overrides):
    body = experiment_body(model, deploymentId=str(deployment.pk), **overrides)
    created = client.post(f"{API}/experiments", body, format="json")
    assert created.status_code == 201, created.content
    experiment_id = created.json()["experiment"]["id"]
    assert client.post(f"{API}/experiments/{experiment_id}/start").status_code == 200
    return experiment_id


def _sent_temperatures(stub):
    return [r["json"].get("temperature") for r in stub.requests if r.get("json") and "messages" in r["json"]]


def test_weights_split_real_traffic_and_tag_the_events(gw, client_for):
    model = gw.model()
    deployment = gw.deployment(model=model, temperature=0.9, rateLimiting=UNLIMITED)
    variants = [
        {"name": "control", "version": model.version, "weight": 70, "configuration": {}},
        {"name": "cool", "version": model.version, "weight": 30, "configuration": {"temperature": 0.2}},
    ]
    experiment_id = _start(client_for("developer"), model, deployment, variants=variants)
    key = gw.key()
    users = [f"user-{i}" for i in range(300)]
    for user in users:
        assert gw.post(deployment, key=key, headers={"X-Modelhub-User": user}).status_code == 200
    for user in users[:20]:  # the same users again: same variants
        assert gw.post(deployment, key=key, headers={"X-Modelhub-User": user}).status_code == 200
    gw.drain()
    events = list(UsageEvent.objects.filter(deployment=deployment).values("user_id", "experiment_id", "variant"))
    assert len(events) == 320 and all(e["experiment_id"] == experiment_id for e in events)
    by_user: dict[str, set] = {}
    for e in events:
        by_user.setdefault(e["user_id"], set()).add(e["variant"])
    assert all(len(v) == 1 for v in by_user.values())  # sticky
    cool = sum(1 for u in users if by_user[u] == {"cool"})
    assert 0.22 < cool / len(users) < 0.38  # 30 % +- 3.5 standard deviations
    temperatures = _sent_temperatures(gw.stub)
    assert temperatures.count(0.2) == sum(1 for e in events if e["variant"] == "cool")
    assert temperatures.count(0.9) == sum(1 for e in events if e["variant"] == "control")
    # the results endpoint counts the same traffic (rollup -> slot -> aggregates)
    rollup()
    services.experiments_aggregate()
    results = client_for("viewer").get(f"{API}/experiments/{experiment_id}/results").json()
    counts = {v["name"]: (v["units"], v["sampleSize"]) for v in results["variants"]}
    assert counts["cool"] == (cool, sum(1 for e in events if e["variant"] == "cool"))
    assert sum(units for units, _ in counts.values()) == 300


def test_rules_and_traffic_percentage(gw, client_for):
    model = gw.model()
    deployment = gw.deployment(model=model, rateLimiting=UNLIMITED)
    traffic = {
        "type": "rules-based",
        "totalPercentage": 100,
        "rules": [{"condition": "user.tier == 'premium' and user.country in ['US', 'CA']", "variantName": "cool"}],
    }
    experiment_id = _start(client_for("developer"), model, deployment, traffic=traffic)
    key = gw.key()
    premium = json.dumps({"tier": "premium", "country": "CA"})
    for i in range(20):
        gw.post(deployment, key=key, headers={"X-Modelhub-User": f"p{i}", "X-Modelhub-User-Attributes": premium})
        gw.post(
            deployment, key=key, headers={"X-Modelhub-User": f"f{i}", "X-Modelhub-User-Attributes": '{"tier": "free"}'}
        )
    gw.drain()
    rows = dict(UsageEvent.objects.filter(deployment=deployment).values_list("user_id", "variant"))
    assert {rows[f"p{i}"] for i in range(20)} == {"cool"}
    assert {rows[f"f{i}"] for i in range(20)} == {""}  # no rule matched: not in the experiment, untagged
    assert not UsageEvent.objects.filter(user_id__startswith="f", experiment_id=experiment_id).exists()


def test_total_percentage_and_stopping(gw, client_for):
    model = gw.model()
    deployment = gw.deployment(model=model, rateLimiting=UNLIMITED)
    client = client_for("developer")
    experiment_id = _start(client, model, deployment, traffic={"type": "percentage", "totalPercentage": 40})
    key = gw.key()
    for i in range(200):
        gw.post(deployment, key=key, headers={"X-Modelhub-User": f"u{i}"})
    gw.drain()
    tagged = UsageEvent.objects.filter(deployment=deployment).exclude(experiment_id="").count()
    assert 50 < tagged < 110  # 40 % of 200 +- 3.5 sd
    assert client.post(f"{API}/experiments/{experiment_id}/stop", {}, format="json").status_code == 200
    gw.post(deployment, key=key, headers={"X-Modelhub-User": "after-stop"})
    gw.drain()
    assert UsageEvent.objects.get(user_id="after-stop").experiment_id == ""  # the plan cache was cleared


def test_a_variant_of_another_model_is_served_by_that_models_deployment(gw, client_for):
    model = gw.model()
    other = gw.model(name="other-provider-model", version="7")
    deployment = gw.deployment(model=model, rateLimiting=UNLIMITED)
    other_deployment = gw.deployment(model=other, rateLimiting=UNLIMITED)
    other_deployment.environment = deployment.environment
    other_deployment.save(update_fields=["environment"])
    variants = [
        {"name": "control", "version": model.version, "weight": 50},
        {"name": "other", "version": "7", "weight": 50, "modelId": str(other.pk)},
    ]
    _start(client_for("developer"), model, deployment, variants=variants)
    key = gw.key()
    for i in range(60):
        assert gw.post(deployment, key=key, headers={"X-Modelhub-User": f"o{i}"}).status_code == 200
    gw.drain()
    served = dict(UsageEvent.objects.filter(user_id__startswith="o").values_list("user_id", "deployment_id"))
    variants_of = dict(UsageEvent.objects.filter(user_id__startswith="o").values_list("user_id", "variant"))
    assert len(served) == 60
    for user, variant in variants_of.items():
        assert served[user] == (other_deployment.pk if variant == "other" else deployment.pk)
    assert 10 < sum(1 for v in variants_of.values() if v == "other") < 50


def test_a_broken_stored_plan_is_served_without_the_experiment(gw, client_for):
    from experiments.models import Experiment

    model = gw.model()
    deployment = gw.deployment(model=model, rateLimiting=UNLIMITED)
    experiment_id = _start(client_for("developer"), model, deployment)
    bad = {"type": "rules-based", "totalPercentage": 100, "rules": [{"condition": "user.tier ==", "variantName": "x"}]}
    Experiment.objects.filter(pk=experiment_id).update(traffic=bad)  # what an unchecked admin save once did
    services.selectors.invalidate_plans()
    key = gw.key()
    assert gw.post(deployment, key=key, headers={"X-Modelhub-User": "broken-1"}).status_code == 200
    gw.drain()
    assert UsageEvent.objects.get(user_id="broken-1").experiment_id == ""
