"""The WSGI bridge (modelhub.wsgi_bridge): ordinary responses in one hop, streaming ones chunk by chunk."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from django.core.wsgi import get_wsgi_application
from django.http import HttpResponse, StreamingHttpResponse

from modelhub.wsgi_bridge import OneHopWSGIMiddleware, _Responder
from tests.conftest import API


def _scope(method: str = "GET", path: str = "/", body: bytes = b"") -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 80),
    }


def call(
    app, method: str = "GET", path: str = "/", body: bytes = b"", chunks: int = 1, awaitable: bool = False
) -> list[dict]:
    """Run one request through the ASGI app; the body arrives in ``chunks`` parts. Returns what was sent.
    ``awaitable``: ``receive()`` returns a plain awaitable (a future), as granian's does, not a coroutine."""
    parts = [body[len(body) * i // chunks : len(body) * (i + 1) // chunks] for i in range(chunks)] or [b""]
    sent: list[dict] = []

    async def run() -> None:
        incoming = [{"type": "http.request", "body": p, "more_body": i < len(parts) - 1} for i, p in enumerate(parts)]

        async def next_message() -> dict:
            return incoming.pop(0) if incoming else {"type": "http.disconnect"}

        def receive():
            if not awaitable:
                return next_message()
            future = asyncio.get_running_loop().create_future()
            future.set_result(incoming.pop(0) if incoming else {"type": "http.disconnect"})
            return future

        async def send(message: dict) -> None:
            sent.append(message)

        await app(_scope(method, path, body), receive, send)

    asyncio.run(run())
    return sent


class _Counting(_Responder):
    hops = 0

    def send(self, message):  # a blocking hop from the thread to the loop
        type(self).hops += 1
        super().send(message)


class _CountingBridge(OneHopWSGIMiddleware):
    async def __call__(self, scope, receive, send):
        return await _Counting(self.app, self.executor, self.send_queue_size)(scope, receive, send)


def _bridge(view, counting=False):
    def wsgi(environ, start_response):
        response = view(environ)
        start_response(f"{response.status_code} OK", list(response.items()))
        return response

    return (_CountingBridge if counting else OneHopWSGIMiddleware)(wsgi, workers=2)


def test_an_ordinary_response_is_sent_from_the_loop_in_one_piece():
    _Counting.hops = 0
    sent = call(_bridge(lambda env: HttpResponse(b"hello", content_type="text/plain"), counting=True))
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    assert (b"content-type", b"text/plain") in sent[0]["headers"]
    assert sent[1:] == [{"type": "http.response.body", "body": b"hello"}]
    assert _Counting.hops == 0  # a2wsgi made three: start, body, end


def test_a_streaming_response_goes_chunk_by_chunk():
    sent = call(_bridge(lambda env: StreamingHttpResponse(iter([b"a", b"b", b"c"]))))
    assert sent[0]["type"] == "http.response.start"
    assert [m["body"] for m in sent[1:]] == [b"a", b"b", b"c", b""]
    assert [m.get("more_body", False) for m in sent[1:]] == [True, True, True, False]


def test_the_request_body_arrives_whole_however_it_was_chunked():
    body = bytes(range(256)) * 300
    view = lambda env: HttpResponse(env["wsgi.input"].read(int(env["CONTENT_LENGTH"])))  # noqa: E731
    for chunks in (1, 3, 7):
        sent = call(_bridge(view), "POST", body=body, chunks=chunks)
        assert sent[-1]["body"] == body
        # granian's receive() gives a Rust future, which asyncio.run_coroutine_threadsafe refuses unwrapped
        assert call(_bridge(view), "POST", body=body, chunks=chunks, awaitable=True)[-1]["body"] == body


def test_an_error_in_the_app_propagates():
    def broken(env):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        call(_bridge(broken))


@pytest.mark.django_db
def test_django_answers_through_the_bridge():
    app = OneHopWSGIMiddleware(get_wsgi_application(), workers=2)
    sent = call(app, "GET", f"{API}/health")
    assert sent[0]["status"] in (200, 503)
    assert "status" in orjson.loads(sent[1]["body"])
    missing = call(app, "GET", f"{API}/no-such-thing")
    assert missing[0]["status"] == 404 and orjson.loads(missing[1]["body"])["error"]["code"]
