"""The one publish function every app uses for realtime events.

``publish(event, data)`` delivers ``{"event": event, "data": data}`` to every connected
client whose role may read that event (``EVENTS`` -> the role matrix in
:mod:`modelhub.roles`), once the current transaction commits. Clients are
grouped per permission in the channel layer (``realtime.<permission>``): the websocket
consumer (:mod:`modelhub.realtime.consumers`) joins its socket to them, the Socket.IO
server (:mod:`modelhub.realtime.sio`) joins one channel per process and fans out to its
rooms. With the Redis channel layer an event reaches clients on every ASGI process.

The envelope is encoded once here (orjson, the API's JSON conventions); consumers
forward the text as is.

Which event loop sends: the channel layer is asynchronous, and the hub's publishers are
synchronous (views on a2wsgi threads, Celery tasks, admin actions). Running each send in a
fresh event loop (``async_to_sync``) would open a new Redis connection per event, and
with the in-memory layer it would touch the server loop's queues from a foreign thread
without waking it. So a process that serves sockets records its loop (:func:`bind_loop`,
called by the ASGI entry point) and sends are handed to that loop thread-safely; a process
without one (a Celery worker, a script) gets one long-lived publisher loop thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import TimeoutError as FutureTimeoutError
from typing import Any

import orjson
from django.conf import settings
from django.db import transaction

from modelhub.roles import has_permission

logger = logging.getLogger(__name__)

# Spec event names -> the permission a client needs to receive them.
EVENTS: dict[str, str] = {
    "dashboard:update": "analytics.read",
    "alert:new": "analytics.read",
    "deployment:status": "deployments.read",
    "experiment:update": "experiments.read",
}


def group_name(permission: str) -> str:
    """Channel-layer group of the clients that hold ``permission`` (group names allow [a-zA-Z0-9_.-])."""
    return f"realtime.{permission}"


def user_group_name(user_id: Any) -> str:
    """Channel-layer group of one user's sockets: told to re-check the user when it changes."""
    return f"realtime.user.{str(user_id).replace('-', '')}"


def events_for_role(role: str | None) -> list[str]:
    """The events a role receives, in ``EVENTS`` order."""
    return [event for event, permission in EVENTS.items() if has_permission(role, permission)]


def groups_for_role(role: str | None) -> list[str]:
    """The permission groups a role's sockets join (one per distinct permission it holds)."""
    return sorted({group_name(permission) for permission in EVENTS.values() if has_permission(role, permission)})


def encode(event: str, data: Any) -> str:
    """The client envelope ``{"event", "data"}`` as JSON text, with the API's conventions
    (datetimes ISO 8601 UTC with ``Z``, decimals as numbers, UUIDs as strings)."""
    from modelhub.api.renderers import OrjsonRenderer

    return OrjsonRenderer().render({"event": event, "data": data}).decode()


def decode_data(text: str) -> Any:
    """The ``data`` of an envelope made by :func:`encode` (the Socket.IO server emits objects)."""
    return orjson.loads(text)["data"]


# --- Which loop sends ---------------------------------------------------------------------------

_home_loop: asyncio.AbstractEventLoop | None = None
_publisher: tuple[int, asyncio.AbstractEventLoop, threading.Thread] | None = None
_publisher_lock = threading.Lock()


def bind_loop() -> None:
    """Record the running loop as this process's socket-serving loop (cheap; call it per connection)."""
    global _home_loop
    loop = asyncio.get_running_loop()
    if _home_loop is not loop:
        _home_loop = loop


def _publisher_loop() -> asyncio.AbstractEventLoop:
    """A long-lived event loop on a daemon thread, for processes that serve no sockets (one per pid)."""
    global _publisher
    with _publisher_lock:
        if _publisher is not None and _publisher[0] == os.getpid() and _publisher[2].is_alive():
            return _publisher[1]
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="realtime-publisher", daemon=True)
        thread.start()
        _publisher = (os.getpid(), loop, thread)
        return loop


def _log_failure(what: str) -> Callable[[asyncio.Future], None]:
    def done(future: asyncio.Future) -> None:
        if not future.cancelled() and future.exception() is not None:
            logger.error("realtime %s failed", what, exc_info=future.exception())

    return done


def _run(make: Callable[[], Awaitable[None]], what: str) -> None:
    """Run ``make()`` on the right loop; never raises (a realtime outage must not fail the caller)."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    try:
        if running is not None:
            # Called from async code: schedule without blocking the loop (tasks start in order).
            running.create_task(make()).add_done_callback(_log_failure(what))
            return
        home = _home_loop
        loop = home if home is not None and home.is_running() else _publisher_loop()
        future = asyncio.run_coroutine_threadsafe(make(), loop)
        try:
            future.result(timeout=settings.REALTIME_PUBLISH_TIMEOUT_SECONDS)
        except FutureTimeoutError:
            future.cancel()
            logger.error("realtime %s timed out after %ss", what, settings.REALTIME_PUBLISH_TIMEOUT_SECONDS)
    except Exception:
        logger.exception("realtime %s failed", what)


def _layer():
    from channels.layers import get_channel_layer

    return get_channel_layer()


# --- Publishing ---------------------------------------------------------------------------------


def _check(event: str) -> str:
    if event not in EVENTS:
        raise ValueError(f"unknown realtime event {event!r}; known: {sorted(EVENTS)}")
    return EVENTS[event]


def send_now(event: str, data: dict[str, Any]) -> None:
    """Send immediately (no transaction hook); failures are logged, never raised into the caller."""
    group = group_name(_check(event))
    layer = _layer()
    if layer is None:
        return
    # "group" tells each process's fan-out which local sockets (or Socket.IO room) get it; "text" is
    # the envelope, encoded once here and written as is to every websocket.
    message = {"type": "realtime.event", "event": event, "group": group, "text": encode(event, data)}
    _run(lambda: layer.group_send(group, message), f"publish of {event}")


def publish(event: str, data: dict[str, Any]) -> None:
    """Publish ``event`` to every authorised client once the current transaction commits.

    ``data`` is encoded when the transaction commits; pass plain values (or ones the
    API's JSON renderer takes: datetimes, UUIDs, decimals).
    """
    _check(event)
    transaction.on_commit(lambda: send_now(event, data))


# Events sent to one user's sockets only (what the user holds), not to a role's group.
USER_EVENTS: frozenset[str] = frozenset({"entitlement:update"})


def publish_to_user(user_id: Any, event: str, data: dict[str, Any]) -> None:
    """Publish ``event`` to the sockets of one user (their ``user_group_name`` group) once the current
    transaction commits; both the websocket consumer and the Socket.IO rooms deliver it."""
    if event not in USER_EVENTS:
        raise ValueError(f"unknown per-user realtime event {event!r}; known: {sorted(USER_EVENTS)}")
    group = user_group_name(user_id)

    def send() -> None:
        layer = _layer()
        if layer is None:
            return
        message = {"type": "realtime.event", "event": event, "group": group, "text": encode(event, data)}
        _run(lambda: layer.group_send(group, message), f"publish of {event} to a user")

    transaction.on_commit(send)


def user_changed(user_id: Any) -> None:
    """Tell the user's open sockets to re-check them now (deactivated -> closed; new role -> new events)."""
    layer = _layer()
    if layer is None:
        return
    group = user_group_name(user_id)
    _run(lambda: layer.group_send(group, {"type": "realtime.revalidate", "group": group}), "revalidation")
