"""Spend counters and holds: reserve, then settle; in Redis (shared by every process) or in process.

A counter is the month's spend of one *scope* (``all``, ``m:<model id>``, ``p:<provider>``,
``e:<environment>``) in exact integer units of 1e-8 USD (the events table's cost quantum), under
``cost:{YYYY-MM}:<scope>`` - the period is in the key, so a new month is a new key and nothing resets
anything. Beside it ``...:held`` is the part of it that is outstanding holds.

* **reserve** (one Lua script, atomic): lapse up to 50 expired holds of the period (their amounts leave
  the counters), answer ``missing`` if a counter does not exist (the caller re-seeds it from the
  database and retries), refuse when ``counter + amount`` passes a scope's block limit (nothing is
  incremented), else add ``amount`` to every counter and record the hold (``...:hold:<id>`` with its
  amount and keys, and its expiry in the period's ``holds`` sorted set). Answers the counters' values.
* **settle**: the hold's counters get ``actual - amount``; a hold that already lapsed adds ``actual``.
  Settling twice is settling once (the hold is gone after the first).
* **seed**: ``SET NX`` of the database's spend - idempotent, so N processes seeding at once seed once.
* **correct**: raises a counter to ``database spend + held`` when it is below (events ingested
  without the gateway: they count within a reconcile interval); never lowers one, so nothing counts twice.

Every key of a period carries the same hash tag (``{YYYY-MM}``), so a script's keys share a Redis
Cluster slot. The embedded default (no Redis) uses :class:`MemoryLedger`: the same operations on
dicts under one lock, for its single process.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings

COUNTER_TTL_MS = 40 * 86_400_000  # a month's counters outlive the month, then go

_RESERVE = """
local n = #KEYS
local prefix = ARGV[5]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local holds = prefix .. 'holds'
local stale = redis.call('ZRANGEBYSCORE', holds, '-inf', now, 'LIMIT', 0, 50)
for _, id in ipairs(stale) do
  local h = prefix .. 'hold:' .. id
  local amount = redis.call('HGET', h, 'amount')
  local keys = redis.call('HGET', h, 'keys')
  if amount and keys then
    for k in string.gmatch(keys, '[^|]+') do
      if redis.call('EXISTS', k) == 1 then
        redis.call('DECRBY', k, amount)
        redis.call('DECRBY', k .. ':held', amount)
      end
    end
  end
  redis.call('DEL', h)
  redis.call('ZREM', holds, id)
end
local missing = {-1}
for i = 1, n do
  if redis.call('EXISTS', KEYS[i]) == 0 then missing[#missing + 1] = i end
end
if #missing > 1 then return missing end
local amount = tonumber(ARGV[2])
local out = {1, 0}
for i = 1, n do
  local v = tonumber(redis.call('GET', KEYS[i]))
  out[#out + 1] = v
  local limit = tonumber(ARGV[5 + i])
  if out[2] == 0 and limit >= 0 and v + amount > limit then
    out[1] = 0
    out[2] = i
  end
end
if out[1] == 0 or amount == 0 then return out end
for i = 1, n do
  redis.call('INCRBY', KEYS[i], ARGV[2])
  redis.call('INCRBY', KEYS[i] .. ':held', ARGV[2])
end
local h = prefix .. 'hold:' .. ARGV[1]
redis.call('HSET', h, 'amount', ARGV[2], 'keys', table.concat(KEYS, '|'))
redis.call('PEXPIRE', h, ARGV[4])
redis.call('ZADD', holds, now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', holds, ARGV[4])
return out
"""

_SETTLE = """
local h = ARGV[3] .. 'hold:' .. ARGV[1]
local amount = redis.call('HGET', h, 'amount')
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('INCRBY', KEYS[i], ARGV[2])
    if amount then
      redis.call('DECRBY', KEYS[i], amount)
      redis.call('DECRBY', KEYS[i] .. ':held', amount)
    end
  end
end
redis.call('DEL', h)
redis.call('ZREM', ARGV[3] .. 'holds', ARGV[1])
if amount then return 1 end
return 0
"""

_SEED = """
local set = 0
for i = 1, #KEYS do
  if redis.call('SET', KEYS[i], ARGV[i], 'NX', 'PX', ARGV[#KEYS + 1]) then
    set = set + 1
    redis.call('SET', KEYS[i] .. ':held', '0', 'PX', ARGV[#KEYS + 1])
  end
end
return set
"""

_CORRECT = """
local raised = 0
for i = 1, #KEYS do
  local c = redis.call('GET', KEYS[i])
  if c then
    local held = tonumber(redis.call('GET', KEYS[i] .. ':held') or '0')
    local floor = tonumber(ARGV[i]) + held
    if tonumber(c) < floor then
      redis.call('SET', KEYS[i], string.format('%d', floor), 'KEEPTTL')
      raised = raised + 1
    end
  end
end
return raised
"""

_BODIES = {"reserve": _RESERVE, "settle": _SETTLE, "seed": _SEED, "correct": _CORRECT}
# Redis names scripts by SHA-1 (EVALSHA); not a security use.
SCRIPTS = {name: (body, hashlib.sha1(body.encode()).hexdigest()) for name, body in _BODIES.items()}  # noqa: S324


def prefix(period: str) -> str:
    return f"cost:{{{period}}}:"


def counter_key(period: str, scope: str) -> str:
    return f"{prefix(period)}{scope}"


@dataclass(frozen=True)
class Reserved:
    """What reserve answered: ``status`` 1 reserved, 0 refused (``blocked`` = index of the scope), -1 missing."""

    status: int
    blocked: int
    values: tuple[int, ...]  # the counters before this reservation (status 0/1), or the missing indexes (-1)


def _reserved(raw: list[Any]) -> Reserved:
    raw = [int(v) for v in raw]
    if raw[0] == -1:
        return Reserved(-1, 0, tuple(i - 1 for i in raw[1:]))
    return Reserved(raw[0], raw[1], tuple(raw[2:]))


def _reserve_args(hold_id: str, amount: int, ttl_ms: int, period: str, limits: list[int]) -> list[Any]:
    return [hold_id, amount, ttl_ms, COUNTER_TTL_MS, prefix(period), *limits]


class RedisLedger:
    """The scripts through the async pipelined connection (gateway) or a sync client (tasks, views)."""

    def __init__(self) -> None:
        self._client: Any = None
        self._url = ""

    # --- async (the gateway's hot path: one round trip) ---
    async def _aeval(self, name: str, keys: list[str], args: list[Any]) -> Any:
        from redis.exceptions import NoScriptError

        from modelhub import redis_async

        body, sha = SCRIPTS[name]
        try:
            return await redis_async.execute("EVALSHA", sha, len(keys), *keys, *args)
        except NoScriptError:
            await redis_async.execute("SCRIPT", "LOAD", body)
            return await redis_async.execute("EVALSHA", sha, len(keys), *keys, *args)

    async def areserve(self, keys, hold_id, amount, ttl_ms, period, limits) -> Reserved:
        return _reserved(await self._aeval("reserve", keys, _reserve_args(hold_id, amount, ttl_ms, period, limits)))

    async def asettle(self, keys, hold_id, actual, period) -> bool:
        return bool(await self._aeval("settle", keys, [hold_id, actual, prefix(period)]))

    async def aseed(self, keys, values) -> int:
        return int(await self._aeval("seed", keys, [*values, COUNTER_TTL_MS]))

    # --- sync ---
    def _redis(self) -> Any:
        if self._client is None or self._url != settings.REDIS_URL:
            import redis

            self._client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=2)
            self._url = settings.REDIS_URL
        return self._client

    def _eval(self, name: str, keys: list[str], args: list[Any]) -> Any:
        from redis.exceptions import NoScriptError

        body, sha = SCRIPTS[name]
        client = self._redis()
        try:
            return client.evalsha(sha, len(keys), *keys, *args)
        except NoScriptError:
            client.script_load(body)
            return client.evalsha(sha, len(keys), *keys, *args)

    def reserve(self, keys, hold_id, amount, ttl_ms, period, limits) -> Reserved:
        return _reserved(self._eval("reserve", keys, _reserve_args(hold_id, amount, ttl_ms, period, limits)))

    def settle(self, keys, hold_id, actual, period) -> bool:
        return bool(self._eval("settle", keys, [hold_id, actual, prefix(period)]))

    def seed(self, keys, values) -> int:
        return int(self._eval("seed", keys, [*values, COUNTER_TTL_MS]))

    def correct(self, keys, floors) -> int:
        return int(self._eval("correct", keys, list(floors))) if keys else 0

    def values(self, keys) -> list[int | None]:
        if not keys:
            return []
        return [None if v is None else int(v) for v in self._redis().mget(keys)]

    def held(self, keys) -> list[int]:
        if not keys:
            return []
        return [int(v or 0) for v in self._redis().mget([f"{k}:held" for k in keys])]

    def reset(self) -> None:
        client = self._redis()
        for key in client.scan_iter("cost:*", count=1000):
            client.delete(key)


class MemoryLedger:
    """The same operations for the embedded default: one process, one lock, the same semantics."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, int] = {}
        self._held: dict[str, int] = {}
        self._holds: dict[str, tuple[float, int, tuple[str, ...]]] = {}  # id -> (expires, amount, keys)

    def _lapse(self, now: float) -> None:
        for hold_id in [h for h, (exp, _, _) in self._holds.items() if exp <= now][:50]:
            _, amount, keys = self._holds.pop(hold_id)
            for k in keys:
                if k in self._counters:
                    self._counters[k] -= amount
                    self._held[k] = self._held.get(k, 0) - amount

    def reserve(self, keys, hold_id, amount, ttl_ms, period, limits) -> Reserved:
        with self._lock:
            now = time.monotonic()
            self._lapse(now)
            missing = tuple(i for i, k in enumerate(keys) if k not in self._counters)
            if missing:
                return Reserved(-1, 0, missing)
            values = tuple(self._counters[k] for k in keys)
            for i, (value, limit) in enumerate(zip(values, limits, strict=True)):
                if limit >= 0 and value + amount > limit:
                    return Reserved(0, i + 1, values)
            if amount:
                for k in keys:
                    self._counters[k] += amount
                    self._held[k] = self._held.get(k, 0) + amount
                self._holds[hold_id] = (now + ttl_ms / 1000, amount, tuple(keys))
            return Reserved(1, 0, values)

    def settle(self, keys, hold_id, actual, period) -> bool:
        with self._lock:
            hold = self._holds.pop(hold_id, None)
            for k in keys:
                if k in self._counters:
                    self._counters[k] += actual - (hold[1] if hold else 0)
                    if hold:
                        self._held[k] = self._held.get(k, 0) - hold[1]
            return hold is not None

    def seed(self, keys, values) -> int:
        with self._lock:
            count = 0
            for k, v in zip(keys, values, strict=True):
                if k not in self._counters:
                    self._counters[k], self._held[k] = int(v), 0
                    count += 1
            return count

    def correct(self, keys, floors) -> int:
        with self._lock:
            raised = 0
            for k, floor in zip(keys, floors, strict=True):
                if k in self._counters and self._counters[k] < floor + self._held.get(k, 0):
                    self._counters[k] = floor + self._held.get(k, 0)
                    raised += 1
            return raised

    def values(self, keys) -> list[int | None]:
        with self._lock:
            return [self._counters.get(k) for k in keys]

    def held(self, keys) -> list[int]:
        with self._lock:
            return [self._held.get(k, 0) for k in keys]

    # The async face is the sync one: nothing here waits.
    async def areserve(self, *args) -> Reserved:
        return self.reserve(*args)

    async def asettle(self, *args) -> bool:
        return self.settle(*args)

    async def aseed(self, *args) -> int:
        return self.seed(*args)

    def reset(self) -> None:
        with self._lock:
            self._counters.clear()
            self._held.clear()
            self._holds.clear()


_redis_ledger = RedisLedger()
_memory_ledger = MemoryLedger()


def get_ledger() -> RedisLedger | MemoryLedger:
    return _redis_ledger if settings.REDIS_URL else _memory_ledger
