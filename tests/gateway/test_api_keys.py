"""Hub API keys: /api-keys for every role, owner isolation, the secret shown once and stored hashed,
bad input, keys on POST /analytics/events (and nowhere else), the rate-limit identity of a key, and
the admin pages for keys and provider credentials.

Long (past 350 lines) because it is one resource's whole contract: the API, where keys are accepted,
and the admin that manages the same rows; split it when the gateway's own tests need these fixtures.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta

import pytest
from django.test import RequestFactory, override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from analytics.models import UsageEvent
from gateway import services
from gateway.models import ApiKey, ProviderCredential
from tests.analytics.helpers import event
from tests.conftest import API, ROLES, assert_error
from tests.factories import DeploymentFactory

pytestmark = pytest.mark.django_db
URL = API + "/api-keys"
EVENTS = API + "/analytics/events"
KEY_FIELDS = {
    "id",
    "name",
    "prefix",
    "ownerId",
    "ownerUsername",
    "deploymentIds",
    "expiresAt",
    "revokedAt",
    "lastUsedAt",
    "createdAt",
    "status",
}


@pytest.fixture(autouse=True)
def _fresh_key_caches():
    from modelhub.accounts.middleware import api_key_owners

    services.key_cache.clear()
    api_key_owners.clear()
    yield
    services.key_cache.clear()
    api_key_owners.clear()


def make_key(owner, name="k", **kwargs) -> tuple[ApiKey, str]:
    return services.api_key_create(owner=owner, name=name, **kwargs)


def with_key(secret: str) -> APIClient:
    return APIClient(HTTP_AUTHORIZATION=f"Bearer {secret}")


def create(client, body):
    return client.post(URL, body, format="json")


# --- create / list / get / revoke, every role ---------------------------------------------------


@pytest.mark.parametrize("role", [*ROLES, "outsider"])
def test_every_role_creates_lists_reads_and_revokes_its_own_keys(client_for, personas, role):
    client = client_for(role)
    response = create(client, {"name": f"{role}-job"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"apiKey", "secret"}
    key = body["apiKey"]
    assert set(key) == KEY_FIELDS
    assert key["ownerId"] == str(personas[role].pk) and key["ownerUsername"] == personas[role].username
    assert key["status"] == "active" and key["revokedAt"] is None and key["expiresAt"] is None
    assert key["lastUsedAt"] is None and key["deploymentIds"] == [] and key["name"] == f"{role}-job"

    listed = client.get(URL).json()
    assert [k["id"] for k in listed["apiKeys"]] == [key["id"]]
    assert listed["pagination"] == {
        "page": 1,
        "limit": 20,
        "total": 1,
        "totalPages": 1,
        "hasNext": False,
        "hasPrev": False,
    }
    assert client.get(f"{URL}/{key['id']}").json() == {"apiKey": key}

    assert client.delete(f"{URL}/{key['id']}").status_code == 204
    revoked = client.get(f"{URL}/{key['id']}").json()["apiKey"]
    assert revoked["status"] == "revoked" and revoked["revokedAt"] is not None


def test_the_secret_is_shown_once_and_only_its_hash_is_stored(client_for):
    client = client_for("developer")
    body = create(client, {"name": "ci"}).json()
    secret, key = body["secret"], body["apiKey"]
    row = ApiKey.objects.get(pk=key["id"])
    assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret.startswith(f"mh_{row.prefix}_") and len(secret) > 40
    assert key["prefix"] == f"mh_{row.prefix}" and len(row.prefix) == 8 and secret.startswith(key["prefix"])
    for response in (client.get(URL), client.get(f"{URL}/{key['id']}")):
        text = response.content.decode()
        assert secret not in text and row.secret_hash not in text and "secret" not in response.json()
    # nothing of the secret but its visible prefix is in the row
    stored = " ".join(str(getattr(row, f.attname)) for f in ApiKey._meta.concrete_fields)
    assert secret not in stored and secret[len(key["prefix"]) + 1 :] not in stored


def test_deployment_restriction_and_expiry_are_stored(client_for):
    first, second = DeploymentFactory(), DeploymentFactory()
    expires = (timezone.now() + timedelta(days=30)).replace(microsecond=0)
    response = create(
        client_for("developer"),
        {
            "name": "scoped",
            "deploymentIds": [str(second.pk), str(first.pk), str(second.pk).upper()],
            "expiresAt": expires.isoformat().replace("+00:00", "+02:00"),
        },
    )
    assert response.status_code == 201, response.content
    key = response.json()["apiKey"]
    assert sorted(key["deploymentIds"]) == sorted([str(first.pk), str(second.pk)])  # de-duplicated
    row = ApiKey.objects.get(pk=key["id"])
    assert sorted(row.deployment_ids) == sorted([str(first.pk), str(second.pk)])
    # +02:00 read as an offset, stored and shown in UTC
    assert row.expires_at == expires - timedelta(hours=2)
    assert key["expiresAt"] == (expires - timedelta(hours=2)).isoformat().replace("+00:00", "Z")


def test_last_used_at_is_shown(client_for, personas):
    key, _ = make_key(personas["developer"])
    when = timezone.now().replace(microsecond=0)
    services.touch_api_keys({str(key.pk): when})
    shown = client_for("developer").get(f"{URL}/{key.pk}").json()["apiKey"]
    assert shown["lastUsedAt"] == when.isoformat().replace("+00:00", "Z")


# --- owner isolation ------------------------------------------------------------------------------


def test_a_developer_cannot_see_or_revoke_another_users_key(client_for, personas):
    theirs, _ = make_key(personas["outsider"], "theirs")
    mine, _ = make_key(personas["developer"], "mine")
    client = client_for("developer")
    assert [k["id"] for k in client.get(URL).json()["apiKeys"]] == [str(mine.pk)]
    error = assert_error(client.get(f"{URL}/{theirs.pk}"), 404, "INVALID_REQUEST")
    assert error["message"] == "API key not found."
    assert_error(client.delete(f"{URL}/{theirs.pk}"), 404, "INVALID_REQUEST")
    theirs.refresh_from_db()
    assert theirs.revoked_at is None
    # the answer for someone else's key is the answer for a key that does not exist
    unknown = assert_error(client.get(f"{URL}/{uuid.uuid4()}"), 404, "INVALID_REQUEST")
    assert unknown["message"] == error["message"]
    # filtering by another owner shows nothing rather than their keys
    assert client.get(URL, {"ownerId": str(personas["outsider"].pk)}).json()["apiKeys"] == []


@pytest.mark.parametrize("role", ["manager", "analyst", "viewer"])
def test_only_admins_see_other_users_keys(client_for, personas, role):
    other, _ = make_key(personas["developer"])
    assert client_for(role).get(URL).json()["apiKeys"] == []
    assert_error(client_for(role).get(f"{URL}/{other.pk}"), 404, "INVALID_REQUEST")


def test_admin_sees_filters_and_revokes_everyones_keys(client_for, personas):
    dev, _ = make_key(personas["developer"], "dev")
    viewer, _ = make_key(personas["viewer"], "viewer")
    own, _ = make_key(personas["admin"], "own")
    admin = client_for("admin")
    listed = admin.get(URL).json()
    assert [k["id"] for k in listed["apiKeys"]] == [str(own.pk), str(viewer.pk), str(dev.pk)]  # newest first
    assert listed["pagination"]["total"] == 3
    by_owner = admin.get(URL, {"ownerId": str(personas["developer"].pk)}).json()["apiKeys"]
    assert [k["id"] for k in by_owner] == [str(dev.pk)]
    assert [k["name"] for k in admin.get(URL, {"sortBy": "name"}).json()["apiKeys"]] == ["dev", "own", "viewer"]
    assert admin.get(f"{URL}/{dev.pk}").status_code == 200
    assert admin.delete(f"{URL}/{dev.pk}").status_code == 204
    dev.refresh_from_db()
    assert dev.revoked_at is not None
    page = admin.get(URL, {"limit": 2, "page": 2}).json()
    assert len(page["apiKeys"]) == 1 and page["pagination"]["hasPrev"] is True


def test_status_filter(client_for, personas):
    owner = personas["developer"]
    active, _ = make_key(owner, "active")
    revoked, _ = make_key(owner, "revoked")
    services.api_key_revoke(revoked)
    expired, _ = make_key(owner, "expired", expires_at=timezone.now() + timedelta(days=1))
    ApiKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    client = client_for("developer")

    def names(**query):
        return sorted(k["name"] for k in client.get(URL, query).json()["apiKeys"])

    assert names(status="active") == ["active"]
    assert names(status="expired") == ["expired"]
    assert names(status="revoked") == ["revoked"]
    assert names(status="active,revoked") == ["active", "revoked"]
    assert names() == ["active", "expired", "revoked"]
    shown = {k["name"]: k["status"] for k in client.get(URL).json()["apiKeys"]}
    assert shown == {"active": "active", "expired": "expired", "revoked": "revoked"}
    error = assert_error(client.get(URL, {"status": "lost"}), 400, "INVALID_PARAMETER")
    assert error["details"]["allowedValues"]["status"] == ["active", "expired", "revoked"]
    assert_error(client.get(URL, {"ownerId": "nope"}), 400, "INVALID_PARAMETER")
    assert_error(client.get(URL, {"owner": "x"}), 400, "INVALID_PARAMETER")


def test_revoking_is_idempotent(client_for, personas):
    key, _ = make_key(personas["developer"])
    client = client_for("developer")
    assert client.delete(f"{URL}/{key.pk}").status_code == 204
    first = client.get(f"{URL}/{key.pk}").json()["apiKey"]["revokedAt"]
    second = client.delete(f"{URL}/{key.pk}")
    assert second.status_code == 204 and second.content == b""
    assert client.get(f"{URL}/{key.pk}").json()["apiKey"]["revokedAt"] == first  # the first revocation's time


def test_malformed_ids_and_unrouted_methods(client_for):
    client = client_for("developer")
    assert_error(client.get(f"{URL}/not-a-uuid"), 404, "INVALID_REQUEST")
    assert_error(client.delete(f"{URL}/not-a-uuid"), 404, "INVALID_REQUEST")
    key = create(client, {"name": "x"}).json()["apiKey"]
    assert_error(client.patch(f"{URL}/{key['id']}", {"name": "y"}, format="json"), 405, "INVALID_REQUEST")
    assert_error(client.put(f"{URL}/{key['id']}", {"name": "y"}, format="json"), 405, "INVALID_REQUEST")


def test_anonymous_callers_get_401(db):
    for response in (APIClient().get(URL), create(APIClient(), {"name": "x"})):
        assert_error(response, 401, "UNAUTHORIZED")


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, status, code, field",
    [
        ({"name": "x", "owner": "admin"}, 400, "INVALID_REQUEST", "owner"),
        ({"name": "x", "secret": "mh_mine"}, 400, "INVALID_REQUEST", "secret"),
        ({"name": "x" * 101}, 400, "INVALID_REQUEST", "name"),
        ({"name": ""}, 400, "INVALID_REQUEST", "name"),
        ({"name": "   "}, 400, "INVALID_REQUEST", "name"),
        ({"name": 5}, 400, "INVALID_REQUEST", "name"),
        ({"name": "a\x00b"}, 400, "INVALID_REQUEST", None),  # the JSON parser refuses NUL characters
        ({}, 400, "MISSING_REQUIRED_FIELD", "name"),
        ({"name": "x", "deploymentIds": "not-a-list"}, 400, "INVALID_REQUEST", "deploymentIds"),
        ({"name": "x", "deploymentIds": ["not-a-uuid"]}, 400, "INVALID_REQUEST", "deploymentIds[0]"),
        ({"name": "x", "deploymentIds": [7]}, 400, "INVALID_REQUEST", "deploymentIds[0]"),
        ({"name": "x", "deploymentIds": [None]}, 400, "INVALID_REQUEST", "deploymentIds[0]"),
        ({"name": "x", "deploymentIds": [str(uuid.uuid4())] * 101}, 400, "INVALID_REQUEST", "deploymentIds"),
        ({"name": "x", "expiresAt": "2030-01-01T00:00:00"}, 400, "INVALID_REQUEST", "expiresAt"),
        ({"name": "x", "expiresAt": "2030-01-01"}, 400, "INVALID_REQUEST", "expiresAt"),
        ({"name": "x", "expiresAt": "tomorrow"}, 400, "INVALID_REQUEST", "expiresAt"),
        ({"name": "x", "expiresAt": 1893456000}, 400, "INVALID_REQUEST", "expiresAt"),
        ({"name": "x", "expiresAt": "2020-01-01T00:00:00Z"}, 400, "INVALID_REQUEST", "expiresAt"),
        ({"name": "x", "expiresAt": "9999-12-31T23:59:59Z"}, 400, "INVALID_REQUEST", "expiresAt"),
        ({"name": "x", "expiresAt": "9999-12-31T23:59:59-23:59"}, 400, "INVALID_REQUEST", "expiresAt"),
        ({"name": "x", "expiresAt": "0001-01-01T00:00:00+23:59"}, 400, "INVALID_REQUEST", "expiresAt"),
    ],
    ids=lambda v: str(v)[:40] if not isinstance(v, dict) else None,
)
def test_bad_input_is_refused_with_the_field_named(client_for, body, status, code, field):
    error = assert_error(create(client_for("developer"), body), status, code)
    assert field is None or field in error["details"]["fields"], error
    assert not ApiKey.objects.exists()


def test_expiry_bounds(client_for):
    client = client_for("developer")
    past = assert_error(
        create(client, {"name": "x", "expiresAt": (timezone.now() - timedelta(minutes=1)).isoformat()}),
        400,
        "INVALID_REQUEST",
    )
    assert past["details"]["fields"]["expiresAt"] == ["Must be in the future."]
    far = (timezone.now() + timedelta(days=400)).isoformat()
    assert assert_error(create(client, {"name": "x", "expiresAt": far}), 400, "INVALID_REQUEST")["details"]["fields"][
        "expiresAt"
    ] == ["Must be at most a year ahead."]
    naive = assert_error(create(client, {"name": "x", "expiresAt": "2030-01-01T00:00:00"}), 400, "INVALID_REQUEST")
    assert "time zone" in naive["details"]["fields"]["expiresAt"][0]
    soon = (timezone.now() + timedelta(days=365)).isoformat()
    assert create(client, {"name": "x", "expiresAt": soon}).status_code == 201
    assert create(client, {"name": "y", "expiresAt": None}).json()["apiKey"]["expiresAt"] is None


def test_unknown_deployments_are_404_naming_them(client_for):
    known = DeploymentFactory()
    missing = str(uuid.uuid4())
    error = assert_error(
        create(client_for("developer"), {"name": "x", "deploymentIds": [str(known.pk), missing]}),
        404,
        "DEPLOYMENT_NOT_FOUND",
    )
    assert error["details"]["deploymentIds"] == [missing]
    assert error["details"]["fields"] == {"deploymentIds[1]": ["No deployment with this id."]}
    assert missing in error["message"]
    assert not ApiKey.objects.exists()


def test_a_body_that_is_not_an_object_is_refused(client_for):
    client = client_for("developer")
    assert_error(client.post(URL, ["name"], format="json"), 400, "INVALID_REQUEST")
    assert_error(client.post(URL, "{not json", content_type="application/json"), 400, "INVALID_REQUEST")
    assert_error(client.post(URL, "name=x", content_type="application/x-www-form-urlencoded"), 415, "INVALID_REQUEST")


def test_at_most_100_unrevoked_keys_per_user(client_for, personas):
    owner = personas["developer"]
    ApiKey.objects.bulk_create(
        ApiKey(owner=owner, name=f"k{i}", prefix=f"p{i:07d}", secret_hash=f"{i:064d}") for i in range(100)
    )
    client = client_for("developer")
    assert_error(create(client, {"name": "one more"}), 409, "INVALID_REQUEST")
    ApiKey.objects.filter(name="k0").update(revoked_at=timezone.now())
    assert create(client, {"name": "one more"}).status_code == 201


# --- keys at work: POST /analytics/events and nowhere else ---------------------------------------


def test_a_key_ingests_events_with_its_owners_role(personas, model):
    _, secret = make_key(personas["developer"])
    response = with_key(secret).post(EVENTS, {"events": [event(model, requestId="by-key")]}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["accepted"] == 1 and UsageEvent.objects.filter(request_id="by-key").exists()
    # a viewer's key acts as a viewer: ingestion is not a viewer's
    _, viewer_secret = make_key(personas["viewer"])
    refused = with_key(viewer_secret).post(EVENTS, {"events": [event(model)]}, format="json")
    assert_error(refused, 403, "FORBIDDEN")
    # JWTs still work there
    jwt = with_key(_jwt(personas["developer"]))
    assert jwt.post(EVENTS, {"events": [event(model)]}, format="json").status_code == 200


def _jwt(user) -> str:
    from rest_framework_simplejwt.tokens import RefreshToken

    return str(RefreshToken.for_user(user).access_token)


def test_the_deployment_restriction_does_not_apply_to_events(personas, model):
    allowed = DeploymentFactory(model=model)
    other = DeploymentFactory(model=model)
    _, secret = make_key(personas["developer"], deployment_ids=[allowed.pk])
    body = {"events": [event(model, deploymentId=str(other.pk), environment=other.environment)]}
    response = with_key(secret).post(EVENTS, body, format="json")
    assert response.status_code == 200 and response.json()["accepted"] == 1, response.content


def test_revoked_expired_unknown_and_deactivated_keys_get_401_on_events(personas, model):
    owner = personas["developer"]
    revoked, revoked_secret = make_key(owner, "revoked")
    services.api_key_revoke(revoked)
    expired, expired_secret = make_key(owner, "expired", expires_at=timezone.now() + timedelta(hours=1))
    ApiKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    _, valid_secret = make_key(owner, "valid")
    for secret, message in [
        (revoked_secret, "This API key has been revoked."),
        (expired_secret, "This API key has expired."),
        ("mh_00000000_" + "x" * 43, "Unknown API key."),
        ("mh_", "Unknown API key."),
    ]:
        error = assert_error(
            with_key(secret).post(EVENTS, {"events": [event(model)]}, format="json"), 401, "UNAUTHORIZED"
        )
        assert error["message"] == message
    owner.is_active = False
    owner.save()
    error = assert_error(
        with_key(valid_secret).post(EVENTS, {"events": [event(model)]}, format="json"), 401, "UNAUTHORIZED"
    )
    assert "deactivated" in error["message"]
    assert not UsageEvent.objects.exists()


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", "/models"),
        ("get", "/auth/me"),
        ("get", "/api-keys"),
        ("post", "/api-keys"),
        ("get", "/deployments"),
        ("get", "/analytics/dashboard"),
        ("get", "/analytics/alerts"),
        ("get", "/users"),
        ("get", "/rate-limits"),
    ],
)
def test_a_key_is_refused_everywhere_else(personas, method, path):
    _, secret = make_key(personas["admin"])
    client = with_key(secret)
    response = client.get(API + path) if method == "get" else client.post(API + path, {"name": "x"}, format="json")
    assert_error(response, 401, "UNAUTHORIZED")
    assert ApiKey.objects.count() == 1  # a key cannot mint keys


# --- the rate-limit identity of a key --------------------------------------------------------------


def _identify(header: str | None):
    from modelhub.accounts.middleware import identify

    request = RequestFactory().get(f"{API}/analytics/events", HTTP_AUTHORIZATION=header or "")
    return identify(request)[0]


def test_a_valid_key_counts_against_its_owner(personas, django_assert_max_num_queries):
    owner = personas["developer"]
    key, secret = make_key(owner)
    assert _identify(f"Bearer {secret}") == f"u:{owner.pk}"
    assert _identify(f"Bearer {_jwt(owner)}") == f"u:{owner.pk}"  # the same budget as the owner's JWT
    with django_assert_max_num_queries(0):  # remembered for RATE_LIMITS_CACHE_SECONDS
        assert _identify(f"Bearer {secret}") == f"u:{owner.pk}"
    assert _identify("Bearer mh_unknown").startswith("ip:")
    assert _identify(None).startswith("ip:")


def test_refused_keys_are_anonymous_traffic(personas):
    revoked, secret = make_key(personas["developer"])
    services.api_key_revoke(revoked)
    assert _identify(f"Bearer {secret}").startswith("ip:")


@override_settings(RATE_LIMITS_ENABLED=True)
def test_key_requests_share_the_owners_limits(personas, model, client_for):
    from modelhub.accounts.models import RateLimitOverride

    owner = personas["developer"]
    RateLimitOverride.objects.create(user=owner, requests_per_minute=2, burst_limit=100)
    _, secret = make_key(owner)
    assert with_key(secret).post(EVENTS, {"events": [event(model)]}, format="json").status_code == 200
    assert client_for("developer").get(f"{API}/auth/me").status_code == 200
    refused = with_key(secret).post(EVENTS, {"events": [event(model)]}, format="json")
    assert_error(refused, 429, "RATE_LIMIT_EXCEEDED")
    assert client_for("analyst").get(f"{API}/auth/me").status_code == 200  # others keep their own budget


# --- the admin ------------------------------------------------------------------------------------

ADMIN = "/admin/gateway"


@pytest.fixture
def admin_client(personas):
    from django.test import Client

    client = Client()
    client.force_login(personas["admin"])
    return client


def test_the_key_admin_lists_keys_without_their_hash(admin_client, personas):
    key, secret = make_key(personas["developer"], "listed")
    page = admin_client.get(f"{ADMIN}/apikey/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "listed" in html and f"mh_{key.prefix}" in html and "active" in html
    assert key.secret_hash not in html and secret not in html
    change = admin_client.get(f"{ADMIN}/apikey/{key.pk}/change/")
    assert change.status_code == 200
    detail = change.content.decode()
    assert key.secret_hash not in detail and secret not in detail and "secret_hash" not in detail
    assert admin_client.get(f"{ADMIN}/apikey/?status=revoked").status_code == 200


def test_keys_added_in_the_admin_show_their_secret_once(admin_client, personas):
    deployment = DeploymentFactory()
    response = admin_client.post(
        f"{ADMIN}/apikey/add/",
        {
            "owner": str(personas["viewer"].pk),
            "name": "from-admin",
            "deployment_ids": f"{deployment.pk}\n{deployment.pk}",
            "expires_at_0": "",
            "expires_at_1": "",
        },
        follow=True,
    )
    assert response.status_code == 200
    key = ApiKey.objects.get(name="from-admin")
    assert key.owner == personas["viewer"] and key.deployment_ids == [str(deployment.pk)]
    shown = [str(m) for m in response.context["messages"]]
    secret = next(word for m in shown for word in m.split() if word.startswith(f"mh_{key.prefix}_"))
    assert key.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in admin_client.get(f"{ADMIN}/apikey/{key.pk}/change/").content.decode()
    # an unknown deployment is a form error, not a key
    response = admin_client.post(
        f"{ADMIN}/apikey/add/",
        {"owner": str(personas["viewer"].pk), "name": "bad", "deployment_ids": str(uuid.uuid4())},
    )
    assert response.status_code == 200 and not ApiKey.objects.filter(name="bad").exists()


def test_the_admin_revoke_action(admin_client, personas):
    key, _ = make_key(personas["developer"])
    response = admin_client.post(
        f"{ADMIN}/apikey/", {"action": "revoke", "_selected_action": [str(key.pk)]}, follow=True
    )
    assert response.status_code == 200
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_only_admins_reach_the_gateway_admin(personas):
    from django.test import Client

    manager = Client()
    manager.force_login(personas["manager"])  # staff, but not an admin
    assert manager.get(f"{ADMIN}/apikey/").status_code == 403
    assert manager.get(f"{ADMIN}/providercredential/").status_code == 403


def test_provider_credentials_take_a_write_only_key(admin_client):
    response = admin_client.post(
        f"{ADMIN}/providercredential/add/",
        {"provider": "openai", "adapter": "openai", "base_url": "", "api_key": "sk-very-secret", "api_key_env": ""},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    credential = ProviderCredential.objects.get(provider="openai")
    assert credential.api_key_encrypted and "sk-very-secret" not in credential.api_key_encrypted
    assert services.credential_api_key(credential) == "sk-very-secret"
    listing = admin_client.get(f"{ADMIN}/providercredential/").content.decode()
    assert "stored" in listing and "sk-very-secret" not in listing
    change = admin_client.get(f"{ADMIN}/providercredential/{credential.pk}/change/").content.decode()
    assert "sk-very-secret" not in change and credential.api_key_encrypted not in change
    # saving without a key keeps the stored one; naming an environment variable replaces it
    base = {"provider": "openai", "adapter": "openai", "base_url": "https://api.example.com/v1/"}
    admin_client.post(f"{ADMIN}/providercredential/{credential.pk}/change/", {**base, "api_key_env": ""})
    credential.refresh_from_db()
    assert services.credential_api_key(credential) == "sk-very-secret"
    assert credential.base_url == "https://api.example.com/v1"
    admin_client.post(f"{ADMIN}/providercredential/{credential.pk}/change/", {**base, "api_key_env": "OPENAI_KEY"})
    credential.refresh_from_db()
    assert credential.api_key_env == "OPENAI_KEY" and credential.api_key_encrypted == ""
    refused = admin_client.post(
        f"{ADMIN}/providercredential/{credential.pk}/change/",
        {**base, "api_key": "sk-other", "api_key_env": "OPENAI_KEY"},
    )
    assert refused.status_code == 200  # the form again, with the error
    bad_url = admin_client.post(
        f"{ADMIN}/providercredential/{credential.pk}/change/", {**base, "base_url": "ftp://x", "api_key_env": ""}
    )
    assert bad_url.status_code == 200


def test_more_active_keys_than_the_limit_is_409_and_revoking_frees_a_place(client_for, monkeypatch):
    monkeypatch.setattr(services, "MAX_KEYS_PER_USER", 2)
    client = client_for("developer")
    ids = [client.post(f"{API}/api-keys", {"name": f"k{i}"}, format="json").json()["apiKey"]["id"] for i in range(2)]
    assert_error(client.post(f"{API}/api-keys", {"name": "one too many"}, format="json"), 409, "INVALID_REQUEST")
    assert client.delete(f"{API}/api-keys/{ids[0]}").status_code == 204
    assert client.post(f"{API}/api-keys", {"name": "now it fits"}, format="json").status_code == 201
