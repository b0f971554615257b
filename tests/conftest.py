"""Shared fixtures: one persona per role plus an outsider, and authenticated API clients."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from modelhub.accounts.models import User
from modelhub.roles import Role
from tests.factories import ModelRegistryFactory, UserFactory

API = "/api/v1/modelhub"
ROLES = [r.value for r in Role]


@pytest.fixture(autouse=True)
def _clear_cache():
    from catalog.selectors import invalidate_catalog_facets

    cache.clear()
    invalidate_catalog_facets()
    yield
    cache.clear()
    invalidate_catalog_facets()


@pytest.fixture
def personas(db) -> dict[str, User]:
    """One user per role, plus ``outsider``: a developer who owns nothing."""
    users = {role: UserFactory(username=role, role=role) for role in ROLES}
    users["outsider"] = UserFactory(username="outsider", role=Role.DEVELOPER)
    return users


def bearer(user: User) -> str:
    return f"Bearer {RefreshToken.for_user(user).access_token}"


@pytest.fixture
def client_for(personas) -> Callable[[str | User | None], APIClient]:
    def make(who: str | User | None) -> APIClient:
        client = APIClient()
        if who is not None:
            user = personas[who] if isinstance(who, str) else who
            client.credentials(HTTP_AUTHORIZATION=bearer(user))
        return client

    return make


@pytest.fixture
def model(personas):
    return ModelRegistryFactory(name="gpt-test", version="1", owner=personas["admin"])


def is_postgres() -> bool:
    from django.db import connection

    return connection.vendor == "postgresql"


def assert_error(response, status: int, code: str) -> dict:
    """The response is the spec's ErrorResponse with this status and code."""
    assert response.status_code == status, (response.status_code, getattr(response, "content", b"")[:500])
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert error["code"] == code, error
    assert {"code", "message", "timestamp", "requestId"} <= set(error), error
    assert error["requestId"] == response["X-Request-ID"]
    assert error["timestamp"].endswith("Z")
    return error


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Every test starts with no rate-limit counters and no cached limits - and with limits off, as
    tests/settings.py sets them (a test that turned them on and leaked it once made later tests 429)."""
    from django.conf import settings

    from modelhub.accounts.middleware import user_limits
    from modelhub.api.ratelimit import reset_limiter

    assert not settings.RATE_LIMITS_ENABLED, "an earlier test left RATE_LIMITS_ENABLED on"

    reset_limiter()
    user_limits.clear()
    yield
    reset_limiter()
    user_limits.clear()


def needs_redis():
    from django.conf import settings

    if not settings.REDIS_URL:
        pytest.skip("Redis only (set REDIS_URL)")
