"""Django's Redis cache backend with one connection pool per process.

Django keeps a cache backend instance per thread (asgiref ``Local``), and under
ASGI every request runs in a fresh thread - so the stock backend opened a new
Redis connection pool, and a new TCP connection, for every request (the catalog
benchmark measured 12 % of a worker's CPU there). redis-py's pools are
thread-safe; this backend shares one client per (servers, options) per process.

The stock client also builds a new ``redis.Redis`` around the pool for every cache call; its
``__init__`` fills a dict of ~100 response callbacks (about 0.1 ms, three times per catalog miss). A
``redis.Redis`` is as thread-safe as its pool (every command takes a connection from it), so one is
kept per pool.
"""

from __future__ import annotations

import threading
from functools import cached_property

from django.core.cache.backends.redis import RedisCache, RedisCacheClient

_clients: dict[tuple, object] = {}
_lock = threading.Lock()


class _OneRedisPerPool(RedisCacheClient):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._redis_by_pool: dict[int, object] = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._redis_by_pool.get(id(pool))
        if client is None:
            client = self._redis_by_pool.setdefault(id(pool), self._client(connection_pool=pool))
        return client


class SharedPoolRedisCache(RedisCache):
    def __init__(self, server, params) -> None:
        super().__init__(server, params)
        self._class = _OneRedisPerPool

    @cached_property
    def _cache(self):
        key = (tuple(self._servers), repr(sorted(self._options.items())))
        client = _clients.get(key)
        if client is None:
            with _lock:
                client = _clients.get(key)
                if client is None:
                    client = _clients[key] = self._class(self._servers, **self._options)
        return client
