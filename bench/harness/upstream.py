"""A stub upstream that speaks the OpenAI API (chat completions, embeddings, models) and Anthropic's Messages
API: a raw ASGI app (no framework, orjson), deterministic, fast enough never to be the bottleneck of a gateway
measured against it.

    .venv/bin/python -m bench.harness.upstream --port 9100 [--host 127.0.0.1] [--delay-ms 50] [--chunk-delay-ms 10]

or, in a test or a script, :func:`start_in_thread` (uvicorn in a daemon thread on a free 127.0.0.1 port)::

    stub = start_in_thread()
    ... httpx.post(f"{stub.url}/v1/chat/completions", json=...) ...
    stub.requests[-1]["json"]; stub.reset(); stub.stop()

Routes:

- ``POST /v1/chat/completions``: a ``chat.completion`` whose reply is ``"stub reply to: "`` + the last user
  message's content (its first 200 characters); ``usage.prompt_tokens`` = whitespace-separated words over all
  messages' contents (the text parts of list contents), ``completion_tokens`` = words of the reply. With
  ``max_tokens`` (or ``max_completion_tokens``) below that, the reply keeps that many words and
  ``finish_reason`` is ``"length"``. ``"stream": true``: ``text/event-stream``, one ``chat.completion.chunk``
  per word (the first chunk's delta is ``{"role": "assistant", "content": ""}``; each word carries its leading
  whitespace, so the deltas concatenate to the non-stream reply), a final chunk with ``finish_reason``, a usage
  chunk (``"choices": []``) only with ``stream_options.include_usage``, then ``data: [DONE]``.
- ``POST /v1/embeddings``: 8 deterministic floats in [-1, 1) per input (a SHA-256 of it), string or list input.
- ``GET /v1/models``: one model, ``stub-model``.
- ``POST /v1/messages``: Anthropic's Messages API (top-level ``system``; ``stop_reason`` ``end_turn`` or
  ``max_tokens``); streamed as Anthropic's named SSE events (message_start ... message_stop).
- ``GET /`` and ``GET /health``: ``{"status": "ok"}``. Any other path: 404 JSON; a wrong method: 405 JSON.

The request's ``model`` picks a behaviour:

- ``stub-fail-<status>`` (``stub-fail-503``, ``stub-fail-429``...): that status with an OpenAI error body
  (Anthropic's error shape on ``/v1/messages``); a 429 also sends ``Retry-After: 1``;
- ``stub-slow-<ms>``: sleeps ``<ms>`` before answering (on top of ``--delay-ms``);
- ``stub-flaky-<n>``: the first ``n`` calls with that exact model answer 503, later ones succeed (a counter
  per model name, cleared by ``reset()``).

``--delay-ms`` delays every POST answer (before the status line); ``--chunk-delay-ms`` sleeps between
the events of a stream. Every request is recorded (method, path, lower-cased headers, parsed JSON body or
None), the last 1,000 kept, in :attr:`StubApp.requests` - the command line keeps none unless ``--record``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import re
import socket
import struct
import threading
import time
from typing import Any

import orjson

MAX_RECORDED = 1000
REPLY_PREFIX = "stub reply to: "
MAX_QUOTED_CHARS = 200
EMBEDDING_DIMENSIONS = 8
STUB_MODEL = "stub-model"

_WORD = re.compile(r"\s*\S+")  # a word with its leading whitespace: the words concatenate back to the text
_FAIL = re.compile(r"stub-fail-(\d{3})")
_SLOW = re.compile(r"stub-slow-(\d+)")
_FLAKY = re.compile(r"stub-flaky-(\d+)")

_JSON_HEADERS = [(b"content-type", b"application/json")]
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
_OK_BODY = orjson.dumps({"status": "ok"})


class StubError(Exception):
    """An HTTP error answer: ``status`` with an OpenAI (or, on /v1/messages, Anthropic) error body."""

    def __init__(self, status: int, message: str, kind: str = "server_error") -> None:
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


# --- Text helpers ------------------------------------------------------------------------------------


def _text_of(content: Any) -> str:
    """A message content as text: a string as is; the ``text`` of the text parts of a list, space-joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                if part.get("type", "text") == "text":
                    parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
        return " ".join(parts)
    return ""


def count_words(text: str) -> int:
    return len(text.split())


def _messages(body: dict) -> list[dict]:
    messages = body.get("messages")
    return [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []


def reply_for(messages: list[dict]) -> str:
    """``"stub reply to: "`` + the last user message's text (at most 200 characters)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return REPLY_PREFIX + _text_of(message.get("content"))[:MAX_QUOTED_CHARS]
    return REPLY_PREFIX


def _limit(body: dict, *names: str) -> int | None:
    for name in names:
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


def completion_words(reply: str, max_tokens: int | None) -> tuple[list[str], bool]:
    """The reply's words (each with its leading whitespace), cut to ``max_tokens``; and whether it was cut."""
    words = _WORD.findall(reply)
    if max_tokens is not None and len(words) > max_tokens:
        return words[:max_tokens], True
    return words, False


def embedding_of(text: str) -> list[float]:
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
    return [round(v / 2**31 - 1.0, 6) for v in struct.unpack(">8I", digest)]


# --- The ASGI app --------------------------------------------------------------------------------------


class StubApp:
    """The stub as an ASGI 3 app. ``delay_ms`` and ``chunk_delay_ms`` may be changed while it runs."""

    def __init__(self, delay_ms: float = 0, chunk_delay_ms: float = 0, record: bool = True) -> None:
        self.delay_ms = delay_ms
        self.chunk_delay_ms = chunk_delay_ms
        self.record = record
        self.stopping = False  # set by Stub.stop(): pauses end early, so in-flight streams finish at once
        self.requests: list[dict] = []
        self.flaky_calls: dict[str, int] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()  # reset() runs on the caller's thread, requests on the server's

    def reset(self) -> None:
        """Forget the recorded requests (in place: a reference to ``requests`` stays valid) and the flaky counters."""
        with self._lock:
            del self.requests[:]
            self.flaky_calls.clear()

    # ASGI entry point
    async def __call__(self, scope: dict, receive, send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if kind != "http":
            return

        method, path = scope["method"], scope["path"]
        raw = b""
        if method not in ("GET", "HEAD"):
            chunks = []
            while True:
                message = await receive()
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    break
            raw = b"".join(chunks)
        body: Any = None
        bad_json = False
        if raw:
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                bad_json = True
        if self.record:
            self._record(scope, method, path, body)

        anthropic = path == "/v1/messages"
        try:
            route = _ROUTES.get(path)
            if route is None:
                raise StubError(404, f"unknown path {path}", "not_found_error")
            handler_method, handler = route
            if method != handler_method:
                raise StubError(405, f"{method} not allowed on {path}", "invalid_request_error")
            if handler_method == "GET":
                await handler(self, body, send)
                return
            if bad_json or not isinstance(body, dict):
                raise StubError(400, "the body must be a JSON object", "invalid_request_error")
            delay = self.delay_ms
            model = body.get("model")
            if isinstance(model, str) and model.startswith("stub-"):
                slow = _SLOW.fullmatch(model)
                if slow:
                    delay += int(slow.group(1))
            if delay > 0:
                await self._pause(delay / 1000)
            if isinstance(model, str) and model.startswith("stub-"):
                self._misbehave(model)
            await handler(self, body, send)
        except StubError as exc:
            await self._error(send, exc, anthropic)

    def _record(self, scope: dict, method: str, path: str, body: Any) -> None:
        entry = {
            "method": method,
            "path": path,
            "query": scope.get("query_string", b"").decode("latin-1"),
            "headers": {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]},
            "json": body,
        }
        with self._lock:
            self.requests.append(entry)
            if len(self.requests) > MAX_RECORDED:
                del self.requests[0]

    def _misbehave(self, model: str) -> None:
        """Raise the error a ``stub-fail-*`` / ``stub-flaky-*`` model asks for."""
        fail = _FAIL.fullmatch(model)
        if fail:
            raise StubError(int(fail.group(1)), "stub failure")
        flaky = _FLAKY.fullmatch(model)
        if flaky:
            with self._lock:
                calls = self.flaky_calls.get(model, 0) + 1
                self.flaky_calls[model] = calls
            if calls <= int(flaky.group(1)):
                raise StubError(503, "stub failure")

    # --- answers ---

    @staticmethod
    async def _json(send, status: int, payload: Any, extra_headers: list | None = None) -> None:
        data = orjson.dumps(payload)
        headers = [*_JSON_HEADERS, (b"content-length", str(len(data)).encode())]
        if extra_headers:
            headers += extra_headers
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    async def _error(self, send, exc: StubError, anthropic: bool) -> None:
        if anthropic:
            kind = "not_found_error" if exc.status == 404 else "api_error"
            payload: dict = {"type": "error", "error": {"type": kind, "message": exc.message}}
        else:
            payload = {"error": {"message": exc.message, "type": exc.kind, "param": None, "code": None}}
        extra = [(b"retry-after", b"1")] if exc.status == 429 else None
        await self._json(send, exc.status, payload, extra)

    async def _pause(self, seconds: float) -> None:
        """Sleep; a long sleep in slices of 0.25 s, so that ``stopping`` cuts it short (short ones, the common
        case under load, are one timer each)."""
        if seconds <= 0.25:
            await asyncio.sleep(seconds)
            return
        until = time.monotonic() + seconds
        while not self.stopping:
            left = until - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.25))

    async def _stream(self, send, events) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        pause = self.chunk_delay_ms / 1000
        first = True
        for event in events:
            if pause > 0 and not first:
                await self._pause(pause)
            if self.stopping:
                break  # the server is shutting down: end the stream where it is
            first = False
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def health(self, body: Any, send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*_JSON_HEADERS, (b"content-length", str(len(_OK_BODY)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": _OK_BODY})

    async def models(self, body: Any, send) -> None:
        await self._json(
            send, 200, {"object": "list", "data": [{"id": STUB_MODEL, "object": "model", "owned_by": "stub"}]}
        )

    async def chat_completions(self, body: dict, send) -> None:
        messages = _messages(body)
        model = body.get("model") if isinstance(body.get("model"), str) else STUB_MODEL
        prompt_tokens = sum(count_words(_text_of(m.get("content"))) for m in messages)
        words, cut = completion_words(reply_for(messages), _limit(body, "max_completion_tokens", "max_tokens"))
        finish = "length" if cut else "stop"
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(words),
            "total_tokens": prompt_tokens + len(words),
        }
        ident = f"chatcmpl-stub-{next(self._ids)}"
        created = int(time.time())
        if body.get("stream") is not True:
            await self._json(
                send,
                200,
                {
                    "id": ident,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "".join(words)},
                            "logprobs": None,
                            "finish_reason": finish,
                        }
                    ],
                    "usage": usage,
                },
            )
            return
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True

        def chunk(choices: list, **extra) -> bytes:
            payload = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": choices,
            }
            if include_usage:
                payload["usage"] = None
            payload.update(extra)
            return b"data: " + orjson.dumps(payload) + b"\n\n"

        def events():
            yield chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
            for word in words:
                yield chunk([{"index": 0, "delta": {"content": word}, "finish_reason": None}])
            yield chunk([{"index": 0, "delta": {}, "finish_reason": finish}])
            if include_usage:
                yield chunk([], usage=usage)
            yield b"data: [DONE]\n\n"

        await self._stream(send, events())

    async def embeddings(self, body: dict, send) -> None:
        raw = body.get("input")
        if isinstance(raw, str):
            inputs = [raw]
        elif isinstance(raw, list) and raw:
            inputs = [item if isinstance(item, str) else orjson.dumps(item).decode() for item in raw]
        else:
            raise StubError(400, "input must be a string or a non-empty list", "invalid_request_error")
        tokens = sum(count_words(text) for text in inputs)
        await self._json(
            send,
            200,
            {
                "object": "list",
                "data": [
                    {"object": "embedding", "index": i, "embedding": embedding_of(text)}
                    for i, text in enumerate(inputs)
                ],
                "model": body.get("model") if isinstance(body.get("model"), str) else STUB_MODEL,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    async def messages(self, body: dict, send) -> None:
        messages = _messages(body)
        model = body.get("model") if isinstance(body.get("model"), str) else STUB_MODEL
        input_tokens = count_words(_text_of(body.get("system"))) + sum(
            count_words(_text_of(m.get("content"))) for m in messages
        )
        words, cut = completion_words(reply_for(messages), _limit(body, "max_tokens"))
        stop_reason = "max_tokens" if cut else "end_turn"
        ident = f"msg_stub_{next(self._ids)}"
        if body.get("stream") is not True:
            await self._json(
                send,
                200,
                {
                    "id": ident,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [{"type": "text", "text": "".join(words)}],
                    "stop_reason": stop_reason,
                    "stop_sequence": None,
                    "usage": {"input_tokens": input_tokens, "output_tokens": len(words)},
                },
            )
            return

        def event(name: str, payload: dict) -> bytes:
            return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

        def events():
            yield event(
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": ident,
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": {"input_tokens": input_tokens, "output_tokens": 0},
                    },
                },
            )
            yield event(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            )
            for word in words:
                yield event(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word}},
                )
            yield event("content_block_stop", {"type": "content_block_stop", "index": 0})
            yield event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": {"output_tokens": len(words)},
                },
            )
            yield event("message_stop", {"type": "message_stop"})

        await self._stream(send, events())


_ROUTES = {
    "/": ("GET", StubApp.health),
    "/health": ("GET", StubApp.health),
    "/v1/models": ("GET", StubApp.models),
    "/v1/chat/completions": ("POST", StubApp.chat_completions),
    "/v1/embeddings": ("POST", StubApp.embeddings),
    "/v1/messages": ("POST", StubApp.messages),
}


# --- Running it ----------------------------------------------------------------------------------------


def _config(app: StubApp, **options):
    import uvicorn

    return uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        ws="none",
        timeout_keep_alive=30,
        backlog=4096,
        **options,
    )


class Stub:
    """The stub running in a daemon thread (see :func:`start_in_thread`); also a context manager."""

    def __init__(self, app: StubApp, server, thread: threading.Thread, port: int) -> None:
        self.app, self._server, self._thread = app, server, thread
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    @property
    def requests(self) -> list[dict]:
        return self.app.requests

    @property
    def delay_ms(self) -> float:
        return self.app.delay_ms

    @delay_ms.setter
    def delay_ms(self, value: float) -> None:
        self.app.delay_ms = value

    @property
    def chunk_delay_ms(self) -> float:
        return self.app.chunk_delay_ms

    @chunk_delay_ms.setter
    def chunk_delay_ms(self, value: float) -> None:
        self.app.chunk_delay_ms = value

    def reset(self) -> None:
        self.app.reset()

    def stop(self, timeout: float = 10) -> None:
        """Shut the server down (in-flight requests get up to 2 s) and wait for its thread; idempotent."""
        if not self._thread.is_alive():
            return
        self.app.stopping = True
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(5)
        if self._thread.is_alive():
            raise RuntimeError(f"stub upstream on {self.url} did not stop")

    def __enter__(self) -> Stub:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<Stub {self.url}>"


def start_in_thread(delay_ms: float = 0, chunk_delay_ms: float = 0, timeout: float = 10) -> Stub:
    """Start the stub under uvicorn in a daemon thread on a free 127.0.0.1 port; returns once it accepts
    connections. Logging is left as the caller configured it (uvicorn's log config is not applied)."""
    import uvicorn

    app = StubApp(delay_ms=delay_ms, chunk_delay_ms=chunk_delay_ms, record=True)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        _config(app, host="127.0.0.1", port=port, log_config=None, log_level="warning", timeout_graceful_shutdown=2)
    )
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # SystemExit from a failed startup included
            failure.append(exc)
        finally:
            sock.close()

    thread = threading.Thread(target=run, name=f"stub-upstream-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not thread.is_alive():
            raise RuntimeError(f"stub upstream failed to start: {failure[0] if failure else 'thread exited'}")
        if server.started:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return Stub(app, server, thread, port)
            except OSError:
                pass
        time.sleep(0.01)
    server.should_exit = True
    thread.join(5)
    raise RuntimeError(f"stub upstream did not start within {timeout:.0f}s")


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="Stub OpenAI-compatible (and Anthropic) upstream")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=0, help="delay before every POST answer")
    parser.add_argument("--chunk-delay-ms", type=float, default=0, help="delay between the events of a stream")
    parser.add_argument("--record", action="store_true", help="record requests (nobody can read them here)")
    args = parser.parse_args(argv)
    app = StubApp(delay_ms=args.delay_ms, chunk_delay_ms=args.chunk_delay_ms, record=args.record)
    uvicorn.Server(_config(app, host=args.host, port=args.port, log_level="warning")).run()


if __name__ == "__main__":
    main()
