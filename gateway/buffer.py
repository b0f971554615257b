"""The usage buffer: gateway calls hand their usage events here before the response completes; a drain
ingests them in batches through the analytics ingestion service (idempotent on ``requestId``).

**Redis** (``REDIS_URL`` set): a call ``RPUSH``-es its event to ``gateway:usage`` (one round trip on
the request path, no database write). A drain *claims* a batch atomically (one Lua script moves up
to ``GATEWAY_USAGE_BATCH`` items from the list to ``gateway:usage:claim:<id>`` and records the claim
with its time in ``gateway:usage:claims``), ingests it, then deletes the claim. A drain that dies
between claiming and deleting (killed worker, lost database) leaves its claim behind; the next
drain takes over claims older than ``GATEWAY_USAGE_CLAIM_TIMEOUT_SECONDS`` and ingests them again.
Ingestion skips request ids already stored, so an event is stored exactly once however often it is
ingested - the reliable-queue pattern (``LMOVE``-style claim + idempotent consumer).

**In process** (the embedded default and the SQLite test runs): the same claim/ack protocol over a
deque, drained by the embedded worker's beat; it lives as long as the process does.

If Redis cannot take the event, the call stores it itself (synchronously, in a worker thread)
rather than losing it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from typing import Any

import orjson
from django.conf import settings

logger = logging.getLogger("modelhub.gateway")

LIST_KEY = "gateway:usage"
CLAIMS_KEY = "gateway:usage:claims"
CLAIM_PREFIX = "gateway:usage:claim:"

# KEYS[1] list, KEYS[2] claims zset, KEYS[3] this claim's list; ARGV[1] batch, ARGV[2] claim id, ARGV[3] now.
_CLAIM = """
local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #items == 0 then return items end
redis.call('LTRIM', KEYS[1], #items, -1)
for i = 1, #items, 500 do
  redis.call('RPUSH', KEYS[3], unpack(items, i, math.min(i + 499, #items)))
end
redis.call('ZADD', KEYS[2], tonumber(ARGV[3]), ARGV[2])
return items
"""


class RedisBuffer:
    def __init__(self, url: str) -> None:
        import redis

        self.url = url
        self.sync = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=10)
        self._claim = self.sync.register_script(_CLAIM)
        self._group: dict[int, tuple[list[bytes], list[Any]]] = {}

    async def push(self, items: list[dict[str, Any]]) -> None:
        """``RPUSH`` the events; returns once Redis has them. Calls that arrive while a push is in flight
        are sent together in the next one (group commit): a lone call is one round trip, and under load a
        process sends one ``RPUSH`` per batch instead of one per call."""
        import asyncio

        loop = asyncio.get_running_loop()
        future = loop.create_future()
        state = self._group.get(id(loop))
        if state is None:
            self._group[id(loop)] = state = ([], [])
        state[0].extend(orjson.dumps(i) for i in items)
        state[1].append(future)
        if len(state[1]) == 1:
            loop.create_task(self._group_commit(id(loop)))
        await future

    async def _group_commit(self, loop_id: int) -> None:
        from modelhub import redis_async

        state = self._group[loop_id]
        while state[1]:
            payloads, waiters = state[0][:], state[1][:]
            try:
                await redis_async.execute("RPUSH", LIST_KEY, *payloads)
            except Exception as exc:
                outcome: BaseException | None = exc
            else:
                outcome = None
            del state[0][: len(payloads)]
            del state[1][: len(waiters)]
            for waiter in waiters:
                if not waiter.done():
                    if outcome is None:
                        waiter.set_result(None)
                    else:
                        waiter.set_exception(outcome)

    def push_sync(self, items: list[dict[str, Any]]) -> None:
        self.sync.rpush(LIST_KEY, *[orjson.dumps(i) for i in items])

    def claim(self, batch: int) -> tuple[str, list[dict[str, Any]]]:
        claim_id = uuid.uuid4().hex
        raw = self._claim(keys=[LIST_KEY, CLAIMS_KEY, CLAIM_PREFIX + claim_id], args=[batch, claim_id, time.time()])
        return claim_id, [orjson.loads(r) for r in raw]

    def stale_claims(self, older_than: float) -> list[tuple[str, list[dict[str, Any]]]]:
        out = []
        for raw_id in self.sync.zrangebyscore(CLAIMS_KEY, "-inf", time.time() - older_than, start=0, num=20):
            claim_id = raw_id.decode()
            # take it over: a fresh timestamp, so two drains do not both pick it up at once
            self.sync.zadd(CLAIMS_KEY, {claim_id: time.time()})
            out.append((claim_id, [orjson.loads(r) for r in self.sync.lrange(CLAIM_PREFIX + claim_id, 0, -1)]))
        return out

    def ack(self, claim_id: str) -> None:
        pipe = self.sync.pipeline()
        pipe.delete(CLAIM_PREFIX + claim_id)
        pipe.zrem(CLAIMS_KEY, claim_id)
        pipe.execute()

    def pending(self) -> int:
        return int(self.sync.llen(LIST_KEY))

    def clear(self) -> None:
        for key in self.sync.scan_iter(f"{LIST_KEY}*", count=1000):
            self.sync.delete(key)


class MemoryBuffer:
    def __init__(self) -> None:
        self._items: deque[bytes] = deque()
        self._claims: dict[str, tuple[float, list[bytes]]] = {}
        self._lock = threading.Lock()

    async def push(self, items: list[dict[str, Any]]) -> None:
        self.push_sync(items)

    def push_sync(self, items: list[dict[str, Any]]) -> None:
        with self._lock:
            self._items.extend(orjson.dumps(i) for i in items)

    def claim(self, batch: int) -> tuple[str, list[dict[str, Any]]]:
        claim_id = uuid.uuid4().hex
        with self._lock:
            taken = [self._items.popleft() for _ in range(min(batch, len(self._items)))]
            if taken:
                self._claims[claim_id] = (time.time(), taken)
        return claim_id, [orjson.loads(r) for r in taken]

    def stale_claims(self, older_than: float) -> list[tuple[str, list[dict[str, Any]]]]:
        out = []
        with self._lock:
            for claim_id, (when, taken) in list(self._claims.items()):
                if when <= time.time() - older_than:
                    self._claims[claim_id] = (time.time(), taken)
                    out.append((claim_id, [orjson.loads(r) for r in taken]))
        return out

    def ack(self, claim_id: str) -> None:
        with self._lock:
            self._claims.pop(claim_id, None)

    def pending(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._claims.clear()


_buffer: RedisBuffer | MemoryBuffer | None = None
_buffer_lock = threading.Lock()


def get_buffer() -> RedisBuffer | MemoryBuffer:
    global _buffer
    if _buffer is None:
        with _buffer_lock:
            if _buffer is None:
                _buffer = RedisBuffer(settings.REDIS_URL) if settings.REDIS_URL else MemoryBuffer()
    return _buffer


def reset_buffer() -> None:
    """Forget the buffer (tests): the next use builds it again from settings."""
    global _buffer
    _buffer = None


def _ingest(items: list[dict[str, Any]]) -> dict[str, int]:
    from analytics import services as analytics_services
    from gateway.services import touch_api_keys

    events = [item["event"] for item in items]
    result = analytics_services.ingest_usage(events)
    if result.rejected:
        # Never silently: each rejected event is logged with its reason (an event the gateway built
        # should always be valid; a rejection means a bug or a model deleted meanwhile).
        for rejected in result.rejected[:20]:
            logger.error("gateway usage event rejected by ingestion: %s", rejected)
    last_used: dict[str, str] = {}
    for item in items:
        key_id = item.get("apiKeyId")
        if key_id and item["event"]["timestamp"] > last_used.get(key_id, ""):
            last_used[key_id] = item["event"]["timestamp"]
    if last_used:
        from django.utils.dateparse import parse_datetime

        touch_api_keys({k: parse_datetime(v) for k, v in last_used.items()})
    return {"accepted": result.accepted, "duplicates": result.duplicates, "rejected": len(result.rejected)}


def drain(*, max_batches: int = 50, claim_timeout: float | None = None) -> dict[str, int]:
    """Ingest what is buffered (stale claims of dead drains first). Safe to run concurrently and twice."""
    buffer = get_buffer()
    timeout = settings.GATEWAY_USAGE_CLAIM_TIMEOUT_SECONDS if claim_timeout is None else claim_timeout
    totals = {"accepted": 0, "duplicates": 0, "rejected": 0, "batches": 0, "recovered": 0}
    for claim_id, items in buffer.stale_claims(timeout):
        if items:
            for name, value in _ingest(items).items():
                totals[name] += value
            totals["recovered"] += len(items)
        buffer.ack(claim_id)
    for _ in range(max_batches):
        claim_id, items = buffer.claim(settings.GATEWAY_USAGE_BATCH)
        if not items:
            break
        for name, value in _ingest(items).items():
            totals[name] += value
        buffer.ack(claim_id)
        totals["batches"] += 1
    return totals
