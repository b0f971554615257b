"""Schemathesis over the project's own OpenAPI schema: every operation, every role, real tokens.

Checks: no 5xx; every status code is documented; every body - error envelopes
included - matches the schema documented for its status; content types match;
schema-violating input is rejected with a 4xx; and, on the operations listed in
``POSITIVE_DATA_OPERATIONS``, schema-valid input is accepted (2xx, or 401/403 for
the roles that may not call it). A failure it finds is fixed and the example stays
here (``tests/api/test_errors.py`` keeps the regressions). Bounded by
``FUZZ_EXAMPLES`` examples per operation and role (CI: a few minutes).
"""

from __future__ import annotations

import json
import os

import pytest
import schemathesis
from django.db import transaction
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import PositiveDataAcceptanceConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from modelhub.wsgi import application
from tests.conftest import bearer

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "4"))
# In CI the examples are derived from the test itself (same inputs every run), so a red build
# means a regression, not a lucky draw; locally every run explores new inputs.
DERANDOMIZE = os.environ.get("CI", "").lower() == "true" or os.environ.get("FUZZ_DERANDOMIZE") == "1"
ROLES = ["admin", "manager", "developer", "analyst", "viewer", None]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
pytestmark = pytest.mark.slow

# Operations where a schema-valid request can only be refused for the caller's role: reads whose
# parameters are all syntactic (enums, bounded numbers and lists, UUIDs, no ids that must exist).
# On these, schemathesis's positive-data check joins the run and allows only 2xx, 401 (anonymous)
# and 403 (a role without the permission); its default would also let 404 and 409 pass.
POSITIVE_DATA_OPERATIONS = {
    "GET /api/v1/modelhub/auth/me",
    "GET /api/v1/modelhub/rate-limits",
    "GET /api/v1/modelhub/deployments",
    "GET /api/v1/modelhub/analytics/alerts",
    "GET /api/v1/modelhub/analytics/dashboard",
    "GET /api/v1/modelhub/models",
    "GET /api/v1/modelhub/users",
    "GET /api/v1/modelhub/api-keys",
    "GET /api/v1/modelhub/cost/budgets",
    "GET /api/v1/modelhub/cost/channels",
    "GET /api/v1/modelhub/cost/notifications",
    "GET /api/v1/modelhub/marketplace/models",
    "GET /api/v1/modelhub/marketplace/my-models",
    "GET /api/v1/modelhub/marketplace/entitlements",
    "GET /api/v1/modelhub/marketplace/listings",
    "GET /api/v1/modelhub/marketplace/purchases",
    "GET /api/v1/modelhub/experiments",
}
# Every other operation, and why a schema-valid request to it may be refused by design.
POSITIVE_DATA_EXCLUDED = {
    "GET /api/v1/modelhub/health": "503 when a dependency is down, whatever the request",
    "GET /api/v1/modelhub/models/{id}": "404 for a well-formed id no model has",
    "GET /api/v1/modelhub/deployments/{id}": "404 for a well-formed id no deployment has",
    "GET /api/v1/modelhub/users/{id}": "404 for a well-formed id no user has",
    "GET /api/v1/modelhub/analytics/alerts/{id}": "404 for a well-formed id no alert has",
    "GET /api/v1/modelhub/rate-limits/users/{user_id}": "404 for a user that does not exist",
    "GET /api/v1/modelhub/analytics/models/{model_id}/performance": "404 for an unknown model; from/to must be "
    "ordered and within retention and the point budget (rules across parameters)",
    "POST /api/v1/modelhub/auth/token": "401 for credentials that match no user",
    "POST /api/v1/modelhub/auth/token/refresh": "401 for a refresh token that is not one we issued",
    "POST /api/v1/modelhub/auth/token/verify": "401 for a token that is not one we issued",
    "POST /api/v1/modelhub/auth/logout": "400 for a refresh token we did not issue; 403 for another user's",
    "POST /api/v1/modelhub/models": "409 when (name, version) is taken; maxTokens <= contextWindow across fields",
    "PUT /api/v1/modelhub/models/{id}": "404 for an unknown id; 409 on a (name, version) clash",
    "PATCH /api/v1/modelhub/models/{id}": "404 for an unknown id; cross-field rules on the merged model",
    "DELETE /api/v1/modelhub/models/{id}": "404 for an unknown id; 409 while deployments reference it",
    "POST /api/v1/modelhub/deployments": "404 for an unknown modelId; 409 at the live-deployment limits; "
    "version must equal the model's",
    "PUT /api/v1/modelhub/deployments/{id}": "404 for an unknown id; 409 once failed or stopped",
    "PATCH /api/v1/modelhub/deployments/{id}": "404 for an unknown id; 409 once failed or stopped; replicas "
    "may not change here",
    "DELETE /api/v1/modelhub/deployments/{id}": "404 for an unknown id",
    "POST /api/v1/modelhub/deployments/{id}/scale": "404 for an unknown id; 409 unless it is running",
    "POST /api/v1/modelhub/users": "409 when the username is taken; 400 for a weak password; 403 for a manager "
    "creating an admin",
    "PATCH /api/v1/modelhub/users/{id}": "404 for an unknown id; 403 for changing your own role",
    "DELETE /api/v1/modelhub/users/{id}": "404 for an unknown id; 403 for deactivating yourself",
    "PUT /api/v1/modelhub/rate-limits/users/{user_id}": "404 for a user that does not exist",
    "PATCH /api/v1/modelhub/rate-limits/users/{user_id}": "404 for a user that does not exist",
    "DELETE /api/v1/modelhub/rate-limits/users/{user_id}": "404 for a user that does not exist",
    "POST /api/v1/modelhub/analytics/events": "per-event 404s (unknown model or deployment) and timestamps "
    "outside retention or clock skew",
    "POST /api/v1/modelhub/analytics/alerts/{id}/acknowledge": "404 for an unknown id; 409 once resolved",
    "POST /api/v1/modelhub/api-keys": "404 for an unknown deploymentIds entry; 409 at 100 unrevoked keys; "
    "expiresAt must be in the future and at most a year ahead; name may not be blank after trimming",
    "GET /api/v1/modelhub/api-keys/{id}": "404 for a well-formed id no key of the caller's has",
    "DELETE /api/v1/modelhub/api-keys/{id}": "404 for a well-formed id no key of the caller's has",
    "GET /api/v1/modelhub/cost/analysis": "from must be before to and at most 366 days apart",
    "POST /api/v1/modelhub/cost/authorize": "404 for a well-formed modelId no model has",
    "DELETE /api/v1/modelhub/cost/authorize/{reservation_id}": "404 for an id no reservation of the caller has",
    "POST /api/v1/modelhub/cost/budgets": "404 for unknown categories.models / rerouteTo, 400 for unknown channels; "
    "rerouteTo only with action reroute, throttleFactor only with throttle; 409 at 100 budgets",
    "GET /api/v1/modelhub/cost/budgets/{id}": "404 for a well-formed id no budget has",
    "PUT /api/v1/modelhub/cost/budgets/{id}": "404 for a well-formed id no budget has",
    "DELETE /api/v1/modelhub/cost/budgets/{id}": "404 for a well-formed id no budget has",
    "POST /api/v1/modelhub/cost/channels": "target must be an email address or an http(s) URL by type; webhooks need "
    "a whsec_ secret, other types none",
    "GET /api/v1/modelhub/cost/channels/{id}": "404 for a well-formed id no channel has",
    "PUT /api/v1/modelhub/cost/channels/{id}": "404 for a well-formed id no channel has",
    "DELETE /api/v1/modelhub/cost/channels/{id}": "404 for a well-formed id no channel has; 409 while a budget uses it",
    "GET /api/v1/modelhub/cost/notifications/{id}": "404 for a well-formed id no notification has",
    "GET /api/v1/modelhub/marketplace/models/{id}": "404 LISTING_NOT_FOUND for a well-formed id no published listing has",
    "GET /api/v1/modelhub/marketplace/models/{id}/reviews": "404 LISTING_NOT_FOUND for a model without a listing",
    "POST /api/v1/modelhub/marketplace/models/{id}/purchase": "404 for an unlisted model; 409 for a terms version or "
    "price that is not the current one, or an entitlement already held; 422 for a reused Idempotency-Key",
    "PUT /api/v1/modelhub/marketplace/models/{id}/review": "404 for an unlisted model; 403 ENTITLEMENT_REQUIRED "
    "unless the caller holds or held an entitlement",
    "GET /api/v1/modelhub/marketplace/entitlements/{id}": "404 for a well-formed id no entitlement (of the caller's) has",
    "POST /api/v1/modelhub/marketplace/entitlements/{id}/cancel": "404 for an id that is not the caller's entitlement",
    "POST /api/v1/modelhub/marketplace/entitlements/{id}/approve": "404 for an unknown id; 409 unless it is pending",
    "POST /api/v1/modelhub/marketplace/entitlements/{id}/reject": "404 for an unknown id; 409 unless it is pending",
    "POST /api/v1/modelhub/marketplace/entitlements/{id}/revoke": "404 for an unknown id; 409 once it has ended",
    "GET /api/v1/modelhub/marketplace/purchases/{id}": "404 for a well-formed id no purchase has",
    "POST /api/v1/modelhub/marketplace/purchases/{id}/refund": "404 for a well-formed id no purchase has",
    "POST /api/v1/modelhub/marketplace/listings": "404 for a modelId no model has; 409 when the model is listed",
    "GET /api/v1/modelhub/marketplace/listings/{id}": "404 for a well-formed id no listing has",
    "PATCH /api/v1/modelhub/marketplace/listings/{id}": "404 for a well-formed id no listing has",
    "POST /api/v1/modelhub/marketplace/listings/{id}/publish": "404 for an unknown id; 409 without terms or a plan",
    "POST /api/v1/modelhub/marketplace/listings/{id}/delist": "404 for an unknown id; 409 for a draft",
    "POST /api/v1/modelhub/marketplace/listings/{id}/terms": "404 for a well-formed id no listing has",
    "POST /api/v1/modelhub/marketplace/listings/{id}/plans": "404 for an unknown id; a free plan costs 0, a paid one "
    "more; interval only (and always) for subscriptions, unit for usage plans; replacesPlanId must be an active plan",
    # experiments (issue #11)
    "POST /api/v1/modelhub/experiments": "404 for an unknown modelId or deploymentId; weights must sum to 100, "
    "versions must be the model's, rules must compile, endDate after startDate (rules across fields)",
    "GET /api/v1/modelhub/experiments/{id}": "404 for a well-formed id no experiment has",
    "PUT /api/v1/modelhub/experiments/{id}": "404 for an unknown id; 409 once finished or for a change a running "
    "experiment may not make; the cross-field rules of POST",
    "PATCH /api/v1/modelhub/experiments/{id}": "404 for an unknown id; 409 as for PUT; the rules of POST on the merge",
    "DELETE /api/v1/modelhub/experiments/{id}": "404 for an unknown id; 409 while running",
    "POST /api/v1/modelhub/experiments/{id}/start": "404 for an unknown id; 409 unless a draft before its endDate, "
    "or while another experiment runs on the model",
    "POST /api/v1/modelhub/experiments/{id}/stop": "404 for an unknown id; 409 once finished",
    "POST /api/v1/modelhub/experiments/{id}/promote": "404 for an unknown id; 409 without a winner (force is for "
    "admins: 403 otherwise) or without a live target deployment",
    "GET /api/v1/modelhub/experiments/{id}/results": "404 for an unknown id; 409 for a draft",
    "POST /api/v1/modelhub/experiments/{id}/assign": "404 for a well-formed id no experiment has",
}
ACCEPTED_STATUSES = ["2xx", "401", "403"]


def _openapi() -> dict:
    import django

    django.setup()
    from drf_spectacular.renderers import OpenApiJsonRenderer

    return json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))


schema = schemathesis.openapi.from_dict(_openapi())
schema.config.checks.positive_data_acceptance = PositiveDataAcceptanceConfig(expected_statuses=ACCEPTED_STATUSES)


def _checks(case) -> list:
    if case.operation.label in POSITIVE_DATA_OPERATIONS:
        return [*CHECKS, positive_data_acceptance]
    return CHECKS


def test_every_operation_is_listed_for_the_positive_data_check():
    labels = {operation.label for operation in (result.ok() for result in schema.get_all_operations())}
    assert not POSITIVE_DATA_OPERATIONS & set(POSITIVE_DATA_EXCLUDED)
    assert labels == POSITIVE_DATA_OPERATIONS | set(POSITIVE_DATA_EXCLUDED), "list a new operation in one of the two"


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    """Schemathesis calls the WSGI app directly, not through Django's test client, so it must do what
    the client does: keep request signals from closing the connection that holds the test transaction."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=DERANDOMIZE,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_every_operation_for_every_role(case, personas):
    # Each example starts from the same data, so a failure replays the same way while shrinking.
    savepoint = transaction.savepoint()
    try:
        for role in ROLES:
            headers = {"Authorization": bearer(personas[role])} if role else {}
            case.call_and_validate(app=application, headers=headers, checks=_checks(case))
    finally:
        transaction.savepoint_rollback(savepoint)


# --- Stateful: create -> read -> update -> delete through the links the schema declares ----------

from schemathesis.specs.openapi.checks import ensure_resource_availability, use_after_free  # noqa: E402

STATEFUL_CHECKS = [*CHECKS, use_after_free, ensure_resource_availability]


def _headers_mutated(case) -> bool:
    """A negative case whose invalid part includes the headers (e.g. ``Authorization`` left out on purpose)."""
    from schemathesis.core.parameters import ParameterLocation

    info = case.meta.components.get(ParameterLocation.HEADER) if case.meta is not None else None
    return info is not None and info.mode.is_negative


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["admin", "manager"])
def test_stateful_sequences_follow_links(personas, role):
    token = bearer(personas[role])
    seen: list[tuple[str, str, int]] = []

    def auth(case) -> dict:
        # The role's token, except where the case left Authorization out on purpose: adding it back
        # would turn the negative case into a valid request (and "accepted negative data").
        return {} if _headers_mutated(case) else {"Authorization": token}

    class Workflow(schema.as_state_machine()):
        def setup(self):
            self.savepoint = transaction.savepoint()  # every sequence starts from the same data

        def teardown(self):
            transaction.savepoint_rollback(self.savepoint)

        def call(self, case, **kwargs):
            return case.call(app=application, headers=auth(case))

        def after_call(self, response, case):
            seen.append((case.method, case.formatted_path, response.status_code))

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=STATEFUL_CHECKS, headers=auth(case))

    Workflow.run(
        settings=settings(
            max_examples=max(25, 2 * EXAMPLES),
            stateful_step_count=8,
            deadline=None,
            database=None,
            derandomize=DERANDOMIZE,
            suppress_health_check=list(HealthCheck),
        )
    )
    assert any(status < 300 for _, _, status in seen), seen[:20]  # the role's token was really used


def test_schema_declares_links_for_stateful_runs():
    links = {
        name
        for path in schema.raw_schema["paths"].values()
        for op in path.values()
        if isinstance(op, dict)
        for response in op.get("responses", {}).values()
        for name in response.get("links", {})
    }
    assert {
        "GetModel",
        "UpdateModel",
        "ReplaceModel",
        "DeleteModel",
        "GetUser",
        "UpdateUser",
        "GetUserRateLimits",
    } <= links
