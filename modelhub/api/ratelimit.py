"""Rate limiting that holds under concurrency: fixed windows checked and counted atomically.

A request is admitted only if *every* window it falls under still has room; then
all of them are counted, in one step. On Redis that step is one Lua script
(``EVALSHA``), so any number of ASGI processes share one budget and a burst of
200 concurrent requests against a limit of 100 admits exactly 100. The embedded
default uses :class:`MemoryLimiter`, the same algorithm under a lock.

Windows are aligned fixed windows (a minute window resets on the minute, per
Redis server time). Their weakness - up to twice the limit across a boundary -
is what ``burstLimit`` (a one-second window) bounds. A refused request counts in
no window.

The limiter is generic - ``hit(identity, windows)`` - so a deployment's own
``security.rateLimiting`` can be enforced with the same code and the same keys
discipline once traffic flows through deployments.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass

from django.conf import settings

logger = logging.getLogger("modelhub.ratelimit")


@dataclass(frozen=True)
class Window:
    """One limit: at most ``limit`` requests per ``period_ms``, counted under ``key``."""

    name: str
    limit: int
    period_ms: int
    key: str


@dataclass(frozen=True)
class WindowState:
    window: Window
    used: int
    reset_ms: int

    @property
    def remaining(self) -> int:
        return max(0, self.window.limit - self.used)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    states: tuple[WindowState, ...]

    @property
    def tightest(self) -> WindowState:
        """The window with the fewest requests left (ties: the one that resets last)."""
        return min(self.states, key=lambda s: (s.remaining, -s.reset_ms))

    @property
    def retry_after_seconds(self) -> int:
        blocked = [s.reset_ms for s in self.states if s.used >= s.window.limit]
        return max(1, math.ceil(max(blocked, default=0) / 1000))

    def headers(self) -> dict[str, str]:
        tight = self.tightest
        return {
            "X-RateLimit-Limit": str(tight.window.limit),
            "X-RateLimit-Remaining": str(tight.remaining),
            "X-RateLimit-Reset": str(max(1, math.ceil(tight.reset_ms / 1000))),
        }


# KEYS: one base key per window. ARGV[1]: "1" to count, "0" to only look; ARGV[2]: now in ms or "";
# then per window: limit, period_ms. Returns {allowed, used_1, reset_1, used_2, reset_2, ...}.
_LUA = """
local count = ARGV[1] == '1'
local now
if ARGV[2] ~= '' then
  now = tonumber(ARGV[2])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local n = #KEYS
local keys, used, reset, periods = {}, {}, {}, {}
local allowed = 1
for i = 1, n do
  local limit = tonumber(ARGV[1 + i * 2])
  local period = tonumber(ARGV[2 + i * 2])
  local bucket = math.floor(now / period)
  keys[i] = KEYS[i] .. ':' .. bucket
  periods[i] = period
  used[i] = tonumber(redis.call('GET', keys[i]) or '0')
  reset[i] = (bucket + 1) * period - now
  if used[i] >= limit then allowed = 0 end
end
if count and allowed == 1 then
  for i = 1, n do
    used[i] = redis.call('INCR', keys[i])
    if used[i] == 1 then redis.call('PEXPIRE', keys[i], periods[i] + 1000) end
  end
end
local out = {allowed}
for i = 1, n do
  out[#out + 1] = used[i]
  out[#out + 1] = reset[i]
end
return out
"""


def _decision(windows: list[Window], raw: list[int]) -> Decision:
    states = tuple(
        WindowState(window=w, used=int(raw[1 + 2 * i]), reset_ms=int(raw[2 + 2 * i])) for i, w in enumerate(windows)
    )
    return Decision(allowed=bool(raw[0]), states=states)


class RedisLimiter:
    """All windows of a check in one Lua script: atomic across processes."""

    def __init__(self, url: str):
        import redis

        self.client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        self.script = self.client.register_script(_LUA)

    def _run(self, windows: list[Window], count: bool, now_ms: int | None) -> Decision:
        args: list[int | str] = ["1" if count else "0", "" if now_ms is None else now_ms]
        for w in windows:
            args.extend([w.limit, w.period_ms])
        return _decision(windows, self.script(keys=[w.key for w in windows], args=args))

    def hit(self, windows: list[Window], *, now_ms: int | None = None) -> Decision:
        return self._run(windows, True, now_ms)

    def peek(self, windows: list[Window], *, now_ms: int | None = None) -> Decision:
        return self._run(windows, False, now_ms)

    def reset(self) -> None:
        for key in self.client.scan_iter("rl:*", count=1000):
            self.client.delete(key)


class MemoryLimiter:
    """The same algorithm in process memory, for the embedded (single-process) default."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, int]] = {}  # bucket key -> (count, expires_at_ms)
        self._last_sweep = 0

    def _run(self, windows: list[Window], count: bool, now_ms: int | None) -> Decision:
        now = int(time.time() * 1000) if now_ms is None else now_ms
        with self._lock:
            self._sweep(now)
            keys, raw = [], [1]
            for w in windows:
                bucket = now // w.period_ms
                key = f"{w.key}:{bucket}"
                used = self._counts.get(key, (0, 0))[0]
                keys.append((key, (bucket + 1) * w.period_ms + 1000))
                raw.extend([used, (bucket + 1) * w.period_ms - now])
                if used >= w.limit:
                    raw[0] = 0
            if count and raw[0] == 1:
                for i, (key, expires) in enumerate(keys):
                    used = self._counts.get(key, (0, 0))[0] + 1
                    self._counts[key] = (used, expires)
                    raw[1 + 2 * i] = used
        return _decision(windows, raw)

    def _sweep(self, now: int) -> None:
        if now - self._last_sweep < 10_000:
            return
        self._last_sweep = now
        for key in [k for k, (_, expires) in self._counts.items() if expires < now]:
            del self._counts[key]

    def hit(self, windows: list[Window], *, now_ms: int | None = None) -> Decision:
        return self._run(windows, True, now_ms)

    def peek(self, windows: list[Window], *, now_ms: int | None = None) -> Decision:
        return self._run(windows, False, now_ms)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


_limiter: RedisLimiter | MemoryLimiter | None = None
_limiter_lock = threading.Lock()


def get_limiter() -> RedisLimiter | MemoryLimiter:
    """The process's limiter: Redis when ``REDIS_URL`` is set, memory otherwise."""
    global _limiter
    if _limiter is None:
        with _limiter_lock:
            if _limiter is None:
                _limiter = RedisLimiter(settings.REDIS_URL) if settings.REDIS_URL else MemoryLimiter()
    return _limiter


def reset_limiter() -> None:
    """Forget every counter (tests) and rebuild the limiter from settings."""
    global _limiter
    if _limiter is not None:
        try:
            _limiter.reset()
        except Exception:
            logger.warning("could not reset rate-limit counters")
    _limiter = None


# The batched form for async callers: ARGV[1] = n requests arriving together; the first `grant` of them
# are admitted (grant = the smallest room left in any window, 0..n) and counted in one INCRBY per
# window. Returns {grant, used_before_1, reset_1, used_before_2, reset_2, ...}. For n = 1 it is _LUA.
_LUA_BATCH = """
local n = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local keys, used, reset, periods = {}, {}, {}, {}
local grant = n
for i = 1, #KEYS do
  local limit = tonumber(ARGV[i * 2])
  local period = tonumber(ARGV[1 + i * 2])
  local bucket = math.floor(now / period)
  keys[i] = KEYS[i] .. ':' .. bucket
  periods[i] = period
  used[i] = tonumber(redis.call('GET', keys[i]) or '0')
  reset[i] = (bucket + 1) * period - now
  if limit - used[i] < grant then grant = limit - used[i] end
end
if grant < 0 then grant = 0 end
if grant > 0 then
  for i = 1, #KEYS do
    if redis.call('INCRBY', keys[i], grant) == grant then redis.call('PEXPIRE', keys[i], periods[i] + 1000) end
  end
end
local out = {grant}
for i = 1, #KEYS do
  out[#out + 1] = used[i]
  out[#out + 1] = reset[i]
end
return out
"""


class AsyncRedisLimiter:
    """The limiter for async callers (the gateway), exact across processes like :class:`RedisLimiter`.

    Requests with the same windows that arrive while a check for them is in flight are *coalesced*:
    when the flight returns, they go to Redis together as one batched script call that admits the
    first ``grant`` of them atomically. A lone request is one round trip as before; under load a
    deployment's limit costs one round trip per batch instead of one per request. On the process's
    shared async Redis pool (:mod:`modelhub.redis_async`).
    """

    def __init__(self) -> None:
        self._sha: str | None = None
        self._pending: dict[tuple[int, tuple[str, ...]], list] = {}

    async def _script(self, keys: list[str], args: list) -> list[int]:
        import hashlib

        from redis.exceptions import NoScriptError

        from modelhub import redis_async

        if self._sha is None:
            self._sha = hashlib.sha1(_LUA_BATCH.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1
        try:
            return await redis_async.execute("EVALSHA", self._sha, len(keys), *keys, *args)
        except NoScriptError:  # first use, or Redis restarted (scripts are not persisted)
            await redis_async.execute("SCRIPT", "LOAD", _LUA_BATCH)
            return await redis_async.execute("EVALSHA", self._sha, len(keys), *keys, *args)

    async def hit(self, windows: list[Window]) -> Decision:
        import asyncio

        loop = asyncio.get_running_loop()
        key = (id(loop), tuple(w.key for w in windows))
        future = loop.create_future()
        queue = self._pending.get(key)
        if queue is None:
            self._pending[key] = queue = [future]
            loop.create_task(self._flush(key, windows))
        else:
            queue.append(future)
        return await future

    async def _flush(self, key: tuple, windows: list[Window]) -> None:
        try:
            while self._pending.get(key):
                batch = self._pending[key]
                self._pending[key] = []
                args: list[int] = [len(batch)]
                for w in windows:
                    args.extend([w.limit, w.period_ms])
                try:
                    raw = await self._script([w.key for w in windows], args)
                except Exception as exc:
                    for future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                grant = int(raw[0])
                before = [int(raw[1 + 2 * i]) for i in range(len(windows))]
                resets = [int(raw[2 + 2 * i]) for i in range(len(windows))]
                for index, future in enumerate(batch):
                    admitted = index < grant
                    counted = index + 1 if admitted else grant
                    states = tuple(
                        WindowState(window=w, used=before[i] + counted, reset_ms=resets[i])
                        for i, w in enumerate(windows)
                    )
                    if not future.done():
                        future.set_result(Decision(allowed=admitted, states=states))
        finally:
            self._pending.pop(key, None)


_async_limiter = AsyncRedisLimiter()


async def async_hit(windows: list[Window]) -> Decision:
    """Count a request in ``windows`` from async code: Redis when configured, else the process's memory limiter."""
    if not settings.REDIS_URL:
        return get_limiter().hit(windows)
    return await _async_limiter.hit(windows)
