"""Longer than 350 lines on purpose: the catalog's whole API (writes, every filter, sorting,
search, detail), case by case, over one set of fixtures."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from catalog.models import GovernanceEvent, ModelRegistry
from tests.conftest import API, assert_error
from tests.factories import ModelRegistryFactory

pytestmark = pytest.mark.django_db

VALID = {
    "name": "acme-llm",
    "version": "1.0.0",
    "provider": "custom",
    "modelType": "text",
    "capabilities": ["chat", "streaming"],
    "supportedTasks": ["chat"],
    "maxTokens": 4096,
    "contextWindow": 32768,
    "baselineMetrics": {"avgLatencyMs": 350, "costPer1kTokens": 0.0005, "successRate": 0.99},
    "description": "Our own model.",
    "tags": ["self-hosted"],
    "category": "support",
    "documentation": "https://docs.example.com/acme-llm",
}


def test_register_model_sets_owner_from_caller(client_for, personas):
    response = client_for("admin").post(f"{API}/models", {**VALID, "owner": "someone-else"}, format="json")
    # owner is not an accepted field: the body cannot choose it
    error = assert_error(response, 400, "INVALID_REQUEST")
    assert "owner" in error["details"]["fields"]

    response = client_for("admin").post(f"{API}/models", VALID, format="json")
    assert response.status_code == 201, response.json()
    model = response.json()["model"]
    assert model["owner"] == "admin"
    assert model["baselineMetrics"] == {
        "avgLatencyMs": 350.0,
        "costPer1kTokens": 0.0005,
        "successRate": 0.99,
        "avgTokensPerRequest": 0,
    }
    assert model["status"] == "active" and model["securityLevel"] == "internal"
    assert model["createdAt"].endswith("Z") and model["lastValidatedAt"] is None
    assert set(model) == {
        "id",
        "name",
        "version",
        "provider",
        "modelType",
        "capabilities",
        "supportedTasks",
        "inputFormats",
        "outputFormats",
        "maxTokens",
        "contextWindow",
        "maxBatchSize",
        "supportedParameters",
        "baselineMetrics",
        "description",
        "tags",
        "category",
        "license",
        "documentation",
        "status",
        "securityLevel",
        "compliance",
        "owner",
        "createdAt",
        "updatedAt",
        "lastValidatedAt",
    }
    assert GovernanceEvent.objects.filter(model_id=model["id"], field="registered").count() == 1


def test_duplicate_name_version_is_409(client_for):
    client = client_for("admin")
    assert client.post(f"{API}/models", VALID, format="json").status_code == 201
    error = assert_error(client.post(f"{API}/models", VALID, format="json"), 409, "MODEL_ALREADY_EXISTS")
    assert error["details"] == {"name": "acme-llm", "version": "1.0.0"}
    # another version of the same model is fine
    assert client.post(f"{API}/models", {**VALID, "version": "1.1.0"}, format="json").status_code == 201


def test_missing_required_fields(client_for):
    body = {k: v for k, v in VALID.items() if k not in ("name", "baselineMetrics")}
    error = assert_error(client_for("admin").post(f"{API}/models", body, format="json"), 400, "MISSING_REQUIRED_FIELD")
    assert set(error["details"]["fields"]) == {"name", "baselineMetrics"}


def test_unknown_enum_value_lists_allowed_values(client_for):
    body = {**VALID, "provider": "azure", "modelType": "audio"}
    error = assert_error(client_for("admin").post(f"{API}/models", body, format="json"), 400, "INVALID_REQUEST")
    assert error["details"]["allowedValues"]["provider"] == ["openai", "anthropic", "neuroweaver", "google", "custom"]
    assert "code" in error["details"]["allowedValues"]["modelType"]


@pytest.mark.parametrize(
    "patch, field",
    [
        ({"maxTokens": 0}, "maxTokens"),
        ({"maxTokens": 100_000, "contextWindow": 1000}, "nonFieldErrors"),
        (
            {"baselineMetrics": {"avgLatencyMs": -1, "costPer1kTokens": 0.1, "successRate": 0.9}},
            "baselineMetrics.avgLatencyMs",
        ),
        (
            {"baselineMetrics": {"avgLatencyMs": 1, "costPer1kTokens": -0.1, "successRate": 0.9}},
            "baselineMetrics.costPer1kTokens",
        ),
        (
            {"baselineMetrics": {"avgLatencyMs": 1, "costPer1kTokens": 0.1, "successRate": 95}},
            "baselineMetrics.successRate",
        ),
        ({"capabilities": "chat"}, "capabilities"),
        ({"capabilities": [""]}, "capabilities[0]"),
        ({"tags": [f"t{i}" for i in range(51)]}, "tags"),
        ({"version": "1 0"}, "version"),
        ({"name": ""}, "name"),
        ({"maxTokens": "many"}, "maxTokens"),
        ({"supportedParameters": ["a"]}, "supportedParameters"),
    ],
)
def test_invalid_bodies_name_the_field(client_for, patch, field):
    error = assert_error(
        client_for("admin").post(f"{API}/models", {**VALID, **patch}, format="json"), 400, "INVALID_REQUEST"
    )
    assert field in error["details"]["fields"], error


def test_retrieve_detail_shape(client_for, model):
    response = client_for("viewer").get(f"{API}/models/{model.pk}")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"model", "deployments", "performance", "usage"}
    assert body["model"]["id"] == str(model.pk)
    assert body["deployments"] == []
    assert set(body["performance"]) == {"last24h", "last7d", "last30d"}
    metrics = body["performance"]["last7d"]
    assert metrics["requests"]["total"] == 0 and metrics["timeRange"]["granularity"] == "1d"
    assert set(metrics) >= {
        "modelId",
        "timeRange",
        "requests",
        "latency",
        "tokens",
        "cost",
        "quality",
        "errors",
        "timeSeries",
    }
    assert body["usage"] == {"totalRequests": 0, "totalCost": 0.0, "uniqueUsers": 0, "popularUseCases": []}


def test_unknown_model_is_model_not_found(client_for):
    assert_error(client_for("viewer").get(f"{API}/models/00000000-0000-0000-0000-000000000000"), 404, "MODEL_NOT_FOUND")
    assert_error(client_for("viewer").get(f"{API}/models/not-a-uuid"), 404, "MODEL_NOT_FOUND")
    assert_error(client_for("admin").delete(f"{API}/models/not-a-uuid"), 404, "MODEL_NOT_FOUND")


def test_patch_records_governance_and_keeps_identity(client_for, model):
    client = client_for("manager")
    response = client.patch(
        f"{API}/models/{model.pk}", {"status": "deprecated", "securityLevel": "restricted"}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["model"]["status"] == "deprecated"
    events = {e.field: e for e in GovernanceEvent.objects.filter(model=model)}
    assert events["status"].from_value == "active" and events["status"].to_value == "deprecated"
    assert events["status"].actor_username == "manager"
    assert events["securityLevel"].to_value == "restricted"
    # a no-op change records nothing
    client.patch(f"{API}/models/{model.pk}", {"status": "deprecated"}, format="json")
    assert GovernanceEvent.objects.filter(model=model, field="status").count() == 1

    error = assert_error(
        client.patch(f"{API}/models/{model.pk}", {"name": "renamed"}, format="json"), 400, "INVALID_REQUEST"
    )
    assert "name" in error["details"]["fields"]
    patched = client.patch(f"{API}/models/{model.pk}", {"baselineMetrics": {"avgLatencyMs": 42}}, format="json")
    assert patched.json()["model"]["baselineMetrics"]["avgLatencyMs"] == 42.0


def test_put_requires_the_whole_body(client_for, model):
    client = client_for("admin")
    assert_error(
        client.put(f"{API}/models/{model.pk}", {"description": "x"}, format="json"), 400, "MISSING_REQUIRED_FIELD"
    )
    body = {**VALID, "name": model.name, "version": model.version, "description": "Replaced."}
    response = client.put(f"{API}/models/{model.pk}", body, format="json")
    assert response.status_code == 200 and response.json()["model"]["description"] == "Replaced."


def test_delete_and_delete_refused_while_in_use(client_for, model):
    from deployments.models import Deployment
    from tests.factories import DeploymentFactory

    DeploymentFactory(model=model)  # a dependent the catalog does not know of: Deployment.model is PROTECT
    error = assert_error(client_for("admin").delete(f"{API}/models/{model.pk}"), 409, "INVALID_REQUEST")
    assert error["details"]["dependents"]
    assert ModelRegistry.objects.filter(pk=model.pk).exists()
    assert not GovernanceEvent.objects.filter(field="deleted").exists()  # rolled back with the refusal

    Deployment.objects.filter(model=model).delete()  # (its transitions cascade)
    assert client_for("admin").delete(f"{API}/models/{model.pk}").status_code == 204
    assert not ModelRegistry.objects.filter(pk=model.pk).exists()
    event = GovernanceEvent.objects.get(field="deleted")
    assert event.model is None and event.model_label == "gpt-test@1"


# --- list, filters, sort -----------------------------------------------------------------


@pytest.fixture
def catalog(personas):
    rows = [
        dict(
            name="alpha",
            provider="openai",
            model_type="text",
            capabilities=["chat", "vision"],
            category="general",
            baseline_cost_per_1k_tokens=Decimal("0.002"),
            baseline_avg_latency_ms=800,
            status="active",
        ),
        dict(
            name="bravo",
            provider="anthropic",
            model_type="multimodal",
            capabilities=["chat"],
            category="general",
            baseline_cost_per_1k_tokens=Decimal("0.003"),
            baseline_avg_latency_ms=1200,
            status="active",
        ),
        dict(
            name="charlie",
            provider="google",
            model_type="embedding",
            capabilities=["embeddings"],
            category="embeddings",
            baseline_cost_per_1k_tokens=Decimal("0.00002"),
            baseline_avg_latency_ms=100,
            status="deprecated",
        ),
        dict(
            name="delta",
            provider="custom",
            model_type="code",
            capabilities=["chat", "vision", "code_review"],
            category="developer-tools",
            baseline_cost_per_1k_tokens=Decimal("0.0001"),
            baseline_avg_latency_ms=300,
            status="experimental",
        ),
    ]
    return [ModelRegistryFactory(owner=personas["admin"], **row) for row in rows]


def names(response):
    assert response.status_code == 200, response.json()
    return [m["name"] for m in response.json()["models"]]


def test_list_shape_and_defaults(client_for, catalog):
    body = client_for("viewer").get(f"{API}/models").json()
    assert [m["name"] for m in body["models"]] == ["alpha", "bravo", "charlie", "delta"]
    assert body["pagination"] == {
        "page": 1,
        "limit": 20,
        "total": 4,
        "totalPages": 1,
        "hasNext": False,
        "hasPrev": False,
    }
    assert body["filters"]["applied"] == {"page": 1, "limit": 20, "sortBy": "name", "sortOrder": "asc"}
    assert body["filters"]["available"] == {
        "providers": ["anthropic", "custom", "google", "openai"],
        "modelTypes": ["code", "embedding", "multimodal", "text"],
        "capabilities": ["chat", "code_review", "embeddings", "vision"],
        "categories": ["developer-tools", "embeddings", "general"],
        "statuses": ["active", "deprecated", "experimental"],
    }


@pytest.mark.parametrize(
    "query, expected",
    [
        ("provider=openai&provider=google", ["alpha", "charlie"]),
        ("provider=openai,google", ["alpha", "charlie"]),
        ("provider=openai,google&provider=custom", ["alpha", "charlie", "delta"]),
        ("modelType=code", ["delta"]),
        ("capabilities=chat,vision", ["alpha", "delta"]),
        ("capabilities=vision&capabilities=code_review", ["delta"]),
        ("category=general", ["alpha", "bravo"]),
        ("status=deprecated,experimental", ["charlie", "delta"]),
        ("maxCost=0.002", ["alpha", "charlie", "delta"]),
        ("maxLatency=300", ["charlie", "delta"]),
        ("maxCost=0.002&maxLatency=500&provider=custom", ["delta"]),
        ("minRating=1", []),
        ("sortBy=name&sortOrder=desc", ["delta", "charlie", "bravo", "alpha"]),
        ("sortBy=popularity&sortOrder=asc", ["alpha", "bravo", "charlie", "delta"]),
        ("search=vision", ["alpha", "delta"]),
        ("search=embeddings", ["charlie"]),
        ("search=bravo", ["bravo"]),
    ],
)
def test_list_filters(client_for, catalog, query, expected):
    got = names(client_for("viewer").get(f"{API}/models?{query}"))
    if "sortBy" in query or "search" in query:
        assert got == expected
    else:
        assert sorted(got) == expected


def test_sort_by_created_defaults_to_newest_first(client_for, catalog):
    got = names(client_for("viewer").get(f"{API}/models?sortBy=createdAt"))
    assert got == ["delta", "charlie", "bravo", "alpha"]


def test_applied_echoes_cleaned_filters(client_for, catalog):
    body = client_for("viewer").get(f"{API}/models?provider=openai,google&maxCost=0.5&limit=2&page=2").json()
    applied = body["filters"]["applied"]
    assert applied["provider"] == ["openai", "google"] and applied["maxCost"] == 0.5
    assert applied["page"] == 2 and applied["limit"] == 2
    assert body["pagination"] == {"page": 2, "limit": 2, "total": 2, "totalPages": 1, "hasNext": False, "hasPrev": True}
    assert body["models"] == []


@pytest.mark.parametrize(
    "query, field",
    [
        ("provider=azure", "provider"),
        ("modelType=audio,text", "modelType"),
        ("status=gone", "status"),
        ("sortBy=rating", "sortBy"),
        ("sortOrder=up", "sortOrder"),
        ("maxCost=-1", "maxCost"),
        ("maxCost=cheap", "maxCost"),
        ("minRating=6", "minRating"),
        ("maxLatency=abc", "maxLatency"),
        ("limit=101", "limit"),
        ("limit=0", "limit"),
        ("page=0", "page"),
        ("page=x", "page"),
        ("search=" + "x" * 201, "search"),
        ("provder=openai", "provder"),
        ("capabilities=" + ",".join(str(i) for i in range(51)), "capabilities"),
    ],
)
def test_bad_query_parameters(client_for, catalog, query, field):
    error = assert_error(client_for("viewer").get(f"{API}/models?{query}"), 400, "INVALID_PARAMETER")
    assert field in error["details"]["fields"], error


def test_bad_enum_query_lists_allowed_values(client_for, catalog):
    error = assert_error(client_for("viewer").get(f"{API}/models?provider=azure"), 400, "INVALID_PARAMETER")
    assert error["details"]["allowedValues"]["provider"] == ["openai", "anthropic", "neuroweaver", "google", "custom"]


def test_list_query_count_is_bounded(client_for, personas):
    client = client_for("viewer")
    ModelRegistryFactory.create_batch(5, owner=personas["admin"])
    client.get(f"{API}/models?limit=5")  # warm the facets cache
    with CaptureQueriesContext(connection) as small:
        assert client.get(f"{API}/models?limit=5").status_code == 200
    ModelRegistryFactory.create_batch(95, owner=personas["manager"])
    client.get(f"{API}/models?limit=100")
    with CaptureQueriesContext(connection) as large:
        response = client.get(f"{API}/models?limit=100&search=model&provider=openai")
    assert response.status_code == 200 and len(response.json()["models"]) == 100
    # the user, then count + page (or one windowed query for a relevance search): never more
    assert len(small) <= 3 and len(large) <= 3, ([q["sql"][:80] for q in large], [q["sql"][:80] for q in small])


def test_facets_follow_writes(client_for, catalog, django_capture_on_commit_callbacks):
    client = client_for("admin")
    assert "neuroweaver" not in client.get(f"{API}/models").json()["filters"]["available"]["providers"]
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"{API}/models", {**VALID, "provider": "neuroweaver"}, format="json")
    assert "neuroweaver" in client.get(f"{API}/models").json()["filters"]["available"]["providers"]


def test_applied_for_a_relevance_search(client_for, catalog):
    applied = client_for("viewer").get(f"{API}/models?search=vision").json()["filters"]["applied"]
    assert applied == {"search": "vision", "page": 1, "limit": 20}  # ordered by relevance: no sortBy/sortOrder
