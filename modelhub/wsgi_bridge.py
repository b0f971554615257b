"""a2wsgi, with Django's ordinary (non-streaming) responses handed back to the event loop in one hop.

a2wsgi runs the WSGI app on a thread pool and sends each part of the response from that thread to the
event loop, waiting for each: the start (status and headers), every body chunk, the end - three blocking
round trips between the thread and the loop for a one-chunk answer, each a coroutine, a task, a wake-up of
the loop and one of the thread. Under load the bridge cost as much CPU as the Django view of a catalog page
(py-spy, holding the GIL). Here a response that is not streaming (Django's ``HttpResponse``, whose body is
already in memory) is collected in the thread and returned as the thread's result, and the loop sends it:
one hop back instead of three. Streaming responses (``StreamingHttpResponse``, ``FileResponse``, anything
else iterable) go a2wsgi's way, chunk by chunk. The request body is still read through a2wsgi's ``Body``.
"""

from __future__ import annotations

import contextvars
import functools
from typing import Any

from a2wsgi.wsgi import Body, WSGIMiddleware, WSGIResponder, build_environ


def _headers(response_headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(name.strip().encode("latin1").lower(), value.strip().encode("latin1")) for name, value in response_headers]


def _as_coroutine(receive):
    """``receive`` as a coroutine function: a2wsgi's ``Body`` hands ``receive()`` to
    ``asyncio.run_coroutine_threadsafe``, which takes coroutines only, and granian's ``receive()`` returns
    another awaitable (a Rust future)."""

    async def receive_message() -> dict:
        return await receive()

    return receive_message


class _Responder(WSGIResponder):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._start: dict | None = None  # the response's start, held until we know how the body comes

    async def __call__(self, scope, receive, send) -> None:
        environ = build_environ(scope, Body(self.loop, _as_coroutine(receive)))
        sender = self.loop.create_task(self.sender(send))
        try:
            func = functools.partial(contextvars.copy_context().run, self.wsgi)
            whole = await self.loop.run_in_executor(self.executor, func, environ, self.start_response)
            if whole is not None:  # not streaming: the start and the body, sent from here
                await send(whole[0])
                await send({"type": "http.response.body", "body": whole[1]})
            await self.send_queue.put(None)
            await sender
            if self.exc_info is not None:
                raise self.exc_info[0].with_traceback(self.exc_info[1], self.exc_info[2])
        finally:
            if not sender.done():
                sender.cancel()  # pragma: no cover

    def start_response(self, status: str, response_headers: list, exc_info: Any = None):
        self.exc_info = exc_info
        if not self.response_started:
            # Held, not sent: before any body is sent, WSGI lets an error handler call this again.
            self._start = {
                "type": "http.response.start",
                "status": int(status.split(" ", 1)[0]),
                "headers": _headers(response_headers),
            }
        return self._write

    def _flush_start(self) -> None:
        if not self.response_started:
            self.response_started = True
            self.send(self._start)

    def _write(self, chunk: bytes) -> None:  # WSGI's legacy write(): the streaming way from here on
        self._flush_start()
        self.send({"type": "http.response.body", "body": chunk, "more_body": True})

    def wsgi(self, environ: dict, start_response: Any) -> tuple[dict, bytes] | None:
        iterable = self.app(environ, start_response)
        try:
            if getattr(iterable, "streaming", True) is False and not self.response_started:
                return self._start, b"".join(iterable)  # Django's HttpResponse: its content, in memory
            self._flush_start()
            for chunk in iterable:
                self.send({"type": "http.response.body", "body": chunk, "more_body": True})
            self.send({"type": "http.response.body", "body": b""})
            return None
        finally:
            getattr(iterable, "close", lambda: None)()


class OneHopWSGIMiddleware(WSGIMiddleware):
    """:class:`a2wsgi.WSGIMiddleware` with :class:`_Responder` (see the module docstring)."""

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            return await _Responder(self.app, self.executor, self.send_queue_size)(scope, receive, send)
        return await super().__call__(scope, receive, send)
