"""User management: admins manage everyone, managers everyone but admins."""

import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

from modelhub.accounts.models import User
from tests.conftest import API, assert_error
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

NEW = {"username": "newbie", "password": "a-long-enough-passphrase", "role": "developer", "email": "n@example.com"}


def test_admin_creates_any_role(client_for):
    response = client_for("admin").post(f"{API}/users", {**NEW, "role": "admin"}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == {"user"}  # wrapped like every other resource
    user = body["user"]
    assert user["role"] == "admin" and user["isActive"] is True and "password" not in user
    user = User.objects.get(username="newbie")
    assert user.is_staff and user.check_password(NEW["password"])


def test_manager_creates_non_admins_only(client_for):
    client = client_for("manager")
    assert client.post(f"{API}/users", NEW, format="json").status_code == 201
    assert_error(
        client.post(f"{API}/users", {**NEW, "username": "boss", "role": "admin"}, format="json"), 403, "FORBIDDEN"
    )
    assert not User.objects.filter(username="boss").exists()


def test_manager_cannot_touch_admins(client_for, personas):
    client = client_for("manager")
    admin = personas["admin"]
    assert_error(client.patch(f"{API}/users/{admin.pk}", {"role": "viewer"}, format="json"), 403, "FORBIDDEN")
    assert_error(client.delete(f"{API}/users/{admin.pk}"), 403, "FORBIDDEN")
    assert_error(
        client.patch(f"{API}/users/{personas['viewer'].pk}", {"role": "admin"}, format="json"), 403, "FORBIDDEN"
    )
    response = client.patch(f"{API}/users/{personas['viewer'].pk}", {"role": "analyst"}, format="json")
    assert response.status_code == 200 and response.json()["user"]["role"] == "analyst"


def test_role_change_takes_effect_on_the_next_request(client_for, personas):
    viewer = client_for("viewer")
    assert_error(viewer.get(f"{API}/users"), 403, "FORBIDDEN")
    client_for("admin").patch(f"{API}/users/{personas['viewer'].pk}", {"role": "manager"}, format="json")
    assert viewer.get(f"{API}/users").status_code == 200
    assert User.objects.get(pk=personas["viewer"].pk).is_staff


def test_nobody_changes_their_own_role_or_deactivates_themselves(client_for, personas):
    admin = client_for("admin")
    me = personas["admin"].pk
    assert_error(admin.patch(f"{API}/users/{me}", {"role": "viewer"}, format="json"), 403, "FORBIDDEN")
    assert_error(admin.delete(f"{API}/users/{me}"), 403, "FORBIDDEN")
    assert admin.patch(f"{API}/users/{me}", {"firstName": "Ada"}, format="json").status_code == 200


def test_deactivate_revokes_sessions(client_for, personas, django_capture_on_commit_callbacks):
    tokens = APIClient().post(f"{API}/auth/token", {"username": "analyst", "password": PASSWORD}, format="json").json()
    with django_capture_on_commit_callbacks(execute=True):
        assert client_for("manager").delete(f"{API}/users/{personas['analyst'].pk}").status_code == 204
    assert not User.objects.get(pk=personas["analyst"].pk).is_active
    assert BlacklistedToken.objects.filter(token__user=personas["analyst"]).exists()
    assert_error(APIClient(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}").get(f"{API}/auth/me"), 401, "UNAUTHORIZED")
    # deactivating again is the same as once
    with django_capture_on_commit_callbacks(execute=True):
        assert client_for("manager").delete(f"{API}/users/{personas['analyst'].pk}").status_code == 204


def test_list_filters_and_pagination(client_for, personas):
    UserFactory.create_batch(3, role="viewer")
    body = client_for("admin").get(f"{API}/users?role=viewer&limit=2").json()
    assert len(body["users"]) == 2 and body["pagination"]["total"] == 4 and body["pagination"]["hasNext"]
    body = client_for("admin").get(f"{API}/users?search=manag").json()
    assert [u["username"] for u in body["users"]] == ["manager"]
    assert_error(client_for("admin").get(f"{API}/users?role=root"), 400, "INVALID_PARAMETER")


def test_create_validation(client_for):
    client = client_for("admin")
    assert_error(client.post(f"{API}/users", {**NEW, "password": "123"}, format="json"), 400, "INVALID_REQUEST")
    error = assert_error(client.post(f"{API}/users", {**NEW, "role": "root"}, format="json"), 400, "INVALID_REQUEST")
    assert error["details"]["allowedValues"]["role"] == ["admin", "manager", "developer", "analyst", "viewer"]
    assert_error(client.post(f"{API}/users", {"password": "x"}, format="json"), 400, "MISSING_REQUIRED_FIELD")
    assert client.post(f"{API}/users", NEW, format="json").status_code == 201
    assert_error(client.post(f"{API}/users", {**NEW, "username": "NEWBIE"}, format="json"), 409, "USER_ALREADY_EXISTS")


def test_retrieve_answers_the_user_wrapped(client_for, personas):
    body = client_for("admin").get(f"{API}/users/{personas['viewer'].pk}").json()
    assert set(body) == {"user"} and body["user"]["username"] == "viewer" and body["user"]["role"] == "viewer"


def test_unknown_user_is_user_not_found(client_for):
    assert_error(client_for("admin").get(f"{API}/users/00000000-0000-0000-0000-000000000000"), 404, "USER_NOT_FOUND")


@pytest.mark.parametrize("query", ["isActive=null", "isActive=yes", "isActive=true&isActive=false", "limit=5&limit=6"])
def test_bad_or_repeated_scalar_parameters(client_for, query):
    # found by schemathesis: isActive=null used to mean "no filter"
    assert_error(client_for("admin").get(f"{API}/users?{query}"), 400, "INVALID_PARAMETER")


def test_is_active_filter(client_for, personas):
    personas["viewer"].is_active = False
    personas["viewer"].save()
    names = [u["username"] for u in client_for("admin").get(f"{API}/users?isActive=false").json()["users"]]
    assert names == ["viewer"]
    assert "viewer" not in [u["username"] for u in client_for("admin").get(f"{API}/users?isActive=1").json()["users"]]


@pytest.mark.parametrize("query", ["isActive=", "role=", "page=", "limit="])
def test_empty_parameter_values_are_rejected(client_for, query):
    # found by schemathesis: isActive= used to mean "no filter"
    error = assert_error(client_for("admin").get(f"{API}/users?{query}"), 400, "INVALID_PARAMETER")
    assert query.rstrip("=") in error["details"]["fields"]
