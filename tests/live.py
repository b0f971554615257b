"""A real hub for tests that need one over TCP: the ASGI application (HTTP, the gateway, websockets)
served by uvicorn in a thread of the test process. Its requests read the test database, so the
tests that use it need ``transactional_db`` (committed rows)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import uvicorn

from modelhub import upstreams


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class HubServer:
    def __init__(self) -> None:
        from modelhub.asgi import application

        self.port = _free_port()
        config = uvicorn.Config(
            application, host="127.0.0.1", port=self.port, lifespan="off", log_level="warning", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._serve, name="hub-test-server", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the hub test server did not start")
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        async def serve() -> None:
            try:
                await self.server.serve()
            finally:
                await upstreams.close_session()

        asyncio.run(serve())

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
