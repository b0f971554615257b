"""The opt-in exact-match response cache (per deployment, ``networking.responseCache``).

Only deterministic calls are cached: non-streaming chat completions at ``temperature`` 0 (after the
deployment's defaults are applied) and embeddings. The key is the SHA-256 of the deployment id and
the canonical JSON of the request as sent upstream (the ``user`` field left out), so any difference
in messages or parameters is a miss. Entries live ``ttlSeconds`` in Redis (shared by every process)
or, without Redis, in this process (bounded). A hit is answered without calling the upstream and is
recorded as usage with ``cached: true`` and zero provider cost.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import Any

import orjson
from django.conf import settings

from modelhub import redis_async

logger = logging.getLogger("modelhub.gateway")
PREFIX = "gateway:cache:"
MAX_LOCAL_ENTRIES = 10_000
MAX_ENTRY_BYTES = 1024 * 1024

_local: dict[str, tuple[float, bytes]] = {}
_lock = threading.Lock()


def cacheable(kind: str, body: dict[str, Any], stream: bool) -> bool:
    if kind == "embeddings":
        return True
    return not stream and body.get("temperature") == 0


def key(deployment_id: Any, kind: str, body: dict[str, Any]) -> str:
    canonical = orjson.dumps({k: v for k, v in body.items() if k != "user"}, option=orjson.OPT_SORT_KEYS)
    return PREFIX + hashlib.sha256(f"{deployment_id}:{kind}:".encode() + canonical).hexdigest()


async def get(cache_key: str) -> bytes | None:
    if settings.REDIS_URL:
        try:
            return await redis_async.execute("GET", cache_key)
        except Exception:  # a cache outage is a miss, never an error
            return None
    entry = _local.get(cache_key)
    if entry and entry[0] > time.monotonic():
        return entry[1]
    return None


async def put(cache_key: str, value: bytes, ttl: int) -> None:
    if len(value) > MAX_ENTRY_BYTES:
        return
    if settings.REDIS_URL:
        try:
            await redis_async.execute("SET", cache_key, value, "EX", ttl)
        except Exception:  # a cache outage only costs the next call a miss
            logger.warning("response cache unavailable", exc_info=True)
        return
    with _lock:
        if len(_local) >= MAX_LOCAL_ENTRIES:
            _local.clear()
        _local[cache_key] = (time.monotonic() + ttl, value)


def clear_local() -> None:
    with _lock:
        _local.clear()
