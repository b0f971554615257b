"""A minimal HTTP/1.1 keep-alive client on one socket (httptools parses the response): GETs, or any raw request.

For ``--client raw`` and sequential timing: it costs the bench process far less CPU than httpx, which
matters when client and server share two cores.
"""

from __future__ import annotations

import asyncio


class _RawResponse:
    """httptools callbacks for one response."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.done = False

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        self.done = True


class _RawResponseWithHeaders(_RawResponse):
    """The same, also collecting the headers (lower-cased names); used only for sampled responses."""

    def __init__(self) -> None:
        super().__init__()
        self.headers: dict[str, str] = {}

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")


class RawConnection:
    """GETs over one keep-alive connection, opened on first use and again after the server closes it."""

    def __init__(self, host: str, port: int, headers: dict) -> None:
        self.host, self.port = host, port
        self.head_tail = (
            "".join(f"{k}: {v}\r\n" for k, v in {"Host": f"{host}:{port}", **headers}.items()).encode() + b"\r\n"
        )
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.last_headers: dict[str, str] = {}

    async def exchange(self, request: bytes, response: object) -> int:
        """Send one raw HTTP/1.1 request and feed the answer to ``response`` (httptools callbacks that set
        ``response.done``); returns the status. Reconnects next time if the server closes the connection."""
        import httptools

        try:
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            self.writer.write(request)
            parser = httptools.HttpResponseParser(response)
            while not response.done:
                data = await self.reader.read(262_144)
                if not data:
                    raise ConnectionError("server closed the connection")
                parser.feed_data(data)
            if not parser.should_keep_alive():
                self.close()
            return parser.get_status_code()
        except BaseException:
            self.close()
            raise

    async def get(self, path: str, want_headers: bool = False) -> tuple[int, bytes]:
        """(status, body); with ``want_headers`` the response headers go to ``last_headers``."""
        response = _RawResponseWithHeaders() if want_headers else _RawResponse()
        status = await self.exchange(b"GET " + path.encode() + b" HTTP/1.1\r\n" + self.head_tail, response)
        if want_headers:
            self.last_headers = response.headers
        return status, b"".join(response.chunks)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None
