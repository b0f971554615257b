"""Every role against every endpoint, the table against Django's URL resolver, and the matrix itself
against the foundation issue's table.

The expectations here are written out literally (not derived from
``modelhub.roles``), so a wrong edit of the matrix fails a test. A route or method the
resolver knows and the tables do not (or the other way round) fails
``test_every_api_route_and_method_has_an_expectation``: a new endpoint comes with its row.
"""

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from modelhub import roles
from tests.analytics.helpers import event
from tests.conftest import API, assert_error
from tests.costs import matrix as costs_matrix
from tests.experiments import matrix as experiments_matrix
from tests.factories import DeploymentFactory, ModelRegistryFactory, UserFactory
from tests.marketplace import matrix as marketplace_matrix

pytestmark = pytest.mark.django_db

ALL = {"admin", "manager", "developer", "analyst", "viewer", "outsider"}  # outsider: a developer who owns nothing
ADMINS = {"admin"}
MANAGERS = {"admin", "manager"}
DEVELOPERS = {"admin", "manager", "developer", "outsider"}
OWN = {"admin", "manager", "developer"}  # deployments.update/delete/scale: the developer persona owns {deployment}
READERS_BUT_VIEWERS = {"admin", "manager", "developer", "analyst", "outsider"}  # analytics.read

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
DEPLOYMENT_CONFIG = {"replicas": 1, "resources": {"cpu": "100m", "memory": "128Mi"}}

# Every role-checked (method, route): (method, path template, body, roles allowed, success status).
# Everyone else gets 403 FORBIDDEN, anonymous callers 401 UNAUTHORIZED. A body named by a string is
# built per case (it needs the case's objects or the caller's own token).
ENDPOINTS = [
    # auth
    ("get", "/auth/me", None, ALL, 200),
    ("post", "/auth/token/verify", "verify-body", ALL, 200),
    ("post", "/auth/logout", "logout-body", ALL, 204),
    # catalog
    ("get", "/models", None, ALL, 200),
    ("get", "/models/{model}", None, ALL, 200),
    ("post", "/models", MODEL_BODY, ADMINS, 201),
    ("put", "/models/{model}", "put-body", MANAGERS, 200),
    ("patch", "/models/{model}", {"description": "x"}, MANAGERS, 200),
    ("delete", "/models/{model}", None, ADMINS, 204),
    # users
    ("get", "/users", None, MANAGERS, 200),
    (
        "post",
        "/users",
        {"username": "someone", "password": "a-long-enough-passphrase", "role": "viewer"},
        MANAGERS,
        201,
    ),
    ("get", "/users/{user}", None, MANAGERS, 200),
    ("patch", "/users/{user}", {"role": "analyst"}, MANAGERS, 200),
    ("delete", "/users/{user}", None, MANAGERS, 204),
    # rate limits
    ("get", "/rate-limits", None, ALL, 200),
    ("get", "/rate-limits/users/{user}", None, ADMINS, 200),
    ("put", "/rate-limits/users/{user}", {"requestsPerMinute": 10}, ADMINS, 200),
    ("patch", "/rate-limits/users/{user}", {"burstLimit": 10}, ADMINS, 200),
    ("delete", "/rate-limits/users/{user}", None, ADMINS, 204),
    # deployments
    ("get", "/deployments", None, ALL, 200),
    ("get", "/deployments/{deployment}", None, ALL, 200),
    ("post", "/deployments", "deployment-body", DEVELOPERS, 201),
    ("put", "/deployments/{deployment}", {"configuration": DEPLOYMENT_CONFIG}, OWN, 200),
    ("patch", "/deployments/{deployment}", {"configuration": {"temperature": 0.5}}, OWN, 200),
    ("delete", "/deployments/{deployment}", None, OWN, 204),
    ("post", "/deployments/{deployment}/scale", {"replicas": 2}, OWN, 202),
    # analytics
    ("post", "/analytics/events", "events-body", DEVELOPERS, 200),
    ("get", "/analytics/models/{model}/performance", None, READERS_BUT_VIEWERS, 200),
    ("get", "/analytics/dashboard", None, READERS_BUT_VIEWERS, 200),
    ("get", "/analytics/alerts", None, READERS_BUT_VIEWERS, 200),
    ("get", "/analytics/alerts/{alert}", None, READERS_BUT_VIEWERS, 200),
    ("post", "/analytics/alerts/{alert}/acknowledge", None, DEVELOPERS, 200),
    # hub API keys: every role holds keys of its own ({apikey} is the caller's; admins see everyone's,
    # others get 404 for someone else's - tests/gateway/test_api_keys.py)
    ("get", "/api-keys", None, ALL, 200),
    ("post", "/api-keys", {"name": "matrix-key"}, ALL, 201),
    ("get", "/api-keys/{apikey}", None, ALL, 200),
    ("delete", "/api-keys/{apikey}", None, ALL, 204),
    # experiments (issue #11): {experiment} is a running experiment, {draft} a draft, both owned by the
    # developer persona (tests/experiments/matrix.py). promote is forced here (no winner exists), which only an
    # admin may do; tests/experiments/test_results.py promotes a real winner as a developer.
    ("get", "/experiments", None, ALL, 200),
    ("post", "/experiments", "exp-body", DEVELOPERS, 201),
    ("get", "/experiments/{experiment}", None, ALL, 200),
    ("put", "/experiments/{draft}", "exp-body", OWN, 200),
    ("patch", "/experiments/{experiment}", {"description": "x"}, OWN, 200),
    ("delete", "/experiments/{draft}", None, OWN, 204),
    ("post", "/experiments/{draft}/start", None, OWN, 200),
    ("post", "/experiments/{experiment}/stop", {"reason": "matrix"}, OWN, 200),
    ("post", "/experiments/{experiment}/promote", {"force": True, "variant": "cool"}, ADMINS, 200),
    ("get", "/experiments/{experiment}/results", None, ALL, 200),
    ("post", "/experiments/{experiment}/assign", {"userId": "matrix-user"}, DEVELOPERS, 200),
    # costs (issue #12)
    ("get", "/cost/analysis", None, READERS_BUT_VIEWERS, 200),
    ("post", "/cost/authorize", "costs-authorize-body", DEVELOPERS, 200),
    ("delete", "/cost/authorize/{reservation}", None, DEVELOPERS, 204),  # own only: the caller's reservation
    ("get", "/cost/budgets", None, READERS_BUT_VIEWERS, 200),
    ("post", "/cost/budgets", "costs-budget-body", MANAGERS, 201),
    ("get", "/cost/budgets/{budget}", None, READERS_BUT_VIEWERS, 200),
    ("put", "/cost/budgets/{budget}", "costs-budget-body", MANAGERS, 200),
    ("delete", "/cost/budgets/{budget}", None, MANAGERS, 204),
    ("get", "/cost/channels", None, MANAGERS, 200),
    ("post", "/cost/channels", "costs-channel-body", MANAGERS, 201),
    ("get", "/cost/channels/{channel}", None, MANAGERS, 200),
    ("put", "/cost/channels/{channel}", "costs-channel-body", MANAGERS, 200),
    ("delete", "/cost/channels/{channel}", None, MANAGERS, 204),
    ("get", "/cost/notifications", None, READERS_BUT_VIEWERS, 200),
    ("get", "/cost/notifications/{notification}", None, READERS_BUT_VIEWERS, 200),
    # marketplace (issue #13)
    ("get", "/marketplace/models", None, ALL, 200),
    ("get", "/marketplace/models/{listed}", None, ALL, 200),
    ("post", "/marketplace/models/{listed}/purchase", "mkt-purchase-body", DEVELOPERS, 201),
    ("get", "/marketplace/models/{listed}/reviews", None, ALL, 200),
    ("put", "/marketplace/models/{listed}/review", "mkt-review-body", DEVELOPERS, 201),
    ("get", "/marketplace/my-models", None, ALL, 200),
    ("get", "/marketplace/entitlements", None, MANAGERS, 200),
    ("get", "/marketplace/entitlements/{entitlement}", None, ALL, 200),
    ("post", "/marketplace/entitlements/{entitlement}/cancel", None, DEVELOPERS, 200),
    ("post", "/marketplace/entitlements/{pending}/approve", None, MANAGERS, 200),
    ("post", "/marketplace/entitlements/{pending}/reject", None, MANAGERS, 200),
    ("post", "/marketplace/entitlements/{entitlement}/revoke", None, MANAGERS, 200),
    ("get", "/marketplace/purchases", None, ADMINS, 200),
    ("get", "/marketplace/purchases/{purchase}", None, ADMINS, 200),
    ("post", "/marketplace/purchases/{purchase}/refund", None, ADMINS, 200),
    ("get", "/marketplace/listings", None, MANAGERS, 200),
    ("post", "/marketplace/listings", "mkt-listing-body", MANAGERS, 201),
    ("get", "/marketplace/listings/{listing}", None, MANAGERS, 200),
    ("patch", "/marketplace/listings/{listing}", {"summary": "Now with more context."}, MANAGERS, 200),
    ("post", "/marketplace/listings/{listing}/publish", None, MANAGERS, 200),
    ("post", "/marketplace/listings/{listing}/delist", None, MANAGERS, 200),
    ("post", "/marketplace/listings/{listing}/terms", "mkt-terms-body", MANAGERS, 201),
    ("post", "/marketplace/listings/{listing}/plans", "mkt-plan-body", MANAGERS, 201),
]

# Routes no role is checked on: (method, path, status for an anonymous caller, why).
NOT_ROLE_CHECKED = [
    ("get", "/health", 200, "public: load balancers and the compose health check call it without a token"),
    ("get", "/schema/", 200, "public: the OpenAPI document"),
    ("get", "/docs/", 200, "public: Swagger UI (its assets are served locally)"),
    ("post", "/auth/token", 400, "public: where a token comes from (username + password; 400 without them)"),
    ("post", "/auth/token/refresh", 400, "public: the refresh token in the body is the credential"),
]

# Methods the resolver's views answer on every route that are not an endpoint of their own.
EXEMPT_METHODS = {
    "options": "DRF's metadata answer, on every view; no data, the same for every role",
    "head": "Django and DRF answer it with the GET handler, so the GET row covers it",
}

CASES = [(m, p, b, role, s if role in allowed else 403) for m, p, b, allowed, s in ENDPOINTS for role in sorted(ALL)]


def _alert(model):
    from analytics.models import Alert

    now = timezone.now()
    return Alert.objects.create(
        type="error_rate",
        severity="warning",
        model=model,
        message="m",
        metric_value=0.1,
        threshold=0.05,
        opened_at=now,
        last_checked_at=now,
    )


def _api_key(owner):
    from gateway.services import api_key_create

    return api_key_create(owner=owner, name="matrix")[0]


def _body(body, *, model, caller):
    from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

    if body == "deployment-body":
        return {
            "modelId": str(model.pk),
            "version": model.version,
            "environment": "staging",
            "configuration": DEPLOYMENT_CONFIG,
        }
    if body == "put-body":
        return {**MODEL_BODY, "name": model.name, "version": model.version}
    if body == "verify-body":
        return {"token": str(AccessToken.for_user(caller))}
    if body == "logout-body":
        return {"refresh": str(RefreshToken.for_user(caller))}
    if body == "events-body":
        return {"events": [event(model)]}
    return body


@pytest.mark.parametrize("method, template, body, role, expected", CASES, ids=[f"{c[3]}-{c[0]}-{c[1]}" for c in CASES])
def test_role_against_endpoint(client_for, personas, method, template, body, role, expected):
    model = ModelRegistryFactory(owner=personas["admin"])
    target = UserFactory(role="viewer")
    deployment = DeploymentFactory(owner=personas["developer"]) if "{deployment}" in template else None
    alert = _alert(model) if "{alert}" in template else None
    key = _api_key(personas[role]) if "{apikey}" in template else None
    market = marketplace_matrix.objects(template, personas, role)
    path = API + template.format(
        model=model.pk,
        user=target.pk,
        deployment=getattr(deployment, "pk", None),
        alert=getattr(alert, "pk", None),
        apikey=getattr(key, "pk", None),
        **market,
        **costs_matrix.objects(template, personas, role),
        **experiments_matrix.objects(template, personas, model),
    )
    body = _body(body, model=model, caller=personas[role])
    if body == "mkt-purchase-body":
        body = marketplace_matrix.purchase_request(template, market)
    elif isinstance(body, str) and body.startswith("mkt-"):
        body = marketplace_matrix.body(body, model=model, caller=personas[role])
    elif isinstance(body, str) and body.startswith("costs-"):
        body = costs_matrix.body(body, model=model, caller=personas[role])
    elif isinstance(body, str) and body.startswith("exp-"):
        body = experiments_matrix.body(body, model=model, caller=personas[role])
    headers = marketplace_matrix.headers(template)
    response = (
        getattr(client_for(role), method)(path, body, format="json", **headers)
        if body
        else getattr(client_for(role), method)(path, **headers)
    )
    if expected == 403:
        assert_error(response, 403, "FORBIDDEN")
    else:
        assert response.status_code == expected, response.content[:300]


@pytest.mark.parametrize("method, template", [(m, p) for m, p, *_ in ENDPOINTS])
def test_anonymous_gets_401_everywhere(db, method, template):
    from rest_framework.test import APIClient

    nil = "00000000-0000-0000-0000-000000000000"
    path = API + template.format(
        model=nil,
        user=nil,
        deployment=nil,
        alert=nil,
        apikey=nil,
        **dict.fromkeys(marketplace_matrix.PLACEHOLDERS, nil),
        **dict.fromkeys(costs_matrix.PLACEHOLDERS, nil),
        **dict.fromkeys(experiments_matrix.PLACEHOLDERS, nil),
    )
    assert_error(getattr(APIClient(), method)(path, {}, format="json"), 401, "UNAUTHORIZED")


@pytest.mark.parametrize(
    "method, path, status, reason", NOT_ROLE_CHECKED, ids=[f"{m}-{p}" for m, p, *_ in NOT_ROLE_CHECKED]
)
def test_routes_without_a_role_check_answer_anonymous_callers(db, method, path, status, reason):
    from rest_framework.test import APIClient

    client = APIClient()
    response = client.get(API + path) if method == "get" else getattr(client, method)(API + path, {}, format="json")
    assert response.status_code == status, (reason, response.status_code, response.content[:300])


# --- the tables against Django's URL resolver --------------------------------------------------------

PREFIX = API.lstrip("/") + "/"


def _patterns(resolver: URLResolver, prefix: str = ""):
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            yield from _patterns(pattern, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern


def _normalise(route: str) -> str:
    """``^users/(?P<pk>[^/.]+)$`` (a router's regex), ``users/<str:user_id>`` (a path) and
    ``/users/{user}`` (this table) all become ``/users/{}``."""
    route = re.sub(r"\(\?P<\w+>[^)]*\)|<(?:\w+:)?\w+>|\{\w+\}", "{}", route)
    return "/" + route.replace("^", "").replace("$", "").lstrip("/")


def _view_methods(pattern: URLPattern) -> set[str]:
    """The HTTP methods a route answers: a router's method -> action map for a viewset, the
    handlers an APIView implements; either way only those ``http_method_names`` lets through."""
    view = pattern.callback
    cls = getattr(view, "cls", None) or view.view_class
    allowed = set(cls.http_method_names)
    actions = getattr(view, "actions", None)
    if actions is not None:
        return set(actions) & allowed
    return {method for method in allowed if hasattr(cls, method)}


def resolved_api_routes() -> set[tuple[str, str]]:
    routes = set()
    for route, pattern in _patterns(get_resolver()):
        if route.startswith(PREFIX):
            normalised = _normalise(route[len(PREFIX) :])
            routes |= {(method, normalised) for method in _view_methods(pattern) - set(EXEMPT_METHODS)}
    return routes


def test_every_api_route_and_method_has_an_expectation():
    expected = [(m, _normalise(p)) for m, p, *_ in ENDPOINTS] + [(m, _normalise(p)) for m, p, *_ in NOT_ROLE_CHECKED]
    assert len(expected) == len(set(expected)), "a (method, route) has two rows"
    resolved = resolved_api_routes()
    assert {route for _, route in resolved} >= {"/models", "/users/{}", "/analytics/alerts/{}/acknowledge"}
    missing = resolved - set(expected)
    stale = set(expected) - resolved
    assert not missing, f"routes without a row in ENDPOINTS or NOT_ROLE_CHECKED: {sorted(missing)}"
    assert not stale, f"rows for routes or methods that no longer resolve: {sorted(stale)}"


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
deployments.invoke     yes yes yes -   -
experiments.read       yes yes yes yes yes
experiments.create     yes yes yes -   -
experiments.update     yes yes own -   -
experiments.delete     yes yes own -   -
analytics.read         yes yes yes yes -
analytics.ingest       yes yes yes -   -
alerts.acknowledge     yes yes yes -   -
marketplace.read       yes yes yes yes yes
marketplace.purchase   yes yes yes -   -
marketplace.manage     yes yes -   -   -
marketplace.approve    yes yes -   -   -
marketplace.refund     yes -   -   -   -
costs.read             yes yes yes yes -
costs.authorize        yes yes yes -   -
budgets.manage         yes yes -   -   -
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
