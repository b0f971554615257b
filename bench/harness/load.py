"""Closed-loop HTTP load: :func:`run_load` (httpx or :class:`~.rawhttp.RawConnection` clients) and
:func:`measured_load` (the same in its own event loop, with the machine's CPU during it)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .cpu import CpuMeter
from .rawhttp import RawConnection
from .stats import Stats

if TYPE_CHECKING:
    from .server import Server

# ``sample(stats, headers, body)``: called for every ``sample_every``-th 200 response of a client
# in the measured phase; ``headers`` has lower-cased names (empty unless asked for).
Sampler = Callable[[Stats, dict, bytes], None]


async def run_load(
    base_url: str,
    headers: dict,
    make_url,
    *,
    concurrency: int,
    duration: float,
    warmup: float,
    sample_every: int = 0,
    sample: Sampler | None = None,
    sample_headers: bool = False,
    client_kind: str = "raw",
) -> Stats:
    """Closed loop: ``concurrency`` workers send back-to-back requests until the deadline.

    ``make_url(i)`` returns client ``i``'s ``next_url()``. ``client_kind`` is ``"raw"``
    (:class:`RawConnection`) or ``"httpx"`` (``httpx.AsyncClient``). Every ``sample_every``-th
    200 response of each client goes to ``sample(stats, headers, body)``; ``headers`` is ``{}``
    unless ``sample_headers`` (collecting them costs the raw client a little CPU).
    """
    import httpx

    stats = Stats()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    timeout = httpx.Timeout(10.0, connect=5.0)
    host, port = base_url.rsplit("//", 1)[1].split(":")
    sampling = bool(sample_every and sample)
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, http1=True, http2=False, limits=limits, timeout=timeout, trust_env=False
    ) as client:

        async def worker(index: int, until: float, record: bool) -> None:
            next_url = make_url(index)
            raw = RawConnection(host, int(port), headers) if client_kind == "raw" else None
            n = 0
            try:
                while time.perf_counter() < until:
                    url = next_url()
                    want = sampling and record and (n + 1) % sample_every == 0
                    started = time.perf_counter()
                    try:
                        if raw is not None:
                            status, body = await asyncio.wait_for(raw.get(url, want and sample_headers), timeout=10)
                            response_headers = raw.last_headers if want and sample_headers else {}
                        else:
                            response = await client.get(url)
                            status, body = response.status_code, response.content
                            response_headers = (
                                {k.lower(): v for k, v in response.headers.items()} if want and sample_headers else {}
                            )
                    except Exception as exc:
                        if record:
                            stats.errors[type(exc).__name__] += 1
                            if len(stats.error_samples) < 5:
                                stats.error_samples.append(f"{type(exc).__name__}: {exc} ({url})")
                        await asyncio.sleep(0.01)
                        continue
                    elapsed_ms = (time.perf_counter() - started) * 1000
                    if not record:
                        stats.warmup_ok += status == 200
                        continue
                    if status != 200:
                        stats.errors[f"HTTP {status}"] += 1
                        if len(stats.error_samples) < 5:
                            stats.error_samples.append(f"HTTP {status} {url}: {body[:300]!r}")
                        continue
                    stats.latencies_ms.append(elapsed_ms)
                    stats.bytes_received += len(body)
                    n += 1
                    if want:
                        sample(stats, response_headers, body)
            finally:
                if raw is not None:
                    raw.close()

        async def phase(length: float, record: bool) -> float:
            until = time.perf_counter() + length
            started = time.perf_counter()
            cpu_started = time.process_time()
            tasks = [asyncio.create_task(worker(i, until, record)) for i in range(concurrency)]
            try:
                # Hard bound: the deadline plus the per-request timeout and some slack.
                await asyncio.wait_for(asyncio.gather(*tasks), timeout=length + 30)
            except TimeoutError:
                stats.errors["phase timeout"] += 1
            if record:
                stats.client_cpu_s = time.process_time() - cpu_started
            return time.perf_counter() - started

        if warmup > 0:
            await phase(warmup, record=False)
        stats.elapsed_s = await phase(duration, record=True)
    return stats


def measured_load(server: Server, headers: dict, make_url, **options) -> Stats:
    """:func:`run_load` against ``server`` in its own event loop; the machine's CPU use during it (seconds,
    by process group, warm-up included) goes to the Stats' ``machine_busy_s``, ``cpu`` and ``phase_wall_s``."""
    meter = CpuMeter()
    started = time.perf_counter()
    stats = asyncio.run(run_load(server.base_url, headers, make_url, **options))
    stats.machine_busy_s, stats.cpu = meter.stop(server.pid)
    stats.phase_wall_s = time.perf_counter() - started
    return stats
