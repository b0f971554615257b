"""Every role against every endpoint, and the matrix itself against the foundation issue's table.

The expectations here are written out literally (not derived from
``modelhub.accounts.roles``), so a wrong edit of the matrix fails a test.
"""

import pytest

from modelhub.accounts import roles
from tests.conftest import API, assert_error
from tests.factories import DeploymentFactory, ModelRegistryFactory, UserFactory

pytestmark = pytest.mark.django_db

ALL = {"admin", "manager", "developer", "analyst", "viewer", "outsider"}
NOBODY: set[str] = set()

MODEL_BODY = {
    "name": "matrix-model",
    "version": "1",
    "provider": "custom",
    "modelType": "text",
    "capabilities": [],
    "supportedTasks": [],
    "maxTokens": 10,
    "contextWindow": 100,
    "description": "",
    "tags": [],
    "category": "",
    "baselineMetrics": {"avgLatencyMs": 1, "costPer1kTokens": 0, "successRate": 1},
}

OWN = {"admin", "manager", "developer"}  # deployments.update/delete/scale: the developer persona owns {deployment}
DEPLOYMENT_CONFIG = {"replicas": 1, "resources": {"cpu": "100m", "memory": "128Mi"}}

# (method, path template, body, roles allowed, success status)
ENDPOINTS = [
    ("get", "/models", None, ALL, 200),
    ("get", "/models/{model}", None, ALL, 200),
    ("post", "/models", MODEL_BODY, {"admin"}, 201),
    ("put", "/models/{model}", "put-body", {"admin", "manager"}, 200),
    ("patch", "/models/{model}", {"description": "x"}, {"admin", "manager"}, 200),
    ("delete", "/models/{model}", None, {"admin"}, 204),
    ("get", "/auth/me", None, ALL, 200),
    ("post", "/auth/token/verify", "verify-body", ALL, 200),
    ("get", "/users", None, {"admin", "manager"}, 200),
    (
        "post",
        "/users",
        {"username": "someone", "password": "a-long-enough-passphrase", "role": "viewer"},
        {"admin", "manager"},
        201,
    ),
    ("get", "/users/{user}", None, {"admin", "manager"}, 200),
    ("patch", "/users/{user}", {"role": "analyst"}, {"admin", "manager"}, 200),
    ("delete", "/users/{user}", None, {"admin", "manager"}, 204),
    ("get", "/rate-limits", None, ALL, 200),
    ("get", "/rate-limits/users/{user}", None, {"admin"}, 200),
    ("put", "/rate-limits/users/{user}", {"requestsPerMinute": 10}, {"admin"}, 200),
    ("patch", "/rate-limits/users/{user}", {"burstLimit": 10}, {"admin"}, 200),
    ("delete", "/rate-limits/users/{user}", None, {"admin"}, 204),
    ("get", "/deployments", None, ALL, 200),
    ("get", "/deployments/{deployment}", None, ALL, 200),
    ("post", "/deployments", "deployment-body", {"admin", "manager", "developer", "outsider"}, 201),
    ("put", "/deployments/{deployment}", {"configuration": DEPLOYMENT_CONFIG}, OWN, 200),
    ("patch", "/deployments/{deployment}", {"configuration": {"temperature": 0.5}}, OWN, 200),
    ("delete", "/deployments/{deployment}", None, OWN, 204),
    ("post", "/deployments/{deployment}/scale", {"replicas": 2}, OWN, 202),
]

CASES = [(m, p, b, role, s if role in allowed else 403) for m, p, b, allowed, s in ENDPOINTS for role in sorted(ALL)]


@pytest.mark.parametrize("method, template, body, role, expected", CASES, ids=[f"{c[3]}-{c[0]}-{c[1]}" for c in CASES])
def test_role_against_endpoint(client_for, personas, method, template, body, role, expected):
    model = ModelRegistryFactory(owner=personas["admin"])
    target = UserFactory(role="viewer")
    deployment = DeploymentFactory(owner=personas["developer"]) if "{deployment}" in template else None
    path = API + template.format(model=model.pk, user=target.pk, deployment=getattr(deployment, "pk", None))
    if body == "deployment-body":
        body = {
            "modelId": str(model.pk),
            "version": model.version,
            "environment": "staging",
            "configuration": DEPLOYMENT_CONFIG,
        }
    elif body == "put-body":
        body = {**MODEL_BODY, "name": model.name, "version": model.version}
    elif body == "verify-body":
        from rest_framework_simplejwt.tokens import AccessToken

        body = {"token": str(AccessToken.for_user(personas[role]))}
    response = (
        getattr(client_for(role), method)(path, body, format="json")
        if body
        else getattr(client_for(role), method)(path)
    )
    if expected == 403:
        assert_error(response, 403, "FORBIDDEN")
    else:
        assert response.status_code == expected, response.content[:300]


@pytest.mark.parametrize("method, template", [(m, p) for m, p, *_ in ENDPOINTS] + [("post", "/auth/logout")])
def test_anonymous_gets_401_everywhere(db, method, template):
    from rest_framework.test import APIClient

    nil = "00000000-0000-0000-0000-000000000000"
    path = API + template.format(model=nil, user=nil, deployment=nil)
    assert_error(getattr(APIClient(), method)(path, {}, format="json"), 401, "UNAUTHORIZED")


ISSUE_TABLE = """
models.read            yes yes yes yes yes
models.create          yes -   -   -   -
models.update          yes yes -   -   -
models.delete          yes -   -   -   -
models.deploy          yes yes yes -   -
deployments.read       yes yes yes yes yes
deployments.create     yes yes yes -   -
deployments.update     yes yes own -   -
deployments.delete     yes yes own -   -
deployments.scale      yes yes own -   -
experiments.read       yes yes yes yes yes
experiments.create     yes yes yes -   -
experiments.update     yes yes own -   -
experiments.delete     yes yes own -   -
analytics.read         yes yes yes yes -
analytics.ingest       yes yes yes -   -
alerts.acknowledge     yes yes yes -   -
marketplace.read       yes yes yes yes yes
marketplace.purchase   yes yes yes -   -
users.manage           yes non-admin - - -
ratelimits.manage      yes -   -   -   -
"""


def test_matrix_is_the_issue_table():
    words = {"yes": roles.Grant.ALL, "-": roles.Grant.NONE, "own": roles.Grant.OWN, "non-admin": roles.Grant.NON_ADMIN}
    expected = {}
    for line in ISSUE_TABLE.strip().splitlines():
        perm, *grants = line.split()
        expected[perm] = dict(
            zip(["admin", "manager", "developer", "analyst", "viewer"], [words[g] for g in grants], strict=True)
        )
    assert {p: {r.value: g for r, g in row.items()} for p, row in roles.MATRIX.items()} == expected


def test_readme_table_is_generated_from_the_matrix():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert roles.markdown_table() in readme, "run `python manage.py roles_table` and paste it into the README"


class _Obj:
    def __init__(self, owner_id):
        self.owner_id = owner_id


def test_own_only_object_check(personas):
    from types import SimpleNamespace

    from modelhub.api.permissions import RolePermission

    permission = RolePermission()
    view = SimpleNamespace(action="update", permission_map={"update": "deployments.update"}, owner_field="owner")
    developer, outsider, manager = personas["developer"], personas["outsider"], personas["manager"]
    mine = _Obj(developer.pk)
    for user, obj, allowed in [
        (developer, mine, True),
        (outsider, mine, False),
        (manager, mine, True),
        (personas["analyst"], mine, False),
    ]:
        request = SimpleNamespace(user=user, method="PATCH")
        assert (
            permission.has_permission(request, view) and permission.has_object_permission(request, view, obj)
        ) is allowed
    # unmapped actions are closed
    request = SimpleNamespace(user=personas["admin"], method="POST")
    assert not permission.has_permission(request, SimpleNamespace(action="frobnicate", permission_map={}))
