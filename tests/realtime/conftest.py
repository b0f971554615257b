"""Realtime test helpers: tokens with chosen lifetimes, the websocket communicator, a live server.

Async scenarios run through ``async_to_sync`` from the (sync) test: ``database_sync_to_async``
then runs on the test's own thread, inside the test's transaction, so plain ``django_db``
tests see their fixtures from the consumer.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
import time
import types
from datetime import timedelta
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from rest_framework_simplejwt.tokens import AccessToken

REALTIME_PATH = "/modelhub/realtime"
NAMESPACE = "/modelhub/realtime"


def _websocket_communicator():
    """channels.testing's ``__init__`` imports daphne for ChannelsLiveServerTestCase, which the hub
    does not use (django/channels#1942); load the real communicator without that package init."""
    try:
        from channels.testing import WebsocketCommunicator

        return WebsocketCommunicator
    except ModuleNotFoundError as exc:
        if exc.name != "daphne":
            raise
    import channels

    package = types.ModuleType("channels.testing")
    package.__path__ = [str(Path(channels.__file__).parent / "testing")]
    sys.modules["channels.testing"] = package
    from channels.testing.websocket import WebsocketCommunicator

    return WebsocketCommunicator


WebsocketCommunicator = _websocket_communicator()


def token_for(user, seconds: float | None = None) -> str:
    """An access token for ``user``; ``seconds`` sets its lifetime (negative: already expired).
    ``exp`` is whole seconds (rounded down), so a lifetime of ``n`` leaves between ``n - 1`` and ``n``."""
    token = AccessToken.for_user(user)
    if seconds is not None:
        token.set_exp(lifetime=timedelta(seconds=seconds))
    return str(token)


def run(scenario) -> None:
    """Run an async scenario from a sync test (see the module docstring)."""
    async_to_sync(scenario)()


def communicator(path: str = REALTIME_PATH, headers: list[tuple[bytes, bytes]] | None = None):
    from modelhub.asgi import application

    return WebsocketCommunicator(application, path, headers=headers or [])


@pytest.fixture(autouse=True)
def _fresh_in_memory_layer():
    """The in-memory layer's queues belong to the event loop of the test that made them."""
    from channels.layers import channel_layers

    def reset() -> None:
        if settings.CHANNEL_LAYERS["default"]["BACKEND"] == "channels.layers.InMemoryChannelLayer":
            channel_layers.backends.clear()

    reset()
    yield
    reset()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """``modelhub.asgi:application`` served by a real uvicorn on a thread of the test process
    (so it shares the test database, SQLite in-memory included, and the in-memory channel layer)."""

    def __init__(self) -> None:
        import uvicorn

        from modelhub.asgi import application

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            application,
            host="127.0.0.1",
            port=self.port,
            lifespan="off",
            log_level="warning",
            access_log=False,
            ws_ping_interval=None,
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="live-uvicorn", daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture
def live_server_url(transactional_db):
    with LiveServer() as server:
        yield server.url


async def next_event(queue: asyncio.Queue, timeout: float = 5) -> tuple[str, object]:
    return await asyncio.wait_for(queue.get(), timeout)
