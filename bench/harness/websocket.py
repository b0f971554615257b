"""A websocket client that costs the bench process little CPU: websockets' sans-I/O ``ClientProtocol`` on a
bare asyncio Protocol, parsing frames as the bytes arrive and timing them on arrival.

The ``websockets.asyncio`` client costs ~37 us of CPU per message (a queue and a coroutine hop per frame);
with 1,000 subscribers at 20 events/s that alone took most of a core from the server it measures.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class WebSocketClient(asyncio.Protocol):
    """One connection (``loop.create_connection(lambda: client, host, port)``).

    ``on_text(client, data, received)`` gets every text frame with ``time.time()`` at its arrival;
    ``on_close(client, reason)`` a close frame from the server. ``ready`` is for the owner to set when the
    connection is usable (e.g. on the server's hello); it fails if the handshake fails or the connection
    is lost first. ``done`` is set when the connection ends.
    """

    def __init__(
        self,
        uri: str,
        headers: dict[str, str],
        on_text: Callable[[WebSocketClient, bytes, float], None],
        on_close: Callable[[WebSocketClient, str], None],
    ) -> None:
        from websockets.client import ClientProtocol
        from websockets.uri import parse_uri

        self.on_text, self.on_close = on_text, on_close
        self.ws = ClientProtocol(parse_uri(uri), max_size=2**20)
        request = self.ws.connect()
        for name, value in headers.items():
            request.headers[name] = value
        self.ws.send_request(request)
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future = loop.create_future()
        self.done: asyncio.Future = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._flush()

    def data_received(self, data: bytes) -> None:
        from websockets.frames import Opcode

        received = time.time()
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            opcode = getattr(event, "opcode", None)
            if opcode is Opcode.TEXT:
                self.on_text(self, event.data, received)
            elif opcode is Opcode.CLOSE:
                self.on_close(self, f"closed by the server: {self.ws.close_code} {self.ws.close_reason}")
        if self.ws.handshake_exc is not None and not self.ready.done():
            self.ready.set_exception(RuntimeError(f"handshake failed: {self.ws.handshake_exc}"))
        self._flush()

    def _flush(self) -> None:
        for chunk in self.ws.data_to_send():
            if chunk:
                self.transport.write(chunk)
            else:  # the protocol asks for a half-close after a closing handshake
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(RuntimeError(f"connection lost before auth:ok: {exc}"))
        if not self.done.done():
            self.done.set_result(None)

    def close(self) -> None:
        self.ws.send_close()
        self._flush()
