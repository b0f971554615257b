"""Async Redis for the gateway's hot path: one pipelined connection per event loop.

:func:`execute` sends a command and waits for its reply. Commands issued while earlier ones are on
the wire are written together in the next batch (one ``write``, their replies read in order), so
under load a process makes one round trip per batch rather than one per command, and a lone command
is one round trip as before. This is Redis's own pipelining, without a pool: redis-py's async pool
costs ~100 µs of CPU per command here (~150 µs when contended), a bare connection ~55 µs, and a batch
much less per command (a one-off timing with redis-py 8.1 on this machine; ``bench/gateway.py``'s 64-client
throughput went from 1,148 to ~1,400 req/s). The gateway's rate limit, usage buffer and response
cache use it; a dropped connection fails the commands in flight (their callers fall back: the limit
fails open, events are stored directly, the cache misses) and the next command reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from django.conf import settings


class Pipeliner:
    def __init__(self, url: str) -> None:
        self.url = url
        self._queue: list[tuple[tuple[Any, ...], asyncio.Future]] = []
        self._connection: Any = None
        self._running = False

    async def execute(self, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.append((args, future))
        if not self._running:
            self._running = True
            loop.create_task(self._run())
        return await future

    async def _connect(self) -> Any:
        if self._connection is None:
            from redis.asyncio.connection import Connection, parse_url

            options = parse_url(self.url)
            options.pop("connection_class", None)
            connection = Connection(**options, socket_connect_timeout=1, socket_timeout=2)
            await connection.connect()
            self._connection = connection
        return self._connection

    async def _run(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                try:
                    connection = await self._connect()
                    await connection.send_packed_command(connection.pack_commands([args for args, _ in batch]))
                except Exception as exc:
                    await self._drop()
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for index, (_, future) in enumerate(batch):
                    try:
                        reply = await connection.read_response()
                    except Exception as exc:  # connection lost: fail this and the rest of the batch
                        await self._drop()
                        for _, rest in batch[index:]:
                            if not rest.done():
                                rest.set_exception(exc)
                        break
                    if future.done():
                        continue
                    if isinstance(reply, Exception):
                        future.set_exception(reply)
                    else:
                        future.set_result(reply)
        finally:
            self._running = False

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):  # already broken; the next command reconnects
                await connection.disconnect()


_pipeliners: dict[int, Pipeliner] = {}


def pipeliner() -> Pipeliner:
    loop = id(asyncio.get_running_loop())
    found = _pipeliners.get(loop)
    if found is None or found.url != settings.REDIS_URL:
        if len(_pipeliners) > 64:  # loops of finished test runs
            _pipeliners.clear()
        found = _pipeliners[loop] = Pipeliner(settings.REDIS_URL)
    return found


async def execute(*args: Any) -> Any:
    """Run one Redis command on this loop's pipelined connection (see the module docstring)."""
    return await pipeliner().execute(*args)
