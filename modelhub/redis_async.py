"""One ``redis.asyncio`` client per event loop, shared by the gateway's rate limit, usage buffer and cache.

A ``BlockingConnectionPool``: under a burst (1,000 concurrent streams) a call waits up to 2 s for a
free connection instead of failing with "Too many connections", and the three users share one
bounded pool (``REDIS_ASYNC_MAX_CONNECTIONS`` per process) rather than opening three.
"""

from __future__ import annotations

import asyncio
from typing import Any

from django.conf import settings

_clients: dict[int, tuple[str, Any]] = {}


def client() -> Any:
    import redis.asyncio as aredis

    loop = id(asyncio.get_running_loop())
    found = _clients.get(loop)
    if found is None or found[0] != settings.REDIS_URL:
        pool = aredis.BlockingConnectionPool.from_url(
            settings.REDIS_URL,
            max_connections=settings.REDIS_ASYNC_MAX_CONNECTIONS,
            timeout=2,
            socket_connect_timeout=1,
            socket_timeout=2,
        )
        found = (settings.REDIS_URL, aredis.Redis(connection_pool=pool))
        if len(_clients) > 64:  # loops of finished test runs
            _clients.clear()
        _clients[loop] = found
    return found[1]
