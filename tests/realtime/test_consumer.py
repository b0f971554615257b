"""The websocket endpoint with channels' WebsocketCommunicator against modelhub.asgi:application
(the real dispatcher, Origin check, consumer and channel layer: in-memory, or Redis when REDIS_URL is set).

Transactional tests: the consumer reads the database through ``database_sync_to_async``, which
closes connections around each call as in production (and a pooled PostgreSQL connection cannot
be closed inside the test's wrapping transaction); publish() fires on real commits.

Longer than 350 lines on purpose: one consumer, tested through every way in (auth, origin,
events per role, expiry, re-authentication, fan-out); the shared communicator fixtures sit in conftest.py.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from django.db import transaction
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from modelhub import realtime
from modelhub.accounts import services
from tests.realtime.conftest import REALTIME_PATH, communicator, run, token_for

pytestmark = pytest.mark.django_db(transaction=True)

EVENT = {"deploymentId": "d-1", "status": "running", "timestamp": "2025-01-01T00:00:00Z"}


async def connected(headers=None, path: str = REALTIME_PATH):
    ws = communicator(path, headers)
    ok, _ = await ws.connect()
    assert ok
    return ws


async def authenticated(user, how: str = "header"):
    token = token_for(user)
    if how == "header":
        ws = await connected([(b"authorization", f"Bearer {token}".encode())])
    elif how == "query":
        ws = await connected(path=f"{REALTIME_PATH}?token={token}")
    else:
        ws = await connected()
        await ws.send_json_to({"type": "auth", "token": token})
    hello = await ws.receive_json_from(timeout=5)
    assert hello["event"] == "auth:ok", hello
    return ws, hello["data"]


async def closed_with(ws, code: int, error_code: str | None = None) -> dict | None:
    """The socket sends an error event (when ``error_code``) and then closes with ``code``."""
    error = None
    if error_code is not None:
        message = await ws.receive_json_from(timeout=5)
        assert message["event"] == "error", message
        error = message["data"]["error"]
        assert error["code"] == error_code, error
        assert {"code", "message", "timestamp", "requestId"} <= set(error)
    close = await ws.receive_output(timeout=5)
    assert close == {"type": "websocket.close", "code": code}, close
    return error


def publish_committed(event: str, data: dict) -> None:
    """publish() as a service calls it: inside a transaction, delivered when it commits."""
    with transaction.atomic():
        realtime.publish(event, data)


async def publish(event: str, data: dict) -> None:
    await database_sync_to_async(publish_committed)(event, data)


# --- authentication -------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["header", "query", "message"])
def test_authenticates_by_header_query_or_first_message(personas, how):
    async def scenario():
        ws, hello = await authenticated(personas["analyst"], how)
        assert hello["userId"] == str(personas["analyst"].pk) and hello["role"] == "analyst"
        assert hello["events"] == ["dashboard:update", "alert:new", "deployment:status", "experiment:update"]
        assert hello["expiresAt"].endswith("Z")
        await publish("deployment:status", EVENT)
        assert await ws.receive_json_from(timeout=5) == {"event": "deployment:status", "data": EVENT}
        await ws.disconnect()

    run(scenario)


def test_the_api_prefixed_path_is_the_same_endpoint(personas):
    async def scenario():
        ws = await connected(
            [(b"authorization", f"Bearer {token_for(personas['viewer'])}".encode())], path="/api/v1/modelhub/realtime"
        )
        assert (await ws.receive_json_from(timeout=5))["event"] == "auth:ok"
        await ws.disconnect()
        other = communicator("/modelhub/elsewhere")
        ok, _ = await other.connect()
        assert not ok

    run(scenario)


def _forged() -> str:
    import jwt

    return jwt.encode({"token_type": "access", "exp": 9999999999, "jti": "x", "user_id": "nobody"}, "k" * 40, "HS256")


@pytest.mark.parametrize(
    "make_token, code",
    [
        (lambda user: token_for(user, seconds=-5), "TOKEN_EXPIRED"),
        (lambda user: "not-a-jwt", "UNAUTHORIZED"),
        (lambda user: _forged(), "UNAUTHORIZED"),
        (lambda user: str(RefreshToken.for_user(user)), "UNAUTHORIZED"),  # wrong type
    ],
    ids=["expired", "garbage", "forged", "refresh-token"],
)
@pytest.mark.parametrize("how", ["header", "message"])
def test_bad_tokens_get_an_error_and_close_4401(personas, make_token, code, how):
    token = make_token(personas["developer"])

    async def scenario():
        if how == "header":
            ws = await connected([(b"authorization", f"Bearer {token}".encode())])
        else:
            ws = await connected()
            await ws.send_json_to({"type": "auth", "token": token})
        await closed_with(ws, 4401, code)

    run(scenario)


def test_a_blacklisted_token_is_refused(personas):
    """The rule of POST auth/token/verify: a token whose jti is on simplejwt's blacklist is revoked."""
    user = personas["developer"]
    access = AccessToken.for_user(user)
    outstanding = OutstandingToken.objects.create(
        user=user, jti=access["jti"], token=str(access), expires_at=access.current_time + access.lifetime
    )
    BlacklistedToken.objects.create(token=outstanding)

    async def scenario():
        ws = await connected([(b"authorization", f"Bearer {access}".encode())])
        error = await closed_with(ws, 4401, "UNAUTHORIZED")
        assert "revoked" in error["message"]

    run(scenario)


def test_inactive_or_deleted_users_are_refused(personas):
    inactive, deleted = personas["viewer"], personas["outsider"]
    tokens = [token_for(inactive), token_for(deleted)]
    inactive.is_active = False
    inactive.save()
    deleted.delete()

    async def scenario():
        for token in tokens:
            ws = await connected(path=f"{REALTIME_PATH}?token={token}")
            await closed_with(ws, 4401, "UNAUTHORIZED")

    run(scenario)


def test_no_token_within_the_timeout_closes(personas, settings):
    settings.REALTIME_AUTH_TIMEOUT_SECONDS = 0.3

    async def scenario():
        ws = await connected()
        await ws.send_json_to({"type": "ping"})  # allowed before auth; does not authenticate
        assert await ws.receive_json_from() == {"event": "pong", "data": {}}
        error = await closed_with(ws, 4401, "UNAUTHORIZED")
        assert "0.3 s" in error["message"]

    run(scenario)


def test_nothing_is_delivered_before_authentication(personas):
    async def scenario():
        ws = await connected()
        await publish("deployment:status", EVENT)
        assert await ws.receive_nothing(timeout=0.3)
        await ws.disconnect()

    run(scenario)


# --- origin ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin, admitted",
    [
        (None, True),  # not a browser (CLI, server): allowed, still needs a token
        (b"https://hub.example.com", True),
        (b"http://hub.example.com:3000", True),
        (b"https://evil.example", False),
        (b"null", False),
        (b"https://hub.example.com.evil.example", False),
    ],
)
def test_origin_must_be_an_allowed_host(personas, settings, origin, admitted):
    settings.ALLOWED_HOSTS = ["hub.example.com"]
    headers = [(b"authorization", f"Bearer {token_for(personas['viewer'])}".encode())]
    if origin is not None:
        headers.append((b"origin", origin))

    async def scenario():
        ws = communicator(headers=headers)
        ok, _ = await ws.connect()
        assert ok is admitted
        if ok:
            assert (await ws.receive_json_from(timeout=5))["event"] == "auth:ok"
            await ws.disconnect()

    run(scenario)


# --- who receives what ----------------------------------------------------------------------------


def test_each_role_receives_only_what_it_may_read(personas):
    dashboard = {"overview": {"totalModels": 3}}
    alert = {"id": "a-1", "type": "latency", "severity": "warning", "message": "slow"}
    experiment = {"experimentId": "e-1", "status": "running"}

    async def scenario():
        analyst, _ = await authenticated(personas["analyst"])
        viewer, hello = await authenticated(personas["viewer"])
        assert hello["events"] == ["deployment:status", "experiment:update"]
        await publish("dashboard:update", dashboard)
        await publish("alert:new", alert)
        await publish("deployment:status", EVENT)
        await publish("experiment:update", experiment)
        received = [await analyst.receive_json_from(timeout=5) for _ in range(4)]
        assert received == [
            {"event": "dashboard:update", "data": dashboard},
            {"event": "alert:new", "data": alert},
            {"event": "deployment:status", "data": EVENT},
            {"event": "experiment:update", "data": experiment},
        ]
        # published in the same order: the viewer's first two messages skip dashboard and alert
        assert await viewer.receive_json_from(timeout=5) == {"event": "deployment:status", "data": EVENT}
        assert await viewer.receive_json_from(timeout=5) == {"event": "experiment:update", "data": experiment}
        assert await viewer.receive_nothing(timeout=0.2)
        await analyst.disconnect()
        await viewer.disconnect()

    run(scenario)


def test_payloads_are_encoded_like_the_api(personas):
    import datetime
    import uuid
    from decimal import Decimal

    ident = uuid.uuid4()
    when = datetime.datetime(2025, 3, 1, 12, 30, tzinfo=datetime.UTC)

    async def scenario():
        ws, _ = await authenticated(personas["manager"])
        await publish(
            "deployment:status",
            {"deploymentId": ident, "status": "running", "timestamp": when, "details": {"cost": Decimal("0.25")}},
        )
        message = await ws.receive_json_from(timeout=5)
        assert message == {
            "event": "deployment:status",
            "data": {
                "deploymentId": str(ident),
                "status": "running",
                "timestamp": "2025-03-01T12:30:00Z",
                "details": {"cost": 0.25},
            },
        }
        await ws.disconnect()

    run(scenario)


# --- after commit only ----------------------------------------------------------------------------


def test_published_only_when_the_transaction_commits(personas):
    class Boom(Exception):
        pass

    def rolled_back() -> None:
        try:
            with transaction.atomic():
                realtime.publish("deployment:status", {**EVENT, "status": "rolled-back"})
                raise Boom
        except Boom:
            pass

    def committed() -> None:
        with transaction.atomic():
            realtime.publish("deployment:status", {**EVENT, "status": "committed"})

    async def scenario():
        ws, _ = await authenticated(personas["developer"])
        await database_sync_to_async(rolled_back)()
        assert await ws.receive_nothing(timeout=0.3)
        await database_sync_to_async(committed)()
        message = await ws.receive_json_from(timeout=5)
        assert message["data"]["status"] == "committed"
        assert await ws.receive_nothing(timeout=0.2)
        await ws.disconnect()

    run(scenario)


# --- expiry and re-authentication -----------------------------------------------------------------


def test_closed_when_the_token_expires(personas):
    async def scenario():
        ws = await connected([(b"authorization", f"Bearer {token_for(personas['viewer'], seconds=2)}".encode())])
        assert (await ws.receive_json_from(timeout=5))["event"] == "auth:ok"
        message = await ws.receive_json_from(timeout=4)
        assert message["event"] == "error" and message["data"]["error"]["code"] == "TOKEN_EXPIRED"
        assert await ws.receive_output(timeout=2) == {"type": "websocket.close", "code": 4401}

    run(scenario)


def test_a_fresh_auth_message_before_expiry_keeps_the_socket_open(personas):
    async def scenario():
        ws = await connected([(b"authorization", f"Bearer {token_for(personas['viewer'], seconds=2)}".encode())])
        assert (await ws.receive_json_from(timeout=5))["event"] == "auth:ok"
        await ws.send_json_to({"type": "auth", "token": token_for(personas["viewer"], seconds=60)})
        renewed = await ws.receive_json_from(timeout=5)
        assert renewed["event"] == "auth:ok"
        assert await ws.receive_nothing(timeout=3.2)  # past the first token's expiry (at most 2 s away)
        await publish("deployment:status", EVENT)
        assert (await ws.receive_json_from(timeout=5))["event"] == "deployment:status"
        # a bad token in a re-auth closes the socket, like a bad first token
        await ws.send_json_to({"type": "auth", "token": "garbage"})
        await closed_with(ws, 4401, "UNAUTHORIZED")

    run(scenario)


# --- changes to the user while connected ------------------------------------------------------------


def _update(actor, user, **fields) -> None:
    services.user_update(actor=actor, user=user, **fields)


def test_deactivation_closes_open_sockets(personas):
    async def scenario():
        ws, _ = await authenticated(personas["viewer"])
        other, _ = await authenticated(personas["analyst"])
        await database_sync_to_async(_update)(personas["admin"], personas["viewer"], is_active=False)
        await closed_with(ws, 4401, "UNAUTHORIZED")
        assert await other.receive_nothing(timeout=0.2)  # other users are not affected
        await other.disconnect()

    run(scenario)


def test_a_role_change_changes_the_events_at_once(personas):
    async def scenario():
        ws, hello = await authenticated(personas["viewer"])
        assert "dashboard:update" not in hello["events"]
        await database_sync_to_async(_update)(personas["admin"], personas["viewer"], role="analyst")
        renewed = await ws.receive_json_from(timeout=5)
        assert renewed["event"] == "auth:ok" and renewed["data"]["role"] == "analyst"
        await publish("dashboard:update", {"overview": {}})
        assert await ws.receive_json_from(timeout=5) == {"event": "dashboard:update", "data": {"overview": {}}}
        await database_sync_to_async(_update)(personas["admin"], personas["viewer"], role="viewer")
        assert (await ws.receive_json_from(timeout=5))["data"]["role"] == "viewer"
        await publish("dashboard:update", {"overview": {}})
        await publish("deployment:status", EVENT)
        assert (await ws.receive_json_from(timeout=5))["event"] == "deployment:status"
        await ws.disconnect()

    run(scenario)


# --- inbound messages -----------------------------------------------------------------------------


def test_ping_and_unknown_messages(personas):
    async def scenario():
        ws, _ = await authenticated(personas["viewer"])
        await ws.send_json_to({"type": "ping"})
        assert await ws.receive_json_from() == {"event": "pong", "data": {}}
        for bad in ('{"type": "subscribe"}', "not json", "[1, 2]", '{"no": "type"}'):
            await ws.send_to(text_data=bad)
            message = await ws.receive_json_from()
            assert message["event"] == "error" and message["data"]["error"]["code"] == "INVALID_REQUEST", message
            assert message["data"]["error"]["details"] == {"allowedTypes": ["auth", "ping"]}
        await ws.send_to(bytes_data=b"\x00\x01")
        assert (await ws.receive_json_from())["data"]["error"]["code"] == "INVALID_REQUEST"
        await ws.send_json_to({"type": "ping"})  # still open
        assert await ws.receive_json_from() == {"event": "pong", "data": {}}
        await ws.disconnect()

    run(scenario)


def test_oversized_messages_close_1009(personas, settings):
    async def scenario():
        ws, _ = await authenticated(personas["viewer"])
        await ws.send_to(text_data=json.dumps({"type": "ping", "pad": "x" * settings.REALTIME_MAX_MESSAGE_BYTES}))
        error = await closed_with(ws, 1009, "INVALID_REQUEST")
        assert error["details"] == {"maxBytes": settings.REALTIME_MAX_MESSAGE_BYTES}

    run(scenario)


def test_too_many_messages_close_4429(personas, settings):
    settings.REALTIME_INBOUND_BURST = 3
    settings.REALTIME_INBOUND_PER_SECOND = 0.5

    async def scenario():
        ws, _ = await authenticated(personas["viewer"])
        for _ in range(3):
            await ws.send_json_to({"type": "ping"})
            assert (await ws.receive_json_from())["event"] == "pong"
        await ws.send_json_to({"type": "ping"})
        await closed_with(ws, 4429, "RATE_LIMIT_EXCEEDED")

    run(scenario)


def test_error_request_id_is_the_connection_id(personas):
    async def scenario():
        ws = await connected([(b"x-request-id", b"conn-42")])
        await ws.send_json_to({"type": "nope"})
        assert (await ws.receive_json_from())["data"]["error"]["requestId"] == "conn-42"
        await ws.disconnect()

    run(scenario)


def test_publish_refuses_unknown_events():
    with pytest.raises(ValueError, match="unknown realtime event"):
        realtime.publish("deployment:stats", {})
    with pytest.raises(ValueError, match="unknown realtime event"):
        realtime.send_now("dashboard", {})


def test_send_now_from_async_code_does_not_block(personas):
    """Called inside the event loop (an async consumer, say), send_now schedules instead of blocking."""

    async def scenario():
        ws, _ = await authenticated(personas["viewer"])
        realtime.send_now("deployment:status", EVENT)
        assert await ws.receive_json_from(timeout=5) == {"event": "deployment:status", "data": EVENT}
        await ws.disconnect()

    run(scenario)


def test_timers_are_cancelled_on_disconnect(personas, settings, monkeypatch):
    """Disconnecting cancels the socket's timers: the auth deadline of an unauthenticated socket and
    the token expiry of an authenticated one never fire (``fail``) on a closed consumer."""
    from modelhub.realtime import consumers

    settings.REALTIME_AUTH_TIMEOUT_SECONDS = 0.2
    timers: list[asyncio.Task] = []
    failures: list[tuple] = []
    start_timer, fail = consumers._background, consumers.RealtimeConsumer.fail

    def recording_timer(coro):
        task = start_timer(coro)
        timers.append(task)
        return task

    async def recording_fail(self, *args, **kwargs):
        failures.append(args)
        await fail(self, *args, **kwargs)

    monkeypatch.setattr(consumers, "_background", recording_timer)
    monkeypatch.setattr(consumers.RealtimeConsumer, "fail", recording_fail)

    async def scenario():
        anonymous = await connected()
        expiring = await connected([(b"authorization", f"Bearer {token_for(personas['viewer'], seconds=2)}".encode())])
        assert (await expiring.receive_json_from(timeout=5))["event"] == "auth:ok"
        assert len(timers) >= 2  # the auth deadline, the token expiry
        await anonymous.disconnect()
        await expiring.disconnect()
        await asyncio.sleep(2.3)  # past the auth deadline (0.2 s) and the token's expiry (at most 2 s)
        assert all(task.cancelled() for task in timers), [task for task in timers if not task.cancelled()]
        assert failures == []

    run(scenario)


def test_send_now_from_another_thread_wakes_the_loop_at_once(personas):
    """A request thread or an in-process worker publishes while the socket's loop is idle: the send
    is handed to that loop thread-safely (with the in-memory layer, a send from a foreign thread
    would sit in the queue until something else woke the loop)."""
    import threading
    import time

    async def scenario():
        ws, _ = await authenticated(personas["viewer"])
        thread = threading.Thread(target=realtime.send_now, args=("deployment:status", EVENT))
        started = time.monotonic()
        thread.start()
        assert await ws.receive_json_from(timeout=2) == {"event": "deployment:status", "data": EVENT}
        assert time.monotonic() - started < 1
        thread.join()
        await ws.disconnect()

    run(scenario)


def test_a_client_that_does_not_read_is_closed_1013(personas, settings):
    """Events wait in the socket's own outbox; past REALTIME_MAX_PENDING_MESSAGES it is dropped
    (one slow reader never holds up the others)."""
    from modelhub.realtime.fanout import hub

    settings.REALTIME_MAX_PENDING_MESSAGES = 2
    group = realtime.group_name("deployments.read")
    message = {
        "type": "realtime.event",
        "event": "deployment:status",
        "group": group,
        "text": realtime.encode("deployment:status", EVENT),
    }

    async def scenario():
        slow, _ = await authenticated(personas["viewer"])
        other, _ = await authenticated(personas["analyst"])
        consumers = {member.session.username: member for member in hub.members[group]}
        for _ in range(3):  # faster than the writer can run: nothing yields in between
            consumers["viewer"].deliver(message)
        assert await slow.receive_output(timeout=5) == {"type": "websocket.close", "code": 1013}
        consumers["analyst"].deliver(message)
        assert await other.receive_json_from(timeout=5) == {"event": "deployment:status", "data": EVENT}
        await other.disconnect()

    run(scenario)


def test_sockets_share_one_channel_per_process(personas):
    from modelhub.realtime.fanout import hub

    async def scenario():
        sockets = [(await authenticated(personas[role]))[0] for role in ("viewer", "analyst", "admin")]
        assert hub.local_members(realtime.group_name("deployments.read")) == 3
        assert hub.local_members(realtime.group_name("analytics.read")) == 2
        await publish("deployment:status", EVENT)
        for ws in sockets:
            assert await ws.receive_json_from(timeout=5) == {"event": "deployment:status", "data": EVENT}
            await ws.disconnect()
        assert hub.local_members(realtime.group_name("deployments.read")) == 0

    run(scenario)


def test_an_unreachable_channel_layer_never_fails_the_publisher(settings, caplog):
    """Realtime is best effort: with Redis unreachable, send_now logs and returns within its timeout."""
    import time

    from channels.layers import channel_layers

    settings.REALTIME_PUBLISH_TIMEOUT_SECONDS = 0.5
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"], "prefix": "unreachable"},
        }
    }
    channel_layers.backends.clear()
    try:
        started = time.monotonic()
        realtime.send_now("deployment:status", EVENT)
        assert time.monotonic() - started < 2
        assert any("realtime publish of deployment:status" in r.getMessage() for r in caplog.records), caplog.text
    finally:
        channel_layers.backends.clear()
