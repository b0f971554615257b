"""The deployments endpoints: shapes, validation, limits, ownership, lifecycle through the API.

Longer than 350 lines on purpose: one endpoint family, case by case (each validation rule,
the state machine's refusals, ownership); splitting by rule would scatter the fixtures they share.
"""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings

from deployments.models import Deployment, DeploymentTransition
from tests.conftest import API, assert_error
from tests.factories import DeploymentFactory, ModelRegistryFactory

pytestmark = pytest.mark.django_db

DEPLOYMENT_KEYS = {
    "id",
    "modelId",
    "modelName",
    "version",
    "environment",
    "status",
    "statusReason",
    "replicas",
    "targetReplicas",
    "endpoint",
    "configuration",
    "owner",
    "createdAt",
    "updatedAt",
    "lastHealthCheck",
}
LIST_ITEM_KEYS = {
    "id",
    "modelId",
    "modelName",
    "version",
    "environment",
    "status",
    "replicas",
    "createdAt",
    "updatedAt",
    "lastHealthCheck",
}


# --- create -----------------------------------------------------------------------------------


def test_create_answers_the_whole_deployment_config(client_for, create_body, model, personas):
    response = client_for("developer").post(f"{API}/deployments", create_body(), format="json")
    assert response.status_code == 201, response.json()
    deployment = response.json()["deployment"]
    assert set(deployment) == DEPLOYMENT_KEYS
    assert deployment["status"] == "creating"
    assert deployment["owner"] == "developer"
    assert deployment["modelId"] == str(model.pk) and deployment["modelName"] == model.name
    assert deployment["endpoint"] == f"http://127.0.0.1:8000/api/v1/modelhub/deployments/{deployment['id']}"
    assert deployment["createdAt"].endswith("Z") and deployment["lastHealthCheck"] is None
    assert deployment["configuration"] == {
        "id": deployment["id"],
        "modelId": str(model.pk),
        "version": model.version,
        "environment": "staging",
        "runtime": {
            "replicas": 2,
            "resources": {"cpu": "500m", "memory": "1Gi"},
            "scaling": {"minReplicas": 1, "maxReplicas": 10, "targetCPUUtilization": 80, "targetMemoryUtilization": 80},
        },
        "parameters": {},
        "networking": {"port": 8080, "timeout": 30, "retries": 3},
        "monitoring": {"enableMetrics": True, "metricsInterval": 60, "enableTracing": False, "logLevel": "info"},
        "security": {
            "authentication": True,
            "authorization": [],
            "rateLimiting": {"requestsPerMinute": 600, "burstLimit": 60},
        },
        "schemaVersion": 2,
    }
    row = Deployment.objects.get(pk=deployment["id"])
    assert row.owner == personas["developer"]
    log = DeploymentTransition.objects.get(deployment=row)
    assert (log.from_status, log.to_status, log.actor, log.reason) == (
        "",
        "creating",
        personas["developer"],
        "Deployment created.",
    )


def test_flat_configuration_maps_to_the_sections(client_for, create_body):
    configuration = {
        "replicas": 3,
        "resources": {"cpu": "2", "memory": "4Gi", "gpu": "nvidia-tesla-t4"},
        "scaling": {"minReplicas": 2, "maxReplicas": 6},
        "temperature": 0.7,
        "maxTokens": 1000,
        "topP": 0.9,
        "topK": 40,
        "frequencyPenalty": -0.5,
        "presencePenalty": 2,
        "stopSequences": ["\n\nHuman:", "###"],
        "port": 9000,
        "host": "llm.internal",
        "path": "/v1/health",
        "timeout": 2.5,
        "retries": 0,
        "enableMetrics": False,
        "metricsInterval": 15,
        "enableTracing": True,
        "logLevel": "warn",
        "authentication": False,
        "authorization": ["team-a"],
        "rateLimiting": {"burstLimit": 5},
    }
    response = client_for("admin").post(f"{API}/deployments", create_body(configuration=configuration), format="json")
    assert response.status_code == 201, response.json()
    config = response.json()["deployment"]["configuration"]
    assert config["runtime"] == {
        "replicas": 3,
        "resources": {"cpu": "2", "memory": "4Gi", "gpu": "nvidia-tesla-t4"},
        "scaling": {"minReplicas": 2, "maxReplicas": 6, "targetCPUUtilization": 80, "targetMemoryUtilization": 80},
    }
    assert config["parameters"] == {
        "temperature": 0.7,
        "maxTokens": 1000,
        "topP": 0.9,
        "topK": 40,
        "frequencyPenalty": -0.5,
        "presencePenalty": 2.0,
        "stopSequences": ["\n\nHuman:", "###"],
    }
    assert config["networking"] == {
        "port": 9000,
        "host": "llm.internal",
        "path": "/v1/health",
        "timeout": 2.5,
        "retries": 0,
    }
    assert config["monitoring"] == {
        "enableMetrics": False,
        "metricsInterval": 15,
        "enableTracing": True,
        "logLevel": "warn",
    }
    assert config["security"] == {
        "authentication": False,
        "authorization": ["team-a"],
        "rateLimiting": {"requestsPerMinute": 600, "burstLimit": 5},
    }


def test_missing_required_fields(client_for, model):
    response = client_for("developer").post(f"{API}/deployments", {"modelId": str(model.pk)}, format="json")
    error = assert_error(response, 400, "MISSING_REQUIRED_FIELD")
    assert set(error["details"]["fields"]) == {"version", "environment", "configuration"}
    body = {
        "modelId": str(model.pk),
        "version": model.version,
        "environment": "staging",
        "configuration": {"replicas": 1},
    }
    error = assert_error(
        client_for("developer").post(f"{API}/deployments", body, format="json"), 400, "MISSING_REQUIRED_FIELD"
    )
    assert set(error["details"]["fields"]) == {"configuration.resources"}


def test_unknown_model_is_model_not_found(client_for, create_body):
    missing = str(uuid.uuid4())
    error = assert_error(
        client_for("developer").post(f"{API}/deployments", create_body(modelId=missing), format="json"),
        404,
        "MODEL_NOT_FOUND",
    )
    assert error["details"] == {"modelId": missing}
    error = assert_error(
        client_for("developer").post(f"{API}/deployments", create_body(modelId="gpt-4"), format="json"),
        400,
        "INVALID_REQUEST",
    )
    assert "modelId" in error["details"]["fields"]


def test_deprecated_model_cannot_be_deployed(client_for, create_body, model):
    model.status = "deprecated"
    model.save()
    error = assert_error(
        client_for("developer").post(f"{API}/deployments", create_body(), format="json"), 400, "INVALID_REQUEST"
    )
    assert error["details"]["fields"] == {"modelId": ["The model is deprecated."]}
    assert not Deployment.objects.exists()


def test_version_must_be_the_models(client_for, create_body):
    error = assert_error(
        client_for("developer").post(f"{API}/deployments", create_body(version="2"), format="json"),
        400,
        "INVALID_REQUEST",
    )
    assert error["details"]["fields"] == {"version": ["Must be the model's version ('1')."]}


@pytest.mark.parametrize(
    "configuration, field",
    [
        ({"resources": {"cpu": "2 cores", "memory": "1Gi"}}, "configuration.resources.cpu"),
        ({"resources": {"cpu": "500M", "memory": "1Gi"}}, "configuration.resources.cpu"),
        ({"resources": {"cpu": "0.0005", "memory": "1Gi"}}, "configuration.resources.cpu"),
        ({"resources": {"cpu": "0", "memory": "1Gi"}}, "configuration.resources.cpu"),
        ({"resources": {"cpu": "257", "memory": "1Gi"}}, "configuration.resources.cpu"),
        ({"resources": {"cpu": 2, "memory": "1Gi"}}, "configuration.resources.cpu"),
        ({"resources": {"cpu": "1", "memory": "512m"}}, "configuration.resources.memory"),
        ({"resources": {"cpu": "1", "memory": "512MB"}}, "configuration.resources.memory"),
        ({"resources": {"cpu": "1", "memory": "1000"}}, "configuration.resources.memory"),
        ({"resources": {"cpu": "1", "memory": "65Ti"}}, "configuration.resources.memory"),
        ({"resources": {"cpu": "1", "memory": "1Gi", "gpu": "0"}}, "configuration.resources.gpu"),
        ({"resources": {"cpu": "1", "memory": "1Gi", "vram": "1"}}, "configuration.resources.vram"),
        ({"replicas": 0}, "configuration.replicas"),
        ({"replicas": "2"}, "configuration.replicas"),
        ({"replicas": 1001}, "configuration.replicas"),
        ({"replicas": 12, "scaling": {"maxReplicas": 10}}, "configuration.replicas"),
        ({"replicas": 1, "scaling": {"minReplicas": 2, "maxReplicas": 4}}, "configuration.replicas"),
        ({"scaling": {"minReplicas": 5, "maxReplicas": 4}}, "configuration.scaling.minReplicas"),
        ({"scaling": {"targetCPUUtilization": 0}}, "configuration.scaling.targetCPUUtilization"),
        ({"scaling": {"targetMemoryUtilization": 101}}, "configuration.scaling.targetMemoryUtilization"),
        ({"temperature": 2.01}, "configuration.temperature"),
        ({"temperature": "0.5"}, "configuration.temperature"),
        ({"topP": 1.5}, "configuration.topP"),
        ({"topK": 0}, "configuration.topK"),
        ({"frequencyPenalty": -2.5}, "configuration.frequencyPenalty"),
        ({"presencePenalty": 3}, "configuration.presencePenalty"),
        ({"maxTokens": 0}, "configuration.maxTokens"),
        ({"maxTokens": 5000}, "configuration.maxTokens"),  # the model's maxTokens is 4096
        ({"stopSequences": ["a"] * 17}, "configuration.stopSequences"),
        ({"stopSequences": [1]}, "configuration.stopSequences[0]"),
        ({"stopSequences": [""]}, "configuration.stopSequences[0]"),
        ({"stopSequences": ["x" * 201]}, "configuration.stopSequences[0]"),
        ({"port": 0}, "configuration.port"),
        ({"port": 65536}, "configuration.port"),
        ({"host": "not a host"}, "configuration.host"),
        ({"host": "::zz"}, "configuration.host"),
        ({"path": "health"}, "configuration.path"),
        ({"timeout": 0}, "configuration.timeout"),
        ({"timeout": -1}, "configuration.timeout"),
        ({"timeout": 301}, "configuration.timeout"),
        ({"retries": -1}, "configuration.retries"),
        ({"retries": 11}, "configuration.retries"),
        ({"metricsInterval": 0}, "configuration.metricsInterval"),
        ({"enableMetrics": "yes"}, "configuration.enableMetrics"),
        ({"authorization": ["ok", " padded"]}, "configuration.authorization[1]"),
        ({"authorization": [f"team-{i}" for i in range(51)]}, "configuration.authorization"),
        ({"rateLimiting": {"requestsPerMinute": 0}}, "configuration.rateLimiting.requestsPerMinute"),
        ({"rateLimiting": {"burst": 5}}, "configuration.rateLimiting.burst"),
        ({"replica": 2}, "configuration.replica"),
    ],
)
def test_invalid_configuration_names_the_field(client_for, create_body, configuration, field):
    response = client_for("developer").post(
        f"{API}/deployments", create_body(configuration=configuration), format="json"
    )
    error = assert_error(response, 400, "INVALID_REQUEST")
    assert field in error["details"]["fields"], error
    assert not Deployment.objects.exists()


def test_memory_in_millibytes_gets_a_hint(client_for, create_body):
    body = create_body(configuration={"resources": {"cpu": "1", "memory": "512m"}})
    error = assert_error(
        client_for("developer").post(f"{API}/deployments", body, format="json"), 400, "INVALID_REQUEST"
    )
    assert 'did you mean "512Mi"' in error["details"]["fields"]["configuration.resources.memory"][0]


def test_enums_list_their_allowed_values(client_for, create_body):
    body = create_body(environment="prod", configuration={"logLevel": "warning"})
    error = assert_error(
        client_for("developer").post(f"{API}/deployments", body, format="json"), 400, "INVALID_REQUEST"
    )
    assert error["details"]["allowedValues"] == {
        "environment": ["development", "staging", "production"],
        "configuration.logLevel": ["debug", "info", "warn", "error"],
    }


def test_nul_characters_are_refused(client_for, create_body):
    for configuration in ({"stopSequences": ["a\x00b"]}, {"authorization": ["a\x00"]}):
        error = assert_error(
            client_for("developer").post(f"{API}/deployments", create_body(configuration=configuration), format="json"),
            400,
            "INVALID_REQUEST",
        )
        assert "NUL" in error["message"]  # refused by the JSON parser, before PostgreSQL could choke on it
    assert not Deployment.objects.exists()


# --- limits ----------------------------------------------------------------------------------


@override_settings(DEPLOYMENTS_MAX_LIVE_PER_MODEL_ENVIRONMENT=2)
def test_limit_per_model_and_environment(client_for, create_body, model):
    client = client_for("developer")
    first = client.post(f"{API}/deployments", create_body(), format="json").json()["deployment"]
    assert client.post(f"{API}/deployments", create_body(), format="json").status_code == 201
    error = assert_error(
        client.post(f"{API}/deployments", create_body(), format="json"), 409, "DEPLOYMENT_LIMIT_EXCEEDED"
    )
    assert error["details"] == {
        "scope": "modelEnvironment",
        "limit": 2,
        "current": 2,
        "modelId": str(model.pk),
        "environment": "staging",
    }
    # another environment has its own count; a stopped deployment no longer counts
    assert client.post(f"{API}/deployments", create_body(environment="production"), format="json").status_code == 201
    assert client.delete(f"{API}/deployments/{first['id']}").status_code == 204
    assert client.post(f"{API}/deployments", create_body(), format="json").status_code == 201


@override_settings(DEPLOYMENTS_MAX_LIVE_PER_USER=1)
def test_limit_per_user(client_for, create_body, personas):
    assert client_for("developer").post(f"{API}/deployments", create_body(), format="json").status_code == 201
    error = assert_error(
        client_for("developer").post(f"{API}/deployments", create_body(environment="production"), format="json"),
        409,
        "DEPLOYMENT_LIMIT_EXCEEDED",
    )
    assert error["details"] == {"scope": "user", "limit": 1, "current": 1}
    # someone else's count is their own
    assert client_for("manager").post(f"{API}/deployments", create_body(), format="json").status_code == 201


# --- list --------------------------------------------------------------------------------------


@pytest.fixture
def fleet(personas):
    alpha = ModelRegistryFactory(name="alpha")
    bravo = ModelRegistryFactory(name="bravo")
    rows = [
        DeploymentFactory(model=bravo, environment="production", status="running"),
        DeploymentFactory(model=alpha, environment="staging", status="failed"),
        DeploymentFactory(model=alpha, environment="production", status="stopped"),
        DeploymentFactory(model=bravo, environment="development", status="creating"),
    ]
    return {"alpha": alpha, "bravo": bravo, "rows": rows}


def test_list_shape_and_default_order(client_for, fleet):
    response = client_for("viewer").get(f"{API}/deployments")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"deployments", "pagination"}
    assert all(set(item) == LIST_ITEM_KEYS for item in body["deployments"])
    assert [d["id"] for d in body["deployments"]] == [str(d.pk) for d in reversed(fleet["rows"])]  # newest first
    assert body["deployments"][0]["modelName"] == "bravo"
    assert body["pagination"] == {
        "page": 1,
        "limit": 20,
        "total": 4,
        "totalPages": 1,
        "hasNext": False,
        "hasPrev": False,
    }


@pytest.mark.parametrize(
    "query, expected",
    [
        ("environment=production", [0, 2]),
        ("environment=production,staging", [0, 1, 2]),
        ("environment=production&environment=development", [0, 2, 3]),
        ("status=running,creating", [0, 3]),
        ("status=failed&environment=staging", [1]),
        ("modelId={alpha}", [1, 2]),
        ("modelId={alpha}&status=stopped", [2]),
    ],
)
def test_list_filters(client_for, fleet, query, expected):
    query = query.format(alpha=fleet["alpha"].pk)
    ids = {d["id"] for d in client_for("analyst").get(f"{API}/deployments?{query}").json()["deployments"]}
    assert ids == {str(fleet["rows"][i].pk) for i in expected}


def test_list_sort_and_pages(client_for, fleet):
    client = client_for("viewer")
    by_name = client.get(f"{API}/deployments?sortBy=name").json()["deployments"]
    assert [d["modelName"] for d in by_name] == ["alpha", "alpha", "bravo", "bravo"]
    by_name_desc = client.get(f"{API}/deployments?sortBy=name&sortOrder=desc").json()["deployments"]
    assert [d["modelName"] for d in by_name_desc] == ["bravo", "bravo", "alpha", "alpha"]
    oldest = client.get(f"{API}/deployments?sortBy=createdAt&sortOrder=asc").json()["deployments"]
    assert [d["id"] for d in oldest] == [str(d.pk) for d in fleet["rows"]]
    page = client.get(f"{API}/deployments?limit=3&page=2").json()
    assert len(page["deployments"]) == 1 and page["pagination"]["hasPrev"] and page["pagination"]["totalPages"] == 2


@pytest.mark.parametrize(
    "query, field",
    [
        ("environment=prod", "environment"),
        ("status=deleted", "status"),
        ("modelId=gpt-4", "modelId"),
        ("sortBy=popularity", "sortBy"),
        ("sortOrder=up", "sortOrder"),
        ("limit=101", "limit"),
        ("owner=me", "owner"),
        ("modelId=", "modelId"),
    ],
)
def test_bad_list_parameters(client_for, fleet, query, field):
    error = assert_error(client_for("viewer").get(f"{API}/deployments?{query}"), 400, "INVALID_PARAMETER")
    assert field in error["details"]["fields"]


def test_bad_enum_parameter_lists_allowed_values(client_for, fleet):
    error = assert_error(client_for("viewer").get(f"{API}/deployments?status=up"), 400, "INVALID_PARAMETER")
    assert error["details"]["allowedValues"] == {"status": ["creating", "running", "scaling", "failed", "stopped"]}


def test_list_query_count_is_bounded(client_for, personas):
    client = client_for("viewer")
    DeploymentFactory.create_batch(2)
    client.get(f"{API}/deployments")  # warm-up: per-process caches (limits, content types) fill on a first request
    with CaptureQueriesContext(connection) as few:
        assert client.get(f"{API}/deployments").status_code == 200
    DeploymentFactory.create_batch(20)
    with CaptureQueriesContext(connection) as many:
        assert len(client.get(f"{API}/deployments?limit=50").json()["deployments"]) == 22
    assert len(many) == len(few) <= 4


# --- retrieve --------------------------------------------------------------------------------------


def test_retrieve_and_not_found(client_for, mine):
    response = client_for("viewer").get(f"{API}/deployments/{mine.pk}")
    assert response.status_code == 200 and set(response.json()["deployment"]) == DEPLOYMENT_KEYS
    assert_error(client_for("viewer").get(f"{API}/deployments/{uuid.uuid4()}"), 404, "DEPLOYMENT_NOT_FOUND")
    assert_error(client_for("viewer").get(f"{API}/deployments/not-a-uuid"), 404, "DEPLOYMENT_NOT_FOUND")


# --- update --------------------------------------------------------------------------------------


def test_patch_merges_and_null_unsets(client_for, mine):
    client = client_for("developer")
    url = f"{API}/deployments/{mine.pk}"
    response = client.patch(
        url, {"configuration": {"temperature": 0.3, "scaling": {"maxReplicas": 4}, "host": "svc"}}, format="json"
    )
    assert response.status_code == 200, response.json()
    config = response.json()["deployment"]["configuration"]
    assert config["parameters"] == {"temperature": 0.3}
    assert config["runtime"]["scaling"] == {
        "minReplicas": 1,
        "maxReplicas": 4,
        "targetCPUUtilization": 80,
        "targetMemoryUtilization": 80,
    }
    assert config["networking"]["host"] == "svc" and config["runtime"]["resources"] == {"cpu": "500m", "memory": "1Gi"}

    response = client.patch(
        url, {"configuration": {"temperature": None, "host": None, "resources": {"memory": "2Gi"}}}, format="json"
    )
    config = response.json()["deployment"]["configuration"]
    assert config["parameters"] == {} and "host" not in config["networking"]
    assert config["runtime"]["resources"] == {"cpu": "500m", "memory": "2Gi"}
    assert client.patch(url, {}, format="json").status_code == 200  # nothing to change


def test_patch_checks_the_merged_configuration(client_for, mine):
    url = f"{API}/deployments/{mine.pk}"
    error = assert_error(
        client_for("developer").patch(url, {"configuration": {"scaling": {"maxReplicas": 1}}}, format="json"),
        400,
        "INVALID_REQUEST",
    )
    assert "configuration.replicas" in error["details"]["fields"]  # replicas 2 > maxReplicas 1
    error = assert_error(
        client_for("developer").patch(url, {"configuration": {"port": None}}, format="json"), 400, "INVALID_REQUEST"
    )
    assert "configuration.port" in error["details"]["fields"]


def test_replicas_change_only_by_scaling(client_for, mine):
    url = f"{API}/deployments/{mine.pk}"
    error = assert_error(
        client_for("developer").patch(url, {"configuration": {"replicas": 3}}, format="json"), 400, "INVALID_REQUEST"
    )
    assert "scale" in error["details"]["fields"]["configuration.replicas"][0]
    assert client_for("developer").patch(url, {"configuration": {"replicas": 2}}, format="json").status_code == 200


def test_put_replaces_the_configuration(client_for, mine):
    url = f"{API}/deployments/{mine.pk}"
    client_for("developer").patch(url, {"configuration": {"temperature": 0.3, "retries": 7}}, format="json")
    body = {"configuration": {"replicas": 2, "resources": {"cpu": "1", "memory": "1G"}, "topP": 0.5}}
    response = client_for("developer").put(url, body, format="json")
    assert response.status_code == 200, response.json()
    config = response.json()["deployment"]["configuration"]
    assert config["parameters"] == {"topP": 0.5}  # temperature gone: PUT replaces
    assert config["networking"]["retries"] == 3  # back to the default
    error = assert_error(
        client_for("developer").put(url, {"configuration": {"topP": 0.5}}, format="json"), 400, "MISSING_REQUIRED_FIELD"
    )
    assert set(error["details"]["fields"]) == {"configuration.replicas", "configuration.resources"}
    error = assert_error(
        client_for("developer").put(url, {**body, "environment": "production"}, format="json"), 400, "INVALID_REQUEST"
    )
    assert error["details"]["fields"] == {"environment": ["Unknown field."]}


@pytest.mark.parametrize("status", ["stopped", "failed"])
def test_a_finished_deployment_cannot_be_reconfigured(client_for, mine, status):
    Deployment.objects.filter(pk=mine.pk).update(status=status)
    error = assert_error(
        client_for("developer").patch(f"{API}/deployments/{mine.pk}", {"configuration": {"topK": 5}}, format="json"),
        409,
        "INVALID_REQUEST",
    )
    assert error["details"]["currentStatus"] == status


# --- delete ---------------------------------------------------------------------------------------


def test_delete_stops_and_keeps_history_idempotently(client_for, mine, personas):
    url = f"{API}/deployments/{mine.pk}"
    assert client_for("developer").delete(url).status_code == 204
    mine.refresh_from_db()
    assert mine.status == "stopped"
    assert client_for("developer").delete(url).status_code == 204  # again: same answer, nothing changes
    logs = list(DeploymentTransition.objects.filter(deployment=mine))
    assert [(t.from_status, t.to_status, t.actor) for t in logs] == [("running", "stopped", personas["developer"])]
    assert client_for("viewer").get(url).json()["deployment"]["status"] == "stopped"  # kept for history


def test_model_with_deployments_cannot_be_deleted(client_for, mine, model):
    error = assert_error(client_for("admin").delete(f"{API}/models/{model.pk}"), 409, "INVALID_REQUEST")
    assert f"deployments.Deployment:{mine.pk}" in error["details"]["dependents"]


# --- scale -----------------------------------------------------------------------------------------


def test_scale_goes_through_scaling_to_running(client_for, mine, django_capture_on_commit_callbacks):
    url = f"{API}/deployments/{mine.pk}/scale"
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = client_for("developer").post(url, {"replicas": 5, "reason": "launch day"}, format="json")
    assert response.status_code == 202, response.json()
    deployment = response.json()["deployment"]
    assert (deployment["status"], deployment["replicas"], deployment["targetReplicas"]) == ("scaling", 2, 5)
    assert deployment["statusReason"] == "launch day"
    for callback in queued:
        callback()  # the scaling task (and the realtime event), as after commit
    after = client_for("viewer").get(f"{API}/deployments/{mine.pk}").json()["deployment"]
    assert (after["status"], after["replicas"], after["targetReplicas"]) == ("running", 5, None)
    assert after["configuration"]["runtime"]["replicas"] == 5 and after["lastHealthCheck"]
    assert [(t.from_status, t.to_status, t.replicas) for t in mine.transitions.order_by("created_at", "id")] == [
        ("running", "scaling", 5),
        ("scaling", "running", 5),
    ]


def test_scale_to_the_same_replicas_changes_nothing(client_for, mine):
    response = client_for("developer").post(f"{API}/deployments/{mine.pk}/scale", {"replicas": 2}, format="json")
    assert response.status_code == 200 and response.json()["deployment"]["status"] == "running"
    assert not mine.transitions.exists()


def test_scale_within_bounds(client_for, mine):
    url = f"{API}/deployments/{mine.pk}/scale"
    error = assert_error(client_for("developer").post(url, {"replicas": 11}, format="json"), 400, "INVALID_REQUEST")
    assert error["details"]["fields"] == {"replicas": ["Must be between 1 and 10."]}
    assert_error(client_for("developer").post(url, {"replicas": "3"}, format="json"), 400, "INVALID_REQUEST")
    assert_error(client_for("developer").post(url, {}, format="json"), 400, "MISSING_REQUIRED_FIELD")
    assert_error(client_for("developer").post(url, {"replicas": 3, "why": "x"}, format="json"), 400, "INVALID_REQUEST")


@pytest.mark.parametrize("status", ["creating", "scaling", "failed", "stopped"])
def test_scale_only_a_running_deployment(client_for, mine, status):
    Deployment.objects.filter(pk=mine.pk).update(status=status, target_replicas=3 if status == "scaling" else None)
    error = assert_error(
        client_for("developer").post(f"{API}/deployments/{mine.pk}/scale", {"replicas": 4}, format="json"),
        409,
        "INVALID_REQUEST",
    )
    assert error["details"]["currentStatus"] == status
    assert error["details"]["requestedStatus"] == "scaling"


# --- ownership ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, suffix, body",
    [
        ("patch", "", {"configuration": {"topK": 3}}),
        ("put", "", {"configuration": {"replicas": 2, "resources": {"cpu": "1", "memory": "1Gi"}}}),
        ("delete", "", None),
        ("post", "/scale", {"replicas": 3}),
    ],
)
def test_developers_change_only_their_own(client_for, mine, theirs, method, suffix, body):
    def call(who, target):
        client = client_for(who)
        url = f"{API}/deployments/{target.pk}{suffix}"
        return getattr(client, method)(url, body, format="json") if body else getattr(client, method)(url)

    assert_error(call("developer", theirs), 403, "FORBIDDEN")
    assert_error(call("outsider", mine), 403, "FORBIDDEN")
    assert call("developer", mine).status_code in (200, 202, 204)
    also_mine = DeploymentFactory(model=mine.model, owner=mine.owner, replicas=2)
    assert call("manager", also_mine).status_code in (200, 202, 204)  # managers act on everyone's
    theirs.refresh_from_db()
    assert not theirs.transitions.exists()


@pytest.mark.parametrize("role", ["analyst", "viewer"])
def test_readers_cannot_write(client_for, create_body, mine, role):
    client = client_for(role)
    assert_error(client.post(f"{API}/deployments", create_body(), format="json"), 403, "FORBIDDEN")
    assert_error(client.patch(f"{API}/deployments/{mine.pk}", {"configuration": {}}, format="json"), 403, "FORBIDDEN")
    assert_error(client.delete(f"{API}/deployments/{mine.pk}"), 403, "FORBIDDEN")
    assert_error(client.post(f"{API}/deployments/{mine.pk}/scale", {"replicas": 3}, format="json"), 403, "FORBIDDEN")
    assert client.get(f"{API}/deployments/{mine.pk}").status_code == 200


def test_anonymous_is_401(db, mine):
    from rest_framework.test import APIClient

    for method, url in [
        ("get", "/deployments"),
        ("get", f"/deployments/{mine.pk}"),
        ("post", "/deployments"),
        ("delete", f"/deployments/{mine.pk}"),
        ("post", f"/deployments/{mine.pk}/scale"),
    ]:
        assert_error(getattr(APIClient(), method)(API + url), 401, "UNAUTHORIZED")


def test_endpoint_follows_public_base_url(client_for, mine):
    with override_settings(PUBLIC_BASE_URL="https://hub.example.com"):
        endpoint = client_for("viewer").get(f"{API}/deployments/{mine.pk}").json()["deployment"]["endpoint"]
    assert endpoint == f"https://hub.example.com/api/v1/modelhub/deployments/{mine.pk}"
