"""A minimal HTTP/1.1 keep-alive GET client on one socket (httptools parses the response).

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

    async def get(self, path: str, want_headers: bool = False) -> tuple[int, bytes]:
        """(status, body); with ``want_headers`` the response headers go to ``last_headers``."""
        import httptools

        try:
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            self.writer.write(b"GET " + path.encode() + b" HTTP/1.1\r\n" + self.head_tail)
            response = _RawResponseWithHeaders() if want_headers else _RawResponse()
            parser = httptools.HttpResponseParser(response)
            while not response.done:
                data = await self.reader.read(262_144)
                if not data:
                    raise ConnectionError("server closed the connection")
                parser.feed_data(data)
            if want_headers:
                self.last_headers = response.headers
            if not parser.should_keep_alive():
                self.close()
            return parser.get_status_code(), b"".join(response.chunks)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None
