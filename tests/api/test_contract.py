"""Cross-cutting contract: deprecation headers, OpenAPI schema, health, pagination bounds."""

from datetime import UTC, datetime

import pytest
from django.core.management import call_command
from django.test import override_settings
from rest_framework.test import APIClient

from tests.conftest import API, assert_error

pytestmark = pytest.mark.django_db

DEPRECATED = {
    "deprecated_at": datetime(2026, 1, 1, tzinfo=UTC),
    "sunset": datetime(2027, 7, 1, tzinfo=UTC),
    "link": "https://docs.example.com/migrate-to-v2",
}


def test_no_deprecation_headers_by_default(client_for):
    response = client_for("viewer").get(f"{API}/models")
    assert "Deprecation" not in response and "Sunset" not in response


@override_settings(API_DEPRECATIONS={"v1:catalog:model-list": DEPRECATED})
def test_deprecated_route_gets_rfc_headers(client_for, model):
    client = client_for("viewer")
    response = client.get(f"{API}/models")
    assert response["Deprecation"] == f"@{int(DEPRECATED['deprecated_at'].timestamp())}"  # RFC 9745
    assert response["Sunset"] == "Thu, 01 Jul 2027 00:00:00 GMT"  # RFC 8594 HTTP-date
    assert response["Link"] == (
        '<https://docs.example.com/migrate-to-v2>; rel="deprecation"; type="text/html", '
        '<https://docs.example.com/migrate-to-v2>; rel="sunset"; type="text/html"'
    )
    # other routes are untouched
    assert "Deprecation" not in client.get(f"{API}/models/{model.pk}")


@override_settings(API_DEPRECATIONS={"v1": {"deprecated_at": datetime(2026, 1, 1, tzinfo=UTC)}})
def test_deprecated_version_marks_every_route_including_errors(client_for):
    client = client_for("viewer")
    assert client.get(f"{API}/auth/me")["Deprecation"] == "@1767225600"
    assert client.get(f"{API}/models/not-a-uuid")["Deprecation"] == "@1767225600"
    assert "Sunset" not in client.get(f"{API}/auth/me")


def test_openapi_schema_builds_without_warnings(tmp_path):
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    text = target.read_text()
    for needle in (
        "jwtAuth",
        "ErrorResponse",
        "CatalogResponse",
        "ModelDetailResponse",
        "modelType",
        "costPer1kTokens",
        "minRating",
        "sortBy",
        "requestId",
        "totalPages",
    ):
        assert needle in text, needle


def test_schema_and_docs_are_public(db):
    response = APIClient().get(f"{API}/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert f"{API}/models" in paths and f"{API}/models/{{id}}" in paths
    assert "401" in paths[f"{API}/models"]["get"]["responses"]
    assert APIClient().get(f"{API}/docs/").status_code == 200


def test_health_reports_each_service(db):
    response = APIClient().get(f"{API}/health")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "cache", "channelLayer", "broker"}
    for check in body["checks"].values():
        assert check["status"] == "ok" and check["latencyMs"] >= 0


def test_health_is_503_when_a_service_is_down(db, monkeypatch):
    from modelhub.api import health

    def down():
        raise ConnectionError("cache unreachable")

    monkeypatch.setitem(health.CHECKS, "cache", down)
    response = APIClient().get(f"{API}/health")
    assert response.status_code == 503
    assert response.json()["checks"]["cache"]["status"] == "down"
    assert response.json()["status"] == "degraded"


def test_pagination_bounds(client_for, model):
    client = client_for("viewer")
    assert client.get(f"{API}/models?limit=100").status_code == 200
    assert_error(client.get(f"{API}/models?limit=101"), 400, "INVALID_PARAMETER")
    assert_error(client.get(f"{API}/models?page=-1"), 400, "INVALID_PARAMETER")
    assert_error(client.get(f"{API}/models?page=100001"), 400, "INVALID_PARAMETER")
    body = client.get(f"{API}/models?page=50").json()
    assert body["models"] == [] and body["pagination"]["total"] == 1 and body["pagination"]["hasPrev"]
