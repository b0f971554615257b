"""A websocket client that costs the bench process little CPU: websockets' sans-I/O ``ClientProtocol`` on a
bare asyncio Protocol, parsing frames as the bytes arrive and timing them on arrival.

The ``websockets.asyncio`` client costs ~37 us of CPU per message (a queue and a coroutine hop per frame);
with 1,000 subscribers at 20 events/s that alone took most of a core from the server it measures.

Once a connection is open and its hello has arrived (``ready``), the server's plain text frames - final,
unmasked, no extension bits, as RFC 6455 has a server send them without permessage-deflate - are cut out of
the byte stream here (a header byte, a length, the payload: a few microseconds where websockets' generator
based parser took ~12 of the ~21 us a message cost): with 5,000 subscribers the bench's own reads are most of
an event's CPU on this 2-core machine, and latency measures CPU. Anything else (a close, a ping, a
fragment, an extension bit) hands the stream from that byte on to websockets' parser for good.
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

    _fast = False  # cutting plain text frames here (after ready); else websockets' parser
    _pending = b""

    def data_received(self, data: bytes) -> None:
        from websockets.frames import Opcode

        received = time.time()
        if self._fast:
            data = self._cut_text_frames(self._pending + data, received)
            if data is None:
                return
            self._fast = False  # not a plain text frame: websockets parses the rest
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            opcode = getattr(event, "opcode", None)
            if opcode is Opcode.TEXT:
                self.on_text(self, event.data, received)
            elif opcode is Opcode.CLOSE:
                self.on_close(self, f"closed by the server: {self.ws.close_code} {self.ws.close_reason}")
        if self.ws.handshake_exc is not None and not self.ready.done():
            self.ready.set_exception(RuntimeError(f"handshake failed: {self.ws.handshake_exc}"))
        elif self.ready.done() and not self.ready.exception() and not self.ws.reader.buffer and not self.closed:
            self._fast, self._pending = True, b""  # nothing half-parsed left in websockets' buffer
        self._flush()

    closed = False

    def _cut_text_frames(self, buffer: bytes, received: float) -> bytes | None:
        """Hands each whole plain text frame at the start of ``buffer`` to ``on_text``; keeps a partial one for
        the next read and returns None - or returns the buffer from the first other frame on."""
        start, size = 0, len(buffer)
        while start < size:
            if buffer[start] != 0x81 or size - start < 2:
                if buffer[start] != 0x81:
                    return buffer[start:]
                break
            length = buffer[start + 1]
            if length & 0x80:  # a masked frame from a server: websockets' parser refuses it
                return buffer[start:]
            head = 2
            if length == 126:
                head = 4
                if size - start < head:
                    break
                length = int.from_bytes(buffer[start + 2 : start + 4], "big")
            elif length == 127:
                head = 10
                if size - start < head:
                    break
                length = int.from_bytes(buffer[start + 2 : start + 10], "big")
            end = start + head + length
            if end > size:
                break
            self.on_text(self, buffer[start + head : end], received)
            start = end
        self._pending = buffer[start:]
        return None

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
        self.closed, self._fast = True, False
        if self._pending:
            self.ws.receive_data(self._pending)
            self._pending = b""
        self.ws.send_close()
        self._flush()
