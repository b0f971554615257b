"""Rate limits: headers, 429s, windows, overrides, per-address token limits, fail-open, and the
concurrency guarantee across two real server processes on Redis."""

import concurrent.futures
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.test import override_settings
from rest_framework.test import APIClient

from modelhub.accounts.limits import RateLimits
from modelhub.accounts.models import RateLimitOverride
from modelhub.api.ratelimit import MemoryLimiter, RedisLimiter, Window, reset_limiter
from tests.conftest import API, assert_error, bearer, needs_redis
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

ON = override_settings(RATE_LIMITS_ENABLED=True)


def limit(user, **fields):
    RateLimitOverride.objects.update_or_create(user=user, defaults=fields)


@ON
def test_every_api_response_carries_the_headers(client_for, personas):
    for response in (
        client_for("viewer").get(f"{API}/models"),
        client_for("viewer").get(f"{API}/nope"),
        APIClient().get(f"{API}/models"),  # 401, limited per address
        client_for("viewer").get(f"{API}/models?limit=500"),
    ):
        assert {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} <= set(response.headers), response
    response = client_for("viewer").get(f"{API}/models")
    # the tightest window for a fresh viewer is the 1-second burst window (30)
    assert response["X-RateLimit-Limit"] == "30" and int(response["X-RateLimit-Remaining"]) < 30


@ON
def test_over_the_limit_is_429_with_retry_after(client_for, personas):
    limit(personas["developer"], burst_limit=1000, requests_per_minute=3)
    client = client_for("developer")
    codes = [client.get(f"{API}/auth/me").status_code for _ in range(3)]
    assert codes == [200, 200, 200]
    refused = client.get(f"{API}/auth/me")
    error = assert_error(refused, 429, "RATE_LIMIT_EXCEEDED")
    assert error["details"]["window"] == "minute"
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert refused["X-RateLimit-Remaining"] == "0" and refused["X-RateLimit-Limit"] == "3"
    # another user has their own budget
    assert client_for("analyst").get(f"{API}/auth/me").status_code == 200


@ON
def test_endpoint_overrides_win_over_the_users_defaults(client_for, personas):
    limit(
        personas["analyst"],
        requests_per_minute=3,
        burst_limit=1000,
        endpoints={
            "GET /models": {"requestsPerMinute": 2, "burstLimit": 100},
            "GET /models/{id}": {"requestsPerMinute": 50, "burstLimit": 100},
        },
    )
    client = client_for("analyst")
    assert [client.get(f"{API}/models").status_code for _ in range(3)] == [200, 200, 429]
    # a higher override wins too: 10 detail reads although the user's default is 3 a minute
    from tests.factories import ModelRegistryFactory

    model = ModelRegistryFactory()
    assert {client.get(f"{API}/models/{model.pk}").status_code for _ in range(10)} == {200}
    # endpoints without an override use the defaults
    assert [client.get(f"{API}/auth/me").status_code for _ in range(4)] == [200, 200, 200, 429]


@ON
def test_token_requests_are_limited_per_client_address(personas):
    def attempt(addr):
        return APIClient(REMOTE_ADDR=addr).post(
            f"{API}/auth/token", {"username": "viewer", "password": "wrong"}, format="json"
        )

    time.sleep(1.02 - time.time() % 1)  # start just after a second boundary: six quick tries share one burst window
    codes = [attempt("10.9.8.7").status_code for _ in range(6)]
    assert codes == [401] * 5 + [429], codes  # burst of 5 per second for POST /auth/token
    assert attempt("10.9.8.6").status_code == 401  # another address is not affected
    # a correct password from the blocked address is refused too: guessing cannot go faster
    blocked = APIClient(REMOTE_ADDR="10.9.8.7").post(
        f"{API}/auth/token", {"username": "viewer", "password": PASSWORD}, format="json"
    )
    assert_error(blocked, 429, "RATE_LIMIT_EXCEEDED")


@ON
def test_get_rate_limits_shows_effective_limits_and_usage(client_for, personas):
    limit(
        personas["viewer"], requests_per_hour=500, endpoints={"GET /models": {"requestsPerMinute": 5, "burstLimit": 5}}
    )
    client = client_for("viewer")
    client.get(f"{API}/auth/me")
    body = client.get(f"{API}/rate-limits").json()
    assert body["limits"] == {
        "requestsPerMinute": 300,
        "requestsPerHour": 500,
        "requestsPerDay": 100000,
        "burstLimit": 30,
        "endpoints": {"GET /models": {"requestsPerMinute": 5, "burstLimit": 5}},
    }
    assert body["usage"]["hour"] == {
        "limit": 500,
        "used": 2,
        "remaining": 498,
        "resetSeconds": body["usage"]["hour"]["resetSeconds"],
    }
    assert body["enforced"] is True and set(body["usage"]) == {"burst", "minute", "hour", "day"}


def test_admins_manage_overrides(client_for, personas):
    target = personas["developer"]
    url = f"{API}/rate-limits/users/{target.pk}"
    admin = client_for("admin")
    assert admin.get(url).json()["override"] is None
    response = admin.patch(
        url,
        {"requestsPerMinute": 42, "endpoints": {"POST /models": {"requestsPerMinute": 1, "burstLimit": 1}}},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["effective"]["requestsPerMinute"] == 42
    assert response.json()["effective"]["requestsPerHour"] == 20000  # role default kept
    response = admin.patch(url, {"requestsPerMinute": None}, format="json")
    assert response.json()["effective"]["requestsPerMinute"] == 600
    assert response.json()["override"]["endpoints"] == {"POST /models": {"requestsPerMinute": 1, "burstLimit": 1}}
    response = admin.put(url, {"burstLimit": 7}, format="json")  # PUT replaces: endpoints cleared
    assert response.json()["override"]["endpoints"] == {} and response.json()["effective"]["burstLimit"] == 7
    assert admin.delete(url).status_code == 204 and admin.delete(url).status_code == 204
    assert admin.get(url).json()["override"] is None
    for body, field in [
        ({"requestsPerMinute": 0}, "requestsPerMinute"),
        ({"burstLimit": "x"}, "burstLimit"),
        ({"endpoints": {"models": {"requestsPerMinute": 1, "burstLimit": 1}}}, "endpoints"),
        (
            {"endpoints": {"GET /models": {"requestsPerMinute": 0, "burstLimit": 1}}},
            "endpoints.GET /models.requestsPerMinute",
        ),
    ]:
        error = assert_error(admin.patch(url, body, format="json"), 400, "INVALID_REQUEST")
        assert field in error["details"]["fields"], error
    assert_error(client_for("manager").patch(url, {"burstLimit": 7}, format="json"), 403, "FORBIDDEN")
    assert_error(admin.get(f"{API}/rate-limits/users/nope"), 404, "USER_NOT_FOUND")


@pytest.fixture(params=["memory", "redis"])
def limiter(request):
    if request.param == "memory":
        return MemoryLimiter()
    needs_redis()
    backend = RedisLimiter(settings.REDIS_URL)
    backend.reset()
    return backend


def test_windows_reset_on_time(limiter):
    windows = [Window("burst", 2, 1000, "rl:{t}:s"), Window("minute", 3, 60_000, "rl:{t}:m")]
    t0 = 1_800_000_000_000  # on a minute boundary
    assert [limiter.hit(windows, now_ms=t0 + i).allowed for i in range(3)] == [True, True, False]  # burst of 2
    assert limiter.hit(windows, now_ms=t0 + 1000).allowed  # next second: burst window reset
    refused = limiter.hit(windows, now_ms=t0 + 1001)
    assert not refused.allowed and refused.retry_after_seconds == 59  # minute full; a refused hit counts nowhere
    assert limiter.peek(windows, now_ms=t0 + 1002).states[1].used == 3
    assert limiter.hit(windows, now_ms=t0 + 60_000).allowed  # next minute


def test_burst_window_resets_in_real_time(limiter):
    windows = [Window("burst", 1, 1000, f"rl:{{rt{time.time_ns()}}}:s")]
    assert limiter.hit(windows).allowed
    refused = limiter.hit(windows)
    if not refused.allowed:  # (unless the second boundary fell between the two calls)
        time.sleep(refused.states[0].reset_ms / 1000 + 0.05)
    assert limiter.hit(windows).allowed


def test_reads_fail_open_and_writes_fail_closed_when_redis_is_unreachable(client_for, personas, caplog, settings):
    # Through the settings fixture only: an override_settings decorator enabled after the fixture's first change
    # would be captured by it as "the original" and restored - limits on - for every later test of the run.
    settings.RATE_LIMITS_ENABLED = True
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    reset_limiter()  # (Django rebuilds the cache handler itself when CACHES changes)
    with caplog.at_level("ERROR", logger="modelhub.ratelimit"):
        response = client_for("viewer").get(f"{API}/auth/me")
    assert response.status_code == 200 and "X-RateLimit-Limit" not in response  # reads fail open
    assert any("fail open" in r.getMessage() for r in caplog.records)
    # writes (a login included: no unlimited password guessing) fail closed until Redis is back
    refused = APIClient().post(f"{API}/auth/token", {"username": "viewer", "password": PASSWORD}, format="json")
    assert_error(refused, 503, "SERVICE_UNAVAILABLE")
    assert refused["Retry-After"] == "5"
    health = APIClient().get(f"{API}/health").json()
    assert health["checks"]["cache"]["status"] == "down"
    assert client_for("viewer").get(f"{API}/rate-limits").json()["enforced"] is False


# --- across processes -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(port: int, env: dict) -> subprocess.Popen:
    root = Path(__file__).resolve().parents[2]
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "modelhub.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--lifespan",
            "off",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_burst_of_200_admits_exactly_100_across_two_server_processes(personas):
    from django.db import connection

    needs_redis()
    if connection.vendor != "postgresql":
        pytest.skip("needs a database the server processes can share (PostgreSQL)")
    user = personas["developer"]
    limit(user, requests_per_minute=100, burst_limit=1000)
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{connection.settings_dict['USER']}@{connection.settings_dict['HOST']}:"
        f"{connection.settings_dict['PORT']}/{connection.settings_dict['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "SECRET_KEY": settings.SECRET_KEY,
        "JWT_SIGNING_KEY": settings.JWT_SIGNING_KEY,
        "DJANGO_SETTINGS_MODULE": "modelhub.settings",
        "RATE_LIMITS_ENABLED": "true",
        "DB_POOL_MIN_SIZE": "1",
        "DB_POOL_MAX_SIZE": "10",
        "LOG_LEVEL": "WARNING",
    }
    ports = [_free_port(), _free_port()]
    servers = [_start_server(port, env) for port in ports]
    try:
        deadline = time.monotonic() + 30
        for port in ports:
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}{API}/health", timeout=2).status_code in (200, 503):
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        # stay clear of a minute boundary, which would split the burst over two windows
        while time.time() % 60 > 50:
            time.sleep(0.5)
        headers = {"Authorization": bearer(user)}

        def call(i: int) -> int:
            return httpx.get(f"http://127.0.0.1:{ports[i % 2]}{API}/auth/me", headers=headers, timeout=30).status_code

        with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
            codes = list(pool.map(call, range(200)))
        assert codes.count(200) == 100 and codes.count(429) == 100, {c: codes.count(c) for c in set(codes)}
    finally:
        for server in servers:
            os.killpg(server.pid, 15)
        for server in servers:
            server.wait(timeout=10)


def test_rate_limits_dataclass_windows_use_endpoint_scopes():
    limits = RateLimits(10, 100, 1000, 5, {"GET /models": {"requestsPerMinute": 2, "burstLimit": 1}})
    default = limits.windows("u:1")
    scoped = limits.windows("u:1", "GET /models")
    assert [w.limit for w in default] == [5, 10, 100, 1000]
    assert [w.limit for w in scoped] == [1, 2, 100, 1000]
    assert scoped[2].key == default[2].key and scoped[1].key != default[1].key
