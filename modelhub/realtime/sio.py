"""Socket.IO clients: ``io('/modelhub/realtime', {auth: {token}})`` as the spec shows.

python-socketio speaks the protocol (Engine.IO v4 / Socket.IO v5: long-polling and
websocket) on the default path ``/socket.io/``; ``modelhub.asgi`` routes that path here.
The namespace ``/modelhub/realtime`` follows the websocket endpoint's rules: the same
authentication (``auth.token`` in the connect payload, or ``Authorization: Bearer``, or
``?token=``), the same events for the same roles, the close at token expiry, re-auth
with an ``auth`` event.

Events come from the same publish function: one Socket.IO room per channel-layer group
(one per permission, one per user), and each room with a client on this process is a member
of the process's fan-out (:mod:`modelhub.realtime.fanout`), which emits each event once to
the room. So Socket.IO clients on any process get events published anywhere, through the
Redis channel layer, and the embedded single process works the same on the in-memory
layer; python-socketio's own Redis manager would be a second, separate pub/sub path.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import socketio
from channels.db import database_sync_to_async
from django.conf import settings

from modelhub import metrics, realtime
from modelhub.api.exceptions import ErrorCode
from modelhub.api.request_id import resolve_request_id
from modelhub.realtime.auth import (
    AuthFailure,
    Session,
    TokenBucket,
    authenticate,
    bearer_token,
    error_envelope,
    origin_allowed,
    query_token,
    revalidate,
)
from modelhub.realtime.fanout import hub

logger = logging.getLogger(__name__)

NAMESPACE = "/modelhub/realtime"
SOCKETIO_PATH = "/socket.io/"
CLIENT_EVENTS = ("auth",)  # events a client may emit (besides Socket.IO's own connect/disconnect)


class _Client:
    """Per-connection state of one Socket.IO client."""

    def __init__(self, session: Session, connection_id: str):
        self.session = session
        self.connection_id = connection_id
        self.bucket = TokenBucket.from_settings()
        self.expiry: asyncio.Task | None = None
        self.closing = False


class _Room:
    """One Socket.IO room (a channel-layer group) as a member of the process's fan-out:
    each event is emitted once to the room (python-socketio encodes the packet once)."""

    def __init__(self, namespace: RealtimeNamespace, group: str):
        self.namespace = namespace
        self.group = group
        self.clients = 0

    def deliver(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "realtime.event":
            coro = self.namespace.emit(message["event"], realtime.decode_data(message["text"]), room=self.group)
        elif kind == "realtime.revalidate":
            coro = self.namespace.revalidate_room(self.group)
        else:
            return
        task = asyncio.create_task(coro)
        self.namespace.pending.add(task)
        task.add_done_callback(self.namespace.finished)


class RealtimeNamespace(socketio.AsyncNamespace):
    """The ``/modelhub/realtime`` namespace: authenticated clients in their permission rooms."""

    def __init__(self, namespace: str = NAMESPACE):
        super().__init__(namespace)
        self.clients: dict[str, _Client] = {}
        self.rooms: dict[str, _Room] = {}  # this process's rooms with at least one client
        self.rooms_loop: asyncio.AbstractEventLoop | None = None  # the fan-out starts afresh per loop too
        self.pending: set[asyncio.Task] = set()  # emits in flight (referenced until done)

    # --- Socket.IO handlers --------------------------------------------------------------------

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        realtime.bind_loop()
        connection_id = resolve_request_id(environ.get("HTTP_X_REQUEST_ID"))
        token = auth.get("token") if isinstance(auth, dict) else None
        token = token or bearer_token(environ.get("HTTP_AUTHORIZATION")) or query_token(environ.get("QUERY_STRING", ""))
        if not isinstance(token, str) or not token:
            raise socketio.exceptions.ConnectionRefusedError(
                "A valid access token is required.",
                error_envelope(ErrorCode.UNAUTHORIZED, "A valid access token is required.", connection_id),
            )
        try:
            session = await database_sync_to_async(authenticate)(token)
        except AuthFailure as failure:
            raise socketio.exceptions.ConnectionRefusedError(
                failure.message, error_envelope(failure.code, failure.message, connection_id)
            ) from None
        client = _Client(session, connection_id)
        self.clients[sid] = client
        metrics.realtime_connections.labels("socketio").inc()
        await self._start(sid, client, session, previous=None)

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        client = self.clients.pop(sid, None)
        if client is None:
            return
        metrics.realtime_connections.labels("socketio").dec()
        client.closing = True
        if client.expiry is not None:
            client.expiry.cancel()
        await self._leave_rooms(client.session.groups)

    async def on_auth(self, sid: str, data: Any = None) -> dict[str, Any]:
        """Re-authentication before expiry: ``socket.emit('auth', {token}, ack)``; the ack is the
        ``auth:ok`` payload, or ``{"error": ...}`` just before the server disconnects."""
        client = self.clients.get(sid)
        if client is None:
            return {}
        token = data.get("token") if isinstance(data, dict) else None
        try:
            session = await database_sync_to_async(authenticate)(token if isinstance(token, str) else "")
        except AuthFailure as failure:
            # The ack carries the error; the error event and the disconnect follow it.
            if client.expiry is not None:
                client.expiry.cancel()
            client.expiry = asyncio.create_task(self._fail(sid, client, failure.code, failure.message))
            return error_envelope(failure.code, failure.message, client.connection_id)
        previous, client.session = client.session, session
        await self._start(sid, client, session, previous=previous)
        return session.describe()

    async def trigger_event(self, event: str, *args: Any) -> Any:
        if event in ("connect", "disconnect"):
            return await super().trigger_event(event, *args)
        sid = args[0] if args else ""
        client = self.clients.get(sid)
        if client is None or client.closing:
            return None
        if not client.bucket.take():
            await self._fail(
                sid,
                client,
                ErrorCode.RATE_LIMIT_EXCEEDED,
                "Too many messages on this socket.",
                details={"burst": client.bucket.burst, "perSecond": client.bucket.rate},
            )
            return None
        if event not in CLIENT_EVENTS:
            await self.emit(
                "error",
                error_envelope(
                    ErrorCode.INVALID_REQUEST,
                    f"Unknown event {event[:64]!r}.",
                    client.connection_id,
                    details={"allowedEvents": list(CLIENT_EVENTS)},
                ),
                to=sid,
            )
            return None
        return await super().trigger_event(event, *args)

    # --- from the fan-out -------------------------------------------------------------------------

    async def revalidate_room(self, room: str) -> None:
        """The user behind these sockets changed: close them if inactive, re-room them if the role changed."""
        sids = [sid for sid, _ in self.server.manager.get_participants(self.namespace, room)]
        for sid in sids:
            client = self.clients.get(sid)
            if client is None or client.closing:
                continue
            try:
                session = await database_sync_to_async(revalidate)(client.session)
            except AuthFailure as failure:
                await self._fail(sid, client, failure.code, failure.message)
                continue
            previous, client.session = client.session, session
            await self._start(sid, client, session, previous=previous)
            if session.role != previous.role:  # the client learns its new set of events
                await self.emit("auth:ok", session.describe(), to=sid)

    # --- internals -------------------------------------------------------------------------------

    async def _start(self, sid: str, client: _Client, session: Session, previous: Session | None) -> None:
        old = set(previous.groups) if previous is not None else set()
        new = set(session.groups)
        for room in sorted(new - old):
            await self.enter_room(sid, room)
        await self._join_rooms(sorted(new - old))
        for room in sorted(old - new):
            await self.leave_room(sid, room)
        await self._leave_rooms(sorted(old - new))
        if client.expiry is not None:
            client.expiry.cancel()
        client.expiry = asyncio.create_task(self._expire(sid, client, session))

    async def _join_rooms(self, groups: list[str]) -> None:
        """Count a client into rooms; a room's first client puts it in the fan-out."""
        if self.rooms_loop is not asyncio.get_running_loop():
            self.rooms, self.rooms_loop = {}, asyncio.get_running_loop()
        for group in groups:
            room = self.rooms.get(group)
            if room is None:
                room = self.rooms[group] = _Room(self, group)
                room.clients += 1
                await hub.join(room, [group])
            else:
                room.clients += 1

    async def _leave_rooms(self, groups: list[str]) -> None:
        for group in groups:
            room = self.rooms.get(group)
            if room is None:
                continue
            room.clients -= 1
            if room.clients <= 0:
                del self.rooms[group]
                await hub.leave(room, [group])

    def finished(self, task: asyncio.Task) -> None:
        self.pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("Socket.IO delivery failed", exc_info=task.exception())

    async def _expire(self, sid: str, client: _Client, session: Session) -> None:
        await asyncio.sleep(max(session.seconds_left(), 0))
        await self._fail(
            sid,
            client,
            ErrorCode.TOKEN_EXPIRED,
            "The access token has expired; reconnect, or emit a fresh auth event before it expires.",
        )

    async def _fail(self, sid: str, client: _Client, code: ErrorCode, message: str, details: Any = None) -> None:
        """Emit the error, then disconnect the client."""
        if client.closing:
            return
        client.closing = True
        try:
            await self.emit("error", error_envelope(code, message, client.connection_id, details), to=sid)
            await self.disconnect(sid)
        except Exception:
            logger.exception("closing Socket.IO client %s failed", sid)


def _cors_allowed(origin: str | None, environ: dict[str, Any] | None = None) -> bool:
    return origin_allowed(origin)


def build_server() -> tuple[socketio.AsyncServer, RealtimeNamespace]:
    server = socketio.AsyncServer(
        async_mode="asgi",
        namespaces=[NAMESPACE],
        cors_allowed_origins=_cors_allowed,
        max_http_buffer_size=settings.REALTIME_MAX_MESSAGE_BYTES,
        logger=False,
        engineio_logger=False,
    )
    namespace = RealtimeNamespace(NAMESPACE)
    server.register_namespace(namespace)
    return server, namespace


server, namespace = build_server()
# Serves /socket.io/ only; modelhub.asgi sends nothing else here.
socketio_application = socketio.ASGIApp(server, socketio_path=SOCKETIO_PATH.strip("/"))
