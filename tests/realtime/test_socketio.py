"""Socket.IO clients (python-socketio's AsyncClient, both transports) against a real uvicorn
serving modelhub.asgi:application: same authentication, same events from the same publish()."""

from __future__ import annotations

import asyncio

import pytest
import socketio
from django.db import transaction

from modelhub import realtime
from modelhub.accounts import services
from tests.realtime.conftest import NAMESPACE, run, token_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]  # a live uvicorn

EVENT = {"deploymentId": "d-9", "status": "scaling", "timestamp": "2025-01-01T00:00:00Z"}
LISTENED = ("auth:ok", "error", "deployment:status", "dashboard:update", "alert:new", "experiment:update")


class Client:
    """An AsyncClient that queues every event it receives on the namespace, in order."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: asyncio.Queue = asyncio.Queue()
        self.connect_errors: list = []
        self.disconnected = asyncio.Event()
        for name in LISTENED:
            self.sio.on(name, self._queue(name), namespace=NAMESPACE)
        self.sio.on("connect_error", self.connect_errors.append, namespace=NAMESPACE)
        self.sio.on("disconnect", lambda *reason: self.disconnected.set(), namespace=NAMESPACE)

    def _queue(self, name: str):
        async def handler(data=None):
            await self.events.put((name, data))

        return handler

    async def connect(self, url: str, *, auth=None, headers=None, transport: str = "websocket") -> None:
        await self.sio.connect(
            url, namespaces=[NAMESPACE], auth=auth, headers=headers or {}, transports=[transport], wait_timeout=5
        )

    async def next(self, timeout: float = 5) -> tuple[str, object]:
        return await asyncio.wait_for(self.events.get(), timeout)

    async def nothing(self, timeout: float = 0.3) -> bool:
        await asyncio.sleep(timeout)
        return self.events.empty()


def _publish(event: str, data: dict) -> None:
    with transaction.atomic():
        realtime.publish(event, data)


async def publish(event: str, data: dict) -> None:
    from asgiref.sync import sync_to_async

    await sync_to_async(_publish)(event, data)


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_receives_events_over_either_transport(live_server_url, personas, transport, monkeypatch):
    from modelhub.realtime.sio import server

    # A long-polling client's disconnect waits for its pending GET, which the server answers at
    # the next ping (25 s, then up to 20 s more); ping every second here so the test does not wait.
    monkeypatch.setattr(server.eio, "ping_interval", 1)
    monkeypatch.setattr(server.eio, "ping_timeout", 1)

    async def scenario():
        client = Client()
        await client.connect(live_server_url, auth={"token": token_for(personas["analyst"])}, transport=transport)
        await publish("deployment:status", EVENT)
        await publish("dashboard:update", {"overview": {"totalModels": 1}})
        assert await client.next() == ("deployment:status", EVENT)
        assert await client.next() == ("dashboard:update", {"overview": {"totalModels": 1}})
        await client.sio.disconnect()

    run(scenario)


def test_viewers_do_not_get_analytics_events(live_server_url, personas):
    async def scenario():
        viewer = Client()
        await viewer.connect(live_server_url, auth={"token": token_for(personas["viewer"])})
        await publish("dashboard:update", {"overview": {}})
        await publish("alert:new", {"id": "a", "type": "t", "severity": "critical", "message": "m"})
        await publish("deployment:status", EVENT)
        assert await viewer.next() == ("deployment:status", EVENT)
        assert await viewer.nothing()
        await viewer.sio.disconnect()

    run(scenario)


@pytest.mark.parametrize("where", ["header", "query"])
def test_token_from_the_header_or_query(live_server_url, personas, where):
    token = token_for(personas["developer"])

    async def scenario():
        client = Client()
        if where == "header":
            await client.connect(live_server_url, headers={"Authorization": f"Bearer {token}"})
        else:
            await client.connect(f"{live_server_url}?token={token}")
        await publish("experiment:update", {"experimentId": "e", "status": "completed"})
        assert await client.next() == ("experiment:update", {"experimentId": "e", "status": "completed"})
        await client.sio.disconnect()

    run(scenario)


@pytest.mark.parametrize(
    "auth, code",
    [
        (None, "UNAUTHORIZED"),
        ({"token": "garbage"}, "UNAUTHORIZED"),
        ("expired", "TOKEN_EXPIRED"),
        ("inactive", "UNAUTHORIZED"),
    ],
    ids=["no-token", "garbage", "expired", "inactive"],
)
def test_refused_connections_carry_the_error_envelope(live_server_url, personas, auth, code):
    if auth == "expired":
        auth = {"token": token_for(personas["viewer"], seconds=-5)}
    elif auth == "inactive":
        auth = {"token": token_for(personas["viewer"])}
        services.user_update(actor=personas["admin"], user=personas["viewer"], is_active=False)

    async def scenario():
        client = Client()
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(live_server_url, auth=auth)
        assert len(client.connect_errors) == 1, client.connect_errors
        refusal = client.connect_errors[0]
        assert refusal["data"]["error"]["code"] == code, refusal
        assert {"code", "message", "timestamp", "requestId"} <= set(refusal["data"]["error"])

    run(scenario)


def test_foreign_origins_are_refused(live_server_url, personas, settings):
    settings.ALLOWED_HOSTS = ["hub.example.com", "127.0.0.1"]
    token = token_for(personas["viewer"])

    async def scenario():
        refused = Client()
        with pytest.raises(socketio.exceptions.ConnectionError):
            await refused.connect(live_server_url, auth={"token": token}, headers={"Origin": "https://evil.example"})
        allowed = Client()
        await allowed.connect(live_server_url, auth={"token": token}, headers={"Origin": "https://hub.example.com"})
        await allowed.sio.disconnect()

    run(scenario)


def test_disconnected_when_the_token_expires_unless_renewed(live_server_url, personas):
    async def scenario():
        short = Client()
        await short.connect(live_server_url, auth={"token": token_for(personas["viewer"], seconds=2)})
        renewed = Client()
        await renewed.connect(live_server_url, auth={"token": token_for(personas["viewer"], seconds=2)})
        ack = await renewed.sio.call(
            "auth", {"token": token_for(personas["viewer"], seconds=60)}, namespace=NAMESPACE, timeout=5
        )
        assert ack["role"] == "viewer" and ack["events"] == ["deployment:status", "experiment:update"]
        name, data = await short.next(timeout=4)
        assert name == "error" and data["error"]["code"] == "TOKEN_EXPIRED"
        await asyncio.wait_for(short.disconnected.wait(), 3)
        assert not renewed.disconnected.is_set()
        await publish("deployment:status", EVENT)
        assert await renewed.next() == ("deployment:status", EVENT)
        await renewed.sio.disconnect()

    run(scenario)


def test_a_bad_reauth_disconnects(live_server_url, personas):
    async def scenario():
        client = Client()
        await client.connect(live_server_url, auth={"token": token_for(personas["viewer"])})
        ack = await client.sio.call("auth", {"token": "garbage"}, namespace=NAMESPACE, timeout=5)
        assert ack["error"]["code"] == "UNAUTHORIZED"
        name, data = await client.next()
        assert name == "error" and data["error"]["code"] == "UNAUTHORIZED"
        await asyncio.wait_for(client.disconnected.wait(), 3)

    run(scenario)


def test_unknown_events_get_an_error(live_server_url, personas):
    async def scenario():
        client = Client()
        await client.connect(live_server_url, auth={"token": token_for(personas["viewer"])})
        await client.sio.emit("subscribe", {"room": "everything"}, namespace=NAMESPACE)
        name, data = await client.next()
        assert name == "error" and data["error"]["code"] == "INVALID_REQUEST"
        assert data["error"]["details"] == {"allowedEvents": ["auth"]}
        assert client.sio.connected
        await client.sio.disconnect()

    run(scenario)


def test_deactivation_and_role_changes_apply_to_open_connections(live_server_url, personas):
    def update(**fields) -> None:
        services.user_update(actor=personas["admin"], user=personas["viewer"], **fields)

    async def scenario():
        from asgiref.sync import sync_to_async

        client = Client()
        await client.connect(live_server_url, auth={"token": token_for(personas["viewer"])})
        await sync_to_async(update)(role="analyst")
        name, data = await client.next()
        assert name == "auth:ok" and data["role"] == "analyst"
        await publish("alert:new", {"id": "a", "type": "t", "severity": "warning", "message": "m"})
        assert (await client.next())[0] == "alert:new"
        await sync_to_async(update)(is_active=False)
        name, data = await client.next()
        assert name == "error" and data["error"]["code"] == "UNAUTHORIZED"
        await asyncio.wait_for(client.disconnected.wait(), 3)

    run(scenario)


def test_many_clients_share_one_room_per_group_in_the_fan_out(live_server_url, personas):
    """Every client gets each event once; a room leaves the process's fan-out with its last client."""
    from modelhub.realtime.fanout import hub
    from modelhub.realtime.sio import namespace

    async def scenario():
        clients = [Client() for _ in range(5)]
        for i, client in enumerate(clients):
            role = "analyst" if i % 2 else "viewer"
            await client.connect(live_server_url, auth={"token": token_for(personas[role])})
        await publish("deployment:status", EVENT)
        for client in clients:
            assert await client.next() == ("deployment:status", EVENT)
            assert await client.nothing(0.05)
        deployments, analytics = realtime.group_name("deployments.read"), realtime.group_name("analytics.read")
        assert namespace.rooms[deployments].clients == 5 and namespace.rooms[analytics].clients == 2
        assert hub.local_members(deployments) == 1  # the room, not its five clients
        for client in clients:
            await client.sio.disconnect()
        await asyncio.sleep(0.3)
        assert not namespace.rooms
        assert hub.local_members(deployments) == 0

    run(scenario)
