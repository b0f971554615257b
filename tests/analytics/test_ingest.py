"""POST /analytics/events: item-by-item validation, duplicates, bounds, roles."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from analytics.models import DirtyHour, UsageEvent
from catalog import selectors as catalog_selectors
from tests.analytics.helpers import event
from tests.conftest import API, assert_error
from tests.factories import ModelRegistryFactory

pytestmark = pytest.mark.django_db
URL = API + "/analytics/events"


def post(client, events):
    return client.post(URL, {"events": events}, format="json")


def test_valid_events_are_stored_with_every_field(client_for, model):
    at = timezone.now() - timedelta(minutes=5)
    body = event(
        model,
        at=at,
        requestId="r-1",
        userId="u-1",
        latencyMs=321.5,
        promptTokens=1000,
        completionTokens=500,
        success=False,
        errorCode="RATE_LIMITED",
        errorMessage="429 from provider",
        confidenceScore=0.7,
        userRating=4,
        accepted=False,
        useCase="support",
        experimentId="exp-1",
        variant="B",
        promptHash="abc",
        environment="staging",
    )
    response = post(client_for("developer"), [body])
    assert response.status_code == 200, response.content
    assert response.json() == {"accepted": 1, "duplicates": 0, "rejected": 0, "errors": []}
    row = UsageEvent.objects.get(request_id="r-1")
    assert row.model_id == model.pk and row.environment == "staging" and row.user_id == "u-1"
    assert row.latency_ms == 321.5 and row.prompt_tokens == 1000 and row.completion_tokens == 500
    assert row.success is False and row.error_code == "RATE_LIMITED" and row.error_message == "429 from provider"
    assert row.confidence_score == 0.7 and row.user_rating == 4 and row.accepted is False
    assert (row.use_case, row.experiment_id, row.variant, row.prompt_hash) == ("support", "exp-1", "B", "abc")
    assert abs((row.timestamp - at).total_seconds()) < 0.001
    # Cost from the model's list price: 1,500 tokens at costPer1kTokens.
    assert row.cost == (Decimal(1500) * model.baseline_cost_per_1k_tokens / 1000).quantize(Decimal("0.00000001"))
    assert DirtyHour.objects.filter(model_id=model.pk, hour=at.replace(minute=0, second=0, microsecond=0)).exists()


def test_given_cost_is_kept_and_environment_defaults_to_production(client_for, model):
    post(client_for("manager"), [event(model, requestId="c-1", cost=0.0125)])
    row = UsageEvent.objects.get(request_id="c-1")
    assert row.cost == Decimal("0.0125") and row.environment == "production"


def test_invalid_events_are_rejected_by_index_and_valid_ones_kept(client_for, model):
    now = timezone.now()
    events = [
        event(model, requestId="ok-1"),
        event(model, requestId="bad-tokens", promptTokens=-1),
        event(ModelRegistryFactory.build(), requestId="no-model"),
        event(model, requestId="future", at=now + timedelta(hours=1)),
        event(model, requestId="ok-2"),
        "not an object",
        event(model, requestId="no-latency", latencyMs=...),
        event(model, requestId="rating", userRating=6),
        event(model, requestId="bool-tokens", completionTokens=True),
        event(model, requestId="extra", surprise=1),
        event(model, requestId="naive", timestamp="2026-11-26T10:00:00"),
        event(model, requestId="ok-but-error", success=True, errorCode="X"),
        event(model, requestId="env-object", environment={"a": 1}),  # found by schemathesis: was a 500
        event(model, requestId="user-number", userId=5, modelId=["x"], deploymentId={"id": 1}),
    ]
    response = post(client_for("admin"), events)
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] == 2 and body["duplicates"] == 0 and body["rejected"] == 12
    by_index = {e["index"]: e for e in body["errors"]}
    assert sorted(by_index) == [1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13]
    assert by_index[1]["code"] == "INVALID_PARAMETER" and by_index[1]["fields"][0]["field"] == "promptTokens"
    assert by_index[2]["code"] == "MODEL_NOT_FOUND" and by_index[2]["requestId"] == "no-model"
    assert by_index[3]["fields"][0]["field"] == "timestamp"
    assert by_index[5]["code"] == "INVALID_REQUEST" and by_index[5]["requestId"] is None
    assert by_index[6]["code"] == "MISSING_REQUIRED_FIELD" and by_index[6]["fields"][0]["field"] == "latencyMs"
    assert by_index[7]["fields"][0]["field"] == "userRating"
    assert by_index[8]["fields"][0]["field"] == "completionTokens"
    assert by_index[9]["fields"][0]["field"] == "surprise"
    assert by_index[10]["fields"][0]["field"] == "timestamp"
    assert by_index[11]["fields"][0]["field"] == "errorCode"
    assert by_index[12]["fields"][0]["field"] == "environment"
    assert {f["field"] for f in by_index[13]["fields"]} == {"userId", "modelId", "deploymentId"}
    assert set(UsageEvent.objects.values_list("request_id", flat=True)) == {"ok-1", "ok-2"}


def test_resent_events_are_counted_once(client_for, model):
    events = [event(model, requestId=f"dup-{i}") for i in range(5)]
    first = post(client_for("developer"), events).json()
    assert (first["accepted"], first["duplicates"]) == (5, 0)
    again = post(client_for("developer"), [*events, event(model, requestId="new")]).json()
    assert (again["accepted"], again["duplicates"]) == (1, 5)
    within = post(client_for("developer"), [event(model, requestId="twice"), event(model, requestId="twice")]).json()
    assert (within["accepted"], within["duplicates"]) == (1, 1)
    assert UsageEvent.objects.count() == 7


def test_every_event_rejected_is_a_400_with_the_report(client_for, model):
    response = post(client_for("developer"), [event(model, latencyMs=-5)])
    body = assert_error(response, 400, "INVALID_REQUEST")
    assert body["details"]["rejected"] == 1
    assert body["details"]["errors"][0]["fields"][0]["field"] == "latencyMs"


@pytest.mark.parametrize(
    "payload, code",
    [
        ({"events": []}, "INVALID_PARAMETER"),
        ({"events": "x"}, "INVALID_PARAMETER"),
        ({}, "MISSING_REQUIRED_FIELD"),
        ({"events": [{}], "more": 1}, "INVALID_PARAMETER"),
        ([1, 2], "INVALID_REQUEST"),
    ],
)
def test_malformed_batches(client_for, payload, code):
    assert_error(client_for("developer").post(URL, payload, format="json"), 400, code)


def test_batches_are_bounded(client_for, model):
    events = [event(model) for _ in range(1001)]
    assert_error(post(client_for("developer"), events), 400, "INVALID_PARAMETER")
    assert UsageEvent.objects.count() == 0


def test_old_events_beyond_raw_retention_are_rejected(client_for, model, settings):
    old = timezone.now() - timedelta(days=settings.ANALYTICS_RETENTION_DAYS["raw"] + 1)
    response = post(client_for("developer"), [event(model, at=old), event(model)])
    assert response.json()["errors"][0]["fields"][0]["field"] == "timestamp"


def test_deployment_rules(client_for, model, personas):
    from tests.factories import DeploymentFactory

    deployment = DeploymentFactory(model=model, environment="staging", owner=personas["developer"])
    other = DeploymentFactory(owner=personas["developer"])
    response = post(
        client_for("developer"),
        [
            event(model, requestId="d-ok", deploymentId=str(deployment.pk)),
            event(model, requestId="d-other-model", deploymentId=str(other.pk)),
            event(model, requestId="d-unknown", deploymentId="00000000-0000-0000-0000-000000000001"),
            event(model, requestId="d-env", deploymentId=str(deployment.pk), environment="production"),
        ],
    ).json()
    assert response["accepted"] == 1
    codes = {e["requestId"]: e["code"] for e in response["errors"]}
    assert codes == {
        "d-other-model": "INVALID_PARAMETER",
        "d-unknown": "DEPLOYMENT_NOT_FOUND",
        "d-env": "INVALID_PARAMETER",
    }
    assert UsageEvent.objects.get(request_id="d-ok").environment == "staging"  # taken from the deployment


@pytest.mark.parametrize(
    "role, status", [("admin", 200), ("manager", 200), ("developer", 200), ("analyst", 403), ("viewer", 403)]
)
def test_who_may_ingest(client_for, model, role, status):
    response = post(client_for(role), [event(model)])
    assert response.status_code == status
    if status == 403:
        assert_error(response, 403, "FORBIDDEN")


def test_anonymous_cannot_ingest(model):
    from rest_framework.test import APIClient

    assert_error(APIClient().post(URL, {"events": [event(model)]}, format="json"), 401, "UNAUTHORIZED")


def test_a_price_change_or_a_deleted_model_counts_from_the_next_batch(client_for, model):
    """Model prices are kept per catalog generation (``catalog.selectors.model_prices``): every catalog
    write moves it on, so the batch after a write sees it, in every process."""
    client = client_for("admin")
    post(client, [event(model, requestId="p-1", promptTokens=1000, completionTokens=0)])  # prices kept
    response = client.patch(f"{API}/models/{model.pk}", {"baselineMetrics": {"costPer1kTokens": 0.5}}, format="json")
    assert response.status_code == 200, response.content
    post(client, [event(model, requestId="p-2", promptTokens=1000, completionTokens=0)])
    costs = dict(UsageEvent.objects.values_list("request_id", "cost"))
    assert costs["p-1"] == model.baseline_cost_per_1k_tokens and costs["p-2"] == Decimal("0.5")

    gone = ModelRegistryFactory()
    assert catalog_selectors.model_prices([gone.pk]) == {gone.pk: gone.baseline_cost_per_1k_tokens}  # now kept
    gone_id = gone.pk
    gone.delete()
    response = post(client, [event(model, requestId="g-2"), {**event(model, requestId="g-3"), "modelId": str(gone_id)}])
    assert [e["code"] for e in response.json()["errors"]] == ["MODEL_NOT_FOUND"]


def test_ingestion_prices_events_without_the_cache(client_for, model, settings):
    """The price memo needs the catalog generation from the cache; with the cache unreachable the prices
    come from the database (nothing is kept) and the batch is stored as usual."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    response = post(
        client_for("developer"), [event(model, requestId="no-cache", promptTokens=1000, completionTokens=0)]
    )
    assert response.status_code == 200, response.content
    assert UsageEvent.objects.get(request_id="no-cache").cost == model.baseline_cost_per_1k_tokens
