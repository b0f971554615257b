"""The websocket endpoint ``/modelhub/realtime`` (also ``/api/v1/modelhub/realtime``).

Protocol (the README's "Realtime" section is the reference):

* the client authenticates with an access token - ``Authorization: Bearer`` on the
  handshake, ``?token=``, or a first message ``{"type": "auth", "token": ...}`` within
  ``REALTIME_AUTH_TIMEOUT_SECONDS`` - and gets ``{"event": "auth:ok", "data": {...}}``;
* it then receives ``{"event": <spec event>, "data": <payload>}`` for every event its role
  may read (a role change applies at once, announced by a new ``auth:ok``; deactivation
  closes the socket), until the token expires: the socket is closed at ``exp`` (4401) unless the
  client sent a fresh ``auth`` message before;
* ``{"type": "ping"}`` answers ``{"event": "pong", "data": {}}``; anything else answers an
  ``error`` event (the spec's ErrorResponse as ``data``) and the socket stays open;
* failures: ``error`` event, then close - 4401 (authentication), 4429 (too many
  messages), 1009 (message too big); a client that stops reading is closed with 1013 once
  ``REALTIME_MAX_PENDING_MESSAGES`` events wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

import orjson
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from modelhub import metrics, realtime
from modelhub.api.exceptions import ErrorCode
from modelhub.api.request_id import resolve_request_id
from modelhub.realtime.auth import (
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_TOO_MANY_MESSAGES,
    CLOSE_TOO_SLOW,
    CLOSE_UNAUTHORIZED,
    AuthFailure,
    NonBrowserAwareOriginValidator,
    Session,
    TokenBucket,
    authenticate,
    error_envelope,
    header,
    revalidate,
    token_from_scope,
)
from modelhub.realtime.fanout import hub

logger = logging.getLogger(__name__)

INBOUND_TYPES = ("auth", "ping")


class RealtimeConsumer(AsyncWebsocketConsumer):
    """One client socket: authenticates, joins the groups of the events its role may read.

    Events reach it through the process's :data:`~modelhub.realtime.fanout.hub`, not through a
    channel of its own (see :mod:`modelhub.realtime.fanout` for why): ``channel_layer_alias`` names
    no configured layer, so channels gives the consumer none.
    """

    channel_layer_alias = "realtime-local-fanout"  # not a configured layer: no per-socket channel
    session: Session | None = None
    direct: _Direct | None = None  # set when events go straight to uvicorn's transport (``_direct_protocol``)

    async def connect(self) -> None:
        realtime.bind_loop()
        self.connection_id = resolve_request_id(header(self.scope.get("headers", ()), b"x-request-id"))
        self.joined: set[str] = set()
        self.closing = False
        self.bucket = TokenBucket.from_settings()
        self.timers: dict[str, asyncio.Task] = {}
        self.outbox: deque[str] = deque()
        self.writer: asyncio.Task | None = None
        await self.accept()
        self.direct = _direct_protocol(self.base_send)
        metrics.realtime_connections.labels("websocket").inc()
        self.counted = True
        token = token_from_scope(self.scope)
        if token is not None:
            await self.authenticate(token)
        else:
            self.timers["auth"] = _background(self._auth_deadline())

    async def disconnect(self, code: int) -> None:
        self.closing = True
        if getattr(self, "counted", False):
            self.counted = False
            metrics.realtime_connections.labels("websocket").dec()
        for task in [*self.timers.values(), *([self.writer] if self.writer else [])]:
            if task is not asyncio.current_task():
                task.cancel()
        await self._set_groups(set())

    # --- inbound ---------------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closing:
            return
        size = len(text_data.encode()) if text_data is not None else len(bytes_data or b"")
        if size > settings.REALTIME_MAX_MESSAGE_BYTES:
            await self.fail(
                ErrorCode.INVALID_REQUEST,
                "The message is too large.",
                CLOSE_MESSAGE_TOO_BIG,
                details={"maxBytes": settings.REALTIME_MAX_MESSAGE_BYTES},
            )
            return
        if not self.bucket.take():
            await self.fail(
                ErrorCode.RATE_LIMIT_EXCEEDED,
                "Too many messages on this socket.",
                CLOSE_TOO_MANY_MESSAGES,
                details={"burst": self.bucket.burst, "perSecond": self.bucket.rate},
            )
            return
        message = _parse(text_data)
        kind = message.get("type") if message is not None else None
        if kind == "ping":
            await self.send_event("pong", {})
        elif kind == "auth":
            token = message.get("token")
            await self.authenticate(token if isinstance(token, str) else "")
        else:
            await self.send_error(
                ErrorCode.INVALID_REQUEST,
                'Messages are JSON objects {"type": "auth", "token": ...} or {"type": "ping"}.',
                details={"allowedTypes": list(INBOUND_TYPES)},
            )

    async def authenticate(self, token: str) -> None:
        """First authentication or a re-authentication: either way the session, groups and expiry are renewed."""
        try:
            session = await database_sync_to_async(authenticate)(token)
        except AuthFailure as failure:
            await self.fail(failure.code, failure.message, CLOSE_UNAUTHORIZED)
            return
        if self.closing:
            return
        self._cancel("auth")
        await self._start(session)
        await self.send_event("auth:ok", session.describe())

    # --- from the process's fan-out -----------------------------------------------------------

    def deliver(self, message: dict[str, Any]) -> None:
        """Called by the fan-out for every message of a group this socket is in; never blocks."""
        kind = message.get("type")
        if kind == "realtime.event":
            if self.session is None or self.closing:
                return
            if self._direct_now():
                # The fast path: the event's one frame (encoded once per event and process) written to this
                # socket's transport - no task, no per-socket framing. Bounded like the outbox, in bytes.
                transport = self._writable_transport()
                if transport is not None:
                    frame = message.get("frame")
                    if frame is None:
                        frame = message["frame"] = text_frame(message["text"])
                    transport.write(frame)
                return
            self.outbox.append(message["text"])
            if len(self.outbox) > settings.REALTIME_MAX_PENDING_MESSAGES:
                # The client does not read: drop it rather than buffer without bound.
                self.outbox.clear()
                self.closing = True
                self.timers["overflow"] = _background(self._overflow())
            elif self.writer is None:
                self.writer = asyncio.create_task(self._write())
        elif kind == "realtime.revalidate" and self.session is not None and not self.closing:
            self.timers["revalidate"] = _background(self._revalidate())

    def deliver_many(self, messages: list[dict[str, Any]], shared: dict[str, Any]) -> None:
        """A run of messages of one group (``fanout``'s coalescing): on the direct path the events' frames
        in one write - joined once per run and process, in ``shared`` - else one by one."""
        if (
            self.session is None
            or self.closing
            or not self._direct_now()
            or any(message.get("type") != "realtime.event" for message in messages)
        ):
            for message in messages:
                self.deliver(message)
            return
        transport = self._writable_transport()
        if transport is None:
            return
        frames = shared.get("frames")
        if frames is None:
            for message in messages:
                if message.get("frame") is None:
                    message["frame"] = text_frame(message["text"])
            frames = shared["frames"] = b"".join(message["frame"] for message in messages)
        transport.write(frames)

    def _direct_now(self) -> bool:
        """Events go straight to the transport: the direct path is there and nothing is queued before them."""
        direct = self.direct
        return direct is not None and self.writer is None and not self.outbox and direct.writable_now()

    def _writable_transport(self) -> Any:
        """The direct path's transport, or None once its unsent bytes pass ``REALTIME_MAX_PENDING_BYTES``
        (the socket is then closed with 1013, like an overflowing outbox)."""
        transport = self.direct.transport
        if transport.get_write_buffer_size() > settings.REALTIME_MAX_PENDING_BYTES:
            self.closing = True
            self.timers["overflow"] = _background(self._overflow())
            return None
        return transport

    async def _write(self) -> None:
        try:
            while self.outbox and not self.closing:
                await self.base_send({"type": "websocket.send", "text": self.outbox.popleft()})
        except Exception:  # the client went away mid-send; disconnect() follows
            self.outbox.clear()
        finally:
            self.writer = None

    async def _overflow(self) -> None:
        await self._set_groups(set())
        await self.close(code=CLOSE_TOO_SLOW)

    async def _revalidate(self) -> None:
        try:
            session = await database_sync_to_async(revalidate)(self.session)
        except AuthFailure as failure:
            await self.fail(failure.code, failure.message, CLOSE_UNAUTHORIZED)
            return
        role_changed = session.role != self.session.role
        await self._start(session)
        if role_changed:  # the client learns its new set of events
            await self.send_event("auth:ok", session.describe())

    # --- outbound ----------------------------------------------------------------------------

    async def send_event(self, event: str, data: dict[str, Any]) -> None:
        if not self.closing:
            await self.send(text_data=realtime.encode(event, data))

    async def send_error(self, code: ErrorCode, message: str, details: Any = None) -> None:
        await self.send_event("error", error_envelope(code, message, self.connection_id, details))

    async def fail(self, code: ErrorCode, message: str, close_code: int, details: Any = None) -> None:
        """Tell the client why, then close; nothing is sent after this."""
        if self.closing:
            return
        with contextlib.suppress(Exception):  # the client may be gone already; close regardless
            await self.send_error(code, message, details)
        self.closing = True
        for name in list(self.timers):
            self._cancel(name)
        await self._set_groups(set())
        await self.close(code=close_code)

    # --- internals ---------------------------------------------------------------------------

    async def _start(self, session: Session) -> None:
        self.session = session
        await self._set_groups(set(session.groups))
        self._cancel("expiry")
        self.timers["expiry"] = _background(self._expire(session))

    async def _set_groups(self, wanted: set[str]) -> None:
        left = self.joined - wanted
        self.joined = wanted
        if wanted:
            await hub.join(self, wanted)
        if left:
            await hub.leave(self, left)

    def _cancel(self, name: str) -> None:
        task = self.timers.pop(name, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _auth_deadline(self) -> None:
        await asyncio.sleep(settings.REALTIME_AUTH_TIMEOUT_SECONDS)
        if self.session is None:
            await self.fail(
                ErrorCode.UNAUTHORIZED,
                f"No access token within {settings.REALTIME_AUTH_TIMEOUT_SECONDS} s of connecting.",
                CLOSE_UNAUTHORIZED,
            )

    async def _expire(self, session: Session) -> None:
        await asyncio.sleep(max(session.seconds_left(), 0))
        await self.fail(
            ErrorCode.TOKEN_EXPIRED,
            "The access token has expired; reconnect, or send a fresh auth message before it expires.",
            CLOSE_UNAUTHORIZED,
        )


def _background(coro: Any) -> asyncio.Task:
    """A timer task whose failure (say, the client vanished mid-send) is logged, not lost."""

    async def run() -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("realtime socket timer failed")

    return asyncio.create_task(run())


def _parse(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    with contextlib.suppress(orjson.JSONDecodeError):
        value = orjson.loads(text)
        return value if isinstance(value, dict) else None
    return None


# The ASGI application for the websocket paths: Origin checked against ALLOWED_HOSTS first.
def text_frame(text: str) -> bytes:
    """One final, unmasked websocket text frame (RFC 6455 5.2; a server's frames are never masked, and an
    uncompressed frame is valid under permessage-deflate, RFC 7692 6.1)."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        head = bytes((0x81, size))
    elif size < 65536:
        head = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return head + payload


class _Direct:
    """uvicorn's ``websockets-sansio`` protocol object behind a socket's ASGI ``send``, written to directly.

    That implementation writes each of its frames whole and synchronously (``transport.write`` of complete
    frames), so a frame written here never splits one of its own.
    """

    __slots__ = ("protocol", "transport")

    def __init__(self, protocol: Any) -> None:
        self.protocol, self.transport = protocol, protocol.transport

    def writable_now(self) -> bool:
        """The handshake is done and no close has been sent or received."""
        p = self.protocol
        return (
            p.handshake_complete
            and not p.close_sent
            and not p.disconnected
            and p.initial_response is None
            and not self.transport.is_closing()
        )


def _direct_protocol(send: Any) -> _Direct | None:
    """The direct path for a socket served by uvicorn's ``websockets-sansio`` implementation (uvicorn's
    ``--ws auto`` with websockets >= 14); ``None`` - the ASGI send path - for any other server or
    implementation (``--ws wsproto``, the deprecated ``--ws websockets``, channels' test communicator)."""
    if not settings.REALTIME_DIRECT_WRITES:
        return None
    try:
        from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    except ImportError:  # pragma: no cover - an older uvicorn
        return None
    protocol = getattr(send, "__self__", None)
    if isinstance(protocol, WebSocketsSansIOProtocol) and getattr(protocol, "transport", None) is not None:
        return _Direct(protocol)
    return None


websocket_application = NonBrowserAwareOriginValidator(RealtimeConsumer.as_asgi())
