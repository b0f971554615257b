"""Every role (and anonymous) against every analytics endpoint, expectations written out literally."""

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from analytics.models import Alert
from tests.analytics.helpers import event
from tests.conftest import API, assert_error

pytestmark = pytest.mark.django_db

ROLES = ["admin", "manager", "developer", "analyst", "viewer", "outsider"]
READERS = {"admin", "manager", "developer", "analyst", "outsider"}  # outsider: a developer who owns nothing
WRITERS = {"admin", "manager", "developer", "outsider"}

ENDPOINTS = [
    ("post", "/analytics/events", "events", WRITERS, 200),
    ("get", "/analytics/models/{model}/performance", None, READERS, 200),
    ("get", "/analytics/dashboard", None, READERS, 200),
    ("get", "/analytics/alerts", None, READERS, 200),
    ("get", "/analytics/alerts/{alert}", None, READERS, 200),
    ("post", "/analytics/alerts/{alert}/acknowledge", None, WRITERS, 200),
]
CASES = [(m, p, b, role, s if role in allowed else 403) for m, p, b, allowed, s in ENDPOINTS for role in ROLES]


@pytest.fixture
def alert(model):
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


@pytest.mark.parametrize("method, template, body, role, expected", CASES, ids=[f"{c[3]}-{c[0]}-{c[1]}" for c in CASES])
def test_role_against_endpoint(client_for, model, alert, method, template, body, role, expected):
    path = API + template.format(model=model.pk, alert=alert.pk)
    payload = {"events": [event(model)]} if body == "events" else None
    response = getattr(client_for(role), method)(path, payload, format="json")
    if expected == 403:
        assert_error(response, 403, "FORBIDDEN")
    else:
        assert response.status_code == expected, response.content[:300]


@pytest.mark.parametrize("method, template", [(m, p) for m, p, *_ in ENDPOINTS])
def test_anonymous_gets_401(model, alert, method, template):
    path = API + template.format(model=model.pk, alert=alert.pk)
    assert_error(getattr(APIClient(), method)(path, {}, format="json"), 401, "UNAUTHORIZED")


def test_unknown_alert_is_404(client_for):
    assert_error(
        client_for("analyst").get(f"{API}/analytics/alerts/00000000-0000-0000-0000-000000000001"),
        404,
        "INVALID_REQUEST",
    )
    assert_error(client_for("analyst").get(f"{API}/analytics/alerts/nope"), 404, "INVALID_REQUEST")
