"""JWT auth: obtain, rotate, verify, logout, me; expiry and forgery answers."""

from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from modelhub.roles import permissions_for
from tests.conftest import API, assert_error
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def obtain(username: str, password: str = PASSWORD):
    return APIClient().post(f"{API}/auth/token", {"username": username, "password": password}, format="json")


def test_obtain_pair_and_use_it(personas):
    response = obtain("developer")
    assert response.status_code == 200
    tokens = response.json()
    assert set(tokens) == {"access", "refresh"}
    claims = AccessToken(tokens["access"])
    assert claims["role"] == "developer" and claims["user_id"] == str(personas["developer"].pk)
    me = APIClient(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}").get(f"{API}/auth/me")
    assert me.status_code == 200
    body = me.json()
    assert body["role"] == "developer" and body["user"]["username"] == "developer"
    assert body["permissions"] == permissions_for("developer")
    assert body["permissions"]["models"] == {
        "read": True,
        "create": False,
        "update": False,
        "delete": False,
        "deploy": True,
    }
    assert body["permissions"]["deployments"]["scale"] is True
    assert body["ownOnly"] == [
        "deployments.update",
        "deployments.delete",
        "deployments.scale",
        "experiments.update",
        "experiments.delete",
    ]


def test_wrong_password_and_missing_fields(personas):
    assert_error(obtain("developer", "nope"), 401, "UNAUTHORIZED")
    assert_error(obtain("nobody"), 401, "UNAUTHORIZED")
    error = assert_error(
        APIClient().post(f"{API}/auth/token", {"username": "x"}, format="json"), 400, "MISSING_REQUIRED_FIELD"
    )
    assert error["details"]["fields"] == {"password": ["This field is required."]}


def test_inactive_user_gets_no_token_and_loses_access_at_once(personas):
    user = personas["analyst"]
    tokens = obtain("analyst").json()
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    assert client.get(f"{API}/auth/me").status_code == 200
    user.is_active = False
    user.save()
    assert_error(client.get(f"{API}/auth/me"), 401, "UNAUTHORIZED")
    assert_error(obtain("analyst"), 401, "UNAUTHORIZED")
    assert_error(
        APIClient().post(f"{API}/auth/token/refresh", {"refresh": tokens["refresh"]}, format="json"),
        401,
        "UNAUTHORIZED",
    )


def test_refresh_rotates_and_blacklists_the_old_token(personas):
    tokens = obtain("viewer").json()
    client = APIClient()
    rotated = client.post(f"{API}/auth/token/refresh", {"refresh": tokens["refresh"]}, format="json")
    assert rotated.status_code == 200
    new = rotated.json()
    assert set(new) == {"access", "refresh"} and new["refresh"] != tokens["refresh"]
    assert (
        BlacklistedToken.objects.filter(token__jti=RefreshToken(new["refresh"], verify=False).payload["jti"]).count()
        == 0
    )
    # the old refresh token is blacklisted after rotation
    assert_error(
        client.post(f"{API}/auth/token/refresh", {"refresh": tokens["refresh"]}, format="json"), 401, "UNAUTHORIZED"
    )
    assert client.post(f"{API}/auth/token/refresh", {"refresh": new["refresh"]}, format="json").status_code == 200


def test_refresh_with_garbage_or_access_token(personas):
    tokens = obtain("viewer").json()
    client = APIClient()
    assert_error(client.post(f"{API}/auth/token/refresh", {"refresh": "garbage"}, format="json"), 401, "UNAUTHORIZED")
    assert_error(
        client.post(f"{API}/auth/token/refresh", {"refresh": tokens["access"]}, format="json"), 401, "UNAUTHORIZED"
    )
    assert_error(client.post(f"{API}/auth/token/refresh", {}, format="json"), 400, "MISSING_REQUIRED_FIELD")


def test_refresh_for_deleted_user_is_401_not_500(personas):
    tokens = obtain("viewer").json()
    personas["viewer"].delete()
    assert_error(
        APIClient().post(f"{API}/auth/token/refresh", {"refresh": tokens["refresh"]}, format="json"),
        401,
        "UNAUTHORIZED",
    )


def test_expired_refresh_is_token_expired(personas):
    refresh = RefreshToken.for_user(personas["viewer"])
    refresh.set_exp(lifetime=-timedelta(seconds=1))
    assert_error(
        APIClient().post(f"{API}/auth/token/refresh", {"refresh": str(refresh)}, format="json"), 401, "TOKEN_EXPIRED"
    )


def test_verify_needs_a_bearer_token_and_checks_the_given_one(personas, client_for):
    tokens = obtain("viewer").json()
    assert_error(
        APIClient().post(f"{API}/auth/token/verify", {"token": tokens["access"]}, format="json"), 401, "UNAUTHORIZED"
    )
    client = client_for("viewer")
    assert client.post(f"{API}/auth/token/verify", {"token": tokens["access"]}, format="json").status_code == 200
    assert_error(client.post(f"{API}/auth/token/verify", {"token": "x.y.z"}, format="json"), 401, "UNAUTHORIZED")
    expired = AccessToken.for_user(personas["viewer"])
    expired.set_exp(lifetime=-timedelta(seconds=1))
    assert_error(client.post(f"{API}/auth/token/verify", {"token": str(expired)}, format="json"), 401, "TOKEN_EXPIRED")


def test_logout_blacklists_and_is_idempotent(personas):
    tokens = obtain("developer").json()
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    assert client.post(f"{API}/auth/logout", {"refresh": tokens["refresh"]}, format="json").status_code == 204
    assert client.post(f"{API}/auth/logout", {"refresh": tokens["refresh"]}, format="json").status_code == 204
    assert_error(
        APIClient().post(f"{API}/auth/token/refresh", {"refresh": tokens["refresh"]}, format="json"),
        401,
        "UNAUTHORIZED",
    )
    assert_error(client.post(f"{API}/auth/logout", {}, format="json"), 400, "MISSING_REQUIRED_FIELD")
    assert_error(client.post(f"{API}/auth/logout", {"refresh": "garbage"}, format="json"), 400, "INVALID_REQUEST")


def test_logout_cannot_revoke_someone_elses_token(personas):
    victim = obtain("analyst").json()
    attacker = APIClient(HTTP_AUTHORIZATION=f"Bearer {obtain('developer').json()['access']}")
    assert_error(attacker.post(f"{API}/auth/logout", {"refresh": victim["refresh"]}, format="json"), 403, "FORBIDDEN")
    assert (
        APIClient().post(f"{API}/auth/token/refresh", {"refresh": victim["refresh"]}, format="json").status_code == 200
    )


def test_logout_everywhere_revokes_every_session(personas):
    first, second = obtain("manager").json(), obtain("manager").json()
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {first['access']}")
    assert (
        client.post(f"{API}/auth/logout", {"refresh": first["refresh"], "everywhere": True}, format="json").status_code
        == 204
    )
    assert_error(
        APIClient().post(f"{API}/auth/token/refresh", {"refresh": second["refresh"]}, format="json"),
        401,
        "UNAUTHORIZED",
    )


# --- bearer token answers ----------------------------------------------------------------


def forge(payload: dict, key: str, alg: str = "HS256") -> str:
    return jwt.encode(payload, key, algorithm=alg)


def test_bearer_token_failures(personas):
    user = personas["viewer"]
    good = AccessToken.for_user(user)
    expired = AccessToken.for_user(user)
    expired.set_exp(lifetime=-timedelta(seconds=1))
    payload = dict(good.payload)
    unsigned = jwt.encode(payload, None, algorithm="none")
    cases = {
        "expired": (f"Bearer {expired}", "TOKEN_EXPIRED"),
        "wrong key": (f"Bearer {forge(payload, 'x' * 40)}", "UNAUTHORIZED"),
        "alg none": (f"Bearer {unsigned}", "UNAUTHORIZED"),
        "refresh as access": (f"Bearer {RefreshToken.for_user(user)}", "UNAUTHORIZED"),
        "malformed": ("Bearer not-a-jwt", "UNAUTHORIZED"),
        "three parts": ("Bearer a b", "UNAUTHORIZED"),
        "no user claim": (
            f"Bearer {forge({k: v for k, v in payload.items() if k != 'user_id'}, settings.JWT_SIGNING_KEY)}",
            "UNAUTHORIZED",
        ),
        "signed with SECRET_KEY": (f"Bearer {forge(payload, settings.SECRET_KEY)}", "UNAUTHORIZED"),
    }
    for name, (header, code) in cases.items():
        response = APIClient(HTTP_AUTHORIZATION=header).get(f"{API}/models")
        assert_error(response, 401, code), name
        assert response["WWW-Authenticate"].startswith("Bearer"), name
    assert_error(APIClient().get(f"{API}/models"), 401, "UNAUTHORIZED")
    assert_error(APIClient(HTTP_AUTHORIZATION="Basic dXNlcjpwYXNz").get(f"{API}/models"), 401, "UNAUTHORIZED")
    assert APIClient(HTTP_AUTHORIZATION=f"Bearer {good}").get(f"{API}/models").status_code == 200


def test_public_endpoints_need_no_token(db):
    client = APIClient()
    assert client.get(f"{API}/health").status_code == 200
    assert client.get(f"{API}/schema/").status_code == 200
    assert client.get(f"{API}/docs/").status_code == 200
