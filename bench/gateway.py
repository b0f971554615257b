#!/usr/bin/env python
"""Gateway benchmark: one OpenAI-compatible stub upstream, three paths to it, in one run.

    .venv/bin/python bench/gateway.py [--quick] [--seconds 15] [--sequential 2000] [--streams 1000]

The paths, all on 127.0.0.1:

- **direct**: the stub itself (``bench/harness/upstream.py``, one uvicorn process per stub);
- **hub**: ``POST /api/v1/modelhub/deployments/{id}/v1/chat/completions`` with a hub API key, served by
  ``uvicorn modelhub.asgi:application`` (``--workers 1``; ``--workers 2`` for the streams) against
  PostgreSQL and Redis; each deployment names its stub as host/port (``apiBase`` ``/v1``);
- **portkey**: Portkey's open-source gateway (``@portkey-ai/gateway`` 1.15.2 from npm, ``--headless``), with
  ``x-portkey-provider: openai`` and ``x-portkey-custom-host: <stub>/v1``.

Steps (every step bounded in time; every server is stopped at the end, also when a step fails):

1. installs Portkey with npm into ``~/.cache/modelhub-bench/portkey`` when it is missing (outside the repo);
2. drops and re-creates the database ``modelhub_bench_gateway``, migrates, clears Redis DB 13;
3. starts three stubs: instant, answering in ``--slow-ms`` (50 ms), and streaming over ``--stream-seconds``
   (2 s: the chunks spaced evenly); in a ``django.setup()`` subprocess (``--setup-worker``) creates an admin
   with a rate-limit override, a catalog model (provider ``openai``), one ``running`` deployment per stub
   (rate limit 1,000,000/min, burst 100,000) and an API key (``gateway.services.api_key_create``);
4. starts Portkey and the hub, checks one call on every path (status and reply);
5. **sequential**: one client, ``--sequential`` rounds, each round one call per path, the order rotating
   every round so that drift hits all three alike: the p50/p99 each gateway adds over direct;
6. **throughput**: ``--concurrency`` (64) closed-loop clients against the instant stub, then against the
   50 ms stub, each path on its own (``--warmup`` s not counted, then ``--seconds`` s);
7. **streams**: the hub restarted with ``--workers 2``; ``--streams`` (1,000) concurrent streaming calls
   against the 2 s stub, direct first as the reference, then through the hub; each must answer 200, end with
   ``data: [DONE]`` and carry the whole reply.

The load client is the bench process itself (a small httptools HTTP/1.1 client on uvloop, one keep-alive
connection per client), separate from every server process - but client, servers, PostgreSQL and Redis
share the same 2 cores. Only 200 responses with the expected reply count; everything else is an error.
The last line is one JSON object::

    {"added_p50_ms", "added_p99_ms", "peer_added_p50_ms", "ratio_to_peer", "rps_64", "peer_rps_64",
     "throughput_vs_peer", "throughput_ratio_50ms", "streams_ok", "streams_failed"}
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/harness
from harness.cpu import check_idle, machine_cpu, process_cpu
from harness.db import redis_delete_matching, reset_database
from harness.env import bench_env, bench_target, migrate, run_worker
from harness.paths import API, PYTHON, ROOT, UVICORN
from harness.rawhttp import RawConnection
from harness.report import describe, step
from harness.seed import bench_user, django_setup
from harness.server import Server, free_port, stop_server, tail
from harness.stats import Stats, num, percentile, percentiles

DB_NAME, REDIS_URL = bench_target("modelhub_bench_gateway", "redis://127.0.0.1:6379/13")
ADMIN_USERNAME = "bench-gw-admin"
PORTKEY_VERSION = "1.15.2"
PORTKEY_PACKAGE = "@portkey-ai/gateway"
PORTKEY_DIR = Path(os.environ.get("BENCH_PORTKEY_DIR") or Path.home() / ".cache" / "modelhub-bench" / "portkey")
STUB_KEY = "sk-stub"
MODEL_NAME = "stub-model"
PROMPT = "hello from the gateway bench"
EXPECTED_REPLY = "stub reply to: " + PROMPT
# Events of a stream: the role chunk, one per word, the finish chunk, [DONE] -> pauses between them.
STREAM_EVENTS = 1 + len(EXPECTED_REPLY.split()) + 1 + 1
RATE_LIMITING = {"requestsPerMinute": 1_000_000, "burstLimit": 100_000}
PHASES = ("sequential", "instant", "slow", "streams")


# --- Setup (subprocess with django.setup()) ---------------------------------------------------------


def setup_worker(ports: dict[str, int]) -> None:
    """Admin with a rate-limit override, the catalog model, one running deployment per stub, an API key."""
    django_setup()
    from catalog.models import ModelRegistry
    from deployments.config import nest
    from deployments.models import Deployment
    from gateway.services import api_key_create

    admin, _ = bench_user(ADMIN_USERNAME, "admin")
    model = ModelRegistry.objects.create(
        name=MODEL_NAME,
        version="1",
        provider="openai",
        model_type="text",
        description="the bench's stub upstream",
        max_tokens=4096,
        context_window=32768,
        baseline_avg_latency_ms=1.0,
        baseline_cost_per_1k_tokens="0.0010",
        baseline_success_rate=1.0,
    )
    ids = {}
    for name, port in ports.items():
        flat = {
            "replicas": 1,
            "host": "127.0.0.1",
            "port": port,
            "apiBase": "/v1",
            "scheme": "http",
            "timeout": 60,
            "retries": 0,
            "authentication": True,
            "rateLimiting": dict(RATE_LIMITING),
        }
        configuration = nest(flat)
        for key in ("host", "port", "apiBase", "scheme"):
            if key not in configuration.get("networking", {}):
                raise RuntimeError(f"deployments.config.nest() dropped {key!r}: {configuration}")
        deployment = Deployment.objects.create(
            model=model,
            version="1",
            environment="development",
            status="running",
            replicas=1,
            configuration=configuration,
            owner=admin,
        )
        ids[name] = str(deployment.pk)
    _, secret = api_key_create(owner=admin, name="bench")
    if os.environ.get("BENCH_GATEWAY_BUDGET") == "1":
        # --budget: a hub-wide budget with a block threshold, so every call reserves its worst case
        # before the upstream attempt and settles after (two more Redis round trips per call).
        from decimal import Decimal

        from costs.services import budget_create

        budget_create(
            actor=admin,
            monthly_budget=Decimal("1000000000"),
            alerts=[{"threshold": 100, "action": "block", "channels": []}],
            categories={},
            name="bench",
        )
    print(json.dumps({"deployments": ids, "api_key": secret}), flush=True)


# --- Processes: stubs, Portkey, the hub ----------------------------------------------------------------


def _popen(cmd: list[str], env: dict, log_path: Path, cwd: Path = ROOT) -> subprocess.Popen:
    with open(log_path, "wb") as log:
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_port(port: int, proc: subprocess.Popen, log_path: Path, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{tail(log_path)}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not accept connections within {timeout:.0f}s:\n{tail(log_path)}")


class Process:
    """A server process (its own process group) for a ``with`` block, stopped like the hub's uvicorn."""

    def __init__(self, name: str, cmd: list[str], env: dict, port: int, cwd: Path = ROOT) -> None:
        self.name, self.cmd, self.env, self.port, self.cwd = name, cmd, env, port, cwd
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = Path(tempfile.gettempdir()) / f"modelhub-bench-gw-{name}-{port}.log"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Process:
        self.proc = _popen(self.cmd, self.env, self.log_path, self.cwd)
        _wait_port(self.port, self.proc, self.log_path, self.name)
        return self

    def __exit__(self, *exc_info) -> None:
        if self.proc is not None:
            stop_server(self.proc)

    @property
    def pid(self) -> int:
        return self.proc.pid


def stub_process(name: str, env: dict, delay_ms: float = 0, chunk_delay_ms: float = 0) -> Process:
    port = free_port()
    cmd = [str(PYTHON), "-m", "bench.harness.upstream", "--port", str(port)]
    cmd += ["--delay-ms", f"{delay_ms:g}", "--chunk-delay-ms", f"{chunk_delay_ms:g}"]
    return Process(name, cmd, env, port)


def portkey_entry() -> Path:
    return PORTKEY_DIR / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"


def ensure_portkey() -> Path:
    """``npm install --prefix <cache dir> @portkey-ai/gateway@1.15.2`` unless that version is there."""
    manifest = PORTKEY_DIR / "node_modules" / "@portkey-ai" / "gateway" / "package.json"
    try:
        installed = json.loads(manifest.read_text()).get("version")
    except (OSError, ValueError):
        installed = None
    if installed != PORTKEY_VERSION or not portkey_entry().exists():
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("npm is not on PATH (Portkey's gateway is installed with npm)")
        PORTKEY_DIR.mkdir(parents=True, exist_ok=True)
        step(f"installing {PORTKEY_PACKAGE}@{PORTKEY_VERSION} into {PORTKEY_DIR} (npm)")
        result = subprocess.run(
            [npm, "install", "--prefix", str(PORTKEY_DIR), f"{PORTKEY_PACKAGE}@{PORTKEY_VERSION}", "--no-audit"]
            + ["--no-fund"],
            cwd=PORTKEY_DIR,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if result.returncode != 0 or not portkey_entry().exists():
            raise RuntimeError(
                f"npm install failed ({result.returncode}):\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
            )
    return portkey_entry()


def portkey_process() -> Process:
    """Portkey's CLI: ``--headless``, and ``--port=N`` (8787 unless given); it listens on every interface."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not on PATH")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTKEY", "REDIS_CONNECTION"))}
    env["NODE_ENV"] = "production"  # no UI, no dev logging
    return Process("portkey", [node, str(ensure_portkey()), "--headless", f"--port={port}"], env, port, PORTKEY_DIR)


class HubServer(Server):
    """The harness's :class:`Server`, started as this benchmark wants it: ``--lifespan off``, uvloop, httptools."""

    def __enter__(self) -> HubServer:
        cmd = [str(UVICORN), "modelhub.asgi:application", "--host", "127.0.0.1", "--port", str(self.port)]
        cmd += ["--workers", str(self.workers), "--no-access-log", "--log-level", "warning", "--lifespan", "off"]
        cmd += ["--loop", "uvloop", "--http", "httptools", "--backlog", "4096"]
        self.proc = _popen(cmd, self.env, self.log_path)
        return self


# --- The load client -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One path: where to connect and the exact request bytes to send (HTTP/1.1, keep-alive)."""

    label: str
    host: str
    port: int
    request: bytes
    stream: bool = False


def make_target(label: str, url: str, path: str, headers: dict[str, str], stream: bool = False) -> Target:
    host, port = url.rsplit("//", 1)[1].split(":")
    body: dict = {"model": MODEL_NAME, "messages": [{"role": "user", "content": PROMPT}]}
    if stream:
        body["stream"] = True
    data = json.dumps(body, separators=(",", ":")).encode()
    head = {"Host": f"{host}:{port}", "Content-Type": "application/json", "Content-Length": str(len(data)), **headers}
    request = f"POST {path} HTTP/1.1\r\n".encode() + "".join(f"{k}: {v}\r\n" for k, v in head.items()).encode()
    return Target(label, host, int(port), request + b"\r\n" + data, stream)


class _Response:
    __slots__ = ("chunks", "done", "first_body")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.done = False
        self.first_body = 0.0

    def on_body(self, body: bytes) -> None:
        if not self.first_body:
            self.first_body = time.perf_counter()
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        self.done = True


class Connection:
    """One keep-alive connection sending a target's request (:class:`RawConnection`); opened on first use
    and after a close."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.raw = RawConnection(target.host, target.port, {})

    async def call(self, timeout: float) -> tuple[int, bytes, float]:
        """(status, body, time of the first body byte) of one call."""
        response = _Response()
        async with asyncio.timeout(timeout):
            status = await self.raw.exchange(self.target.request, response)
        return status, b"".join(response.chunks), response.first_body

    def close(self) -> None:
        self.raw.close()


def reply_problem(body: bytes) -> str | None:
    """Why a chat.completion body is not the stub's expected answer, or None."""
    try:
        content = json.loads(body)["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return "not a chat.completion"
    return None if content == EXPECTED_REPLY else f"unexpected content {content!r}"


def stream_problem(body: bytes) -> str | None:
    """Why an SSE body is not the stub's whole streamed reply ending with [DONE], or None."""
    text, done = [], False
    for line in body.split(b"\n"):
        line = line.strip()
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            done = True
            continue
        try:
            chunk = json.loads(data)
        except ValueError:
            return "an event that is not JSON"
        for choice in chunk.get("choices") or ():
            text.append((choice.get("delta") or {}).get("content") or "")
    if not done:
        return "no data: [DONE]"
    return None if "".join(text) == EXPECTED_REPLY else f"unexpected content {''.join(text)!r}"


def _error(stats: Stats, kind: str, sample: str) -> None:
    stats.errors[kind] += 1
    if len(stats.error_samples) < 5:
        stats.error_samples.append(sample[:300])


async def closed_loop(target: Target, concurrency: int, duration: float, warmup: float, check_every: int = 50) -> Stats:
    """``concurrency`` clients, back-to-back calls; the warm-up's calls are not counted. Every
    ``check_every``-th answer of each client (and every non-200) is checked against the stub's reply."""
    stats = Stats()

    async def worker(until: float, record: bool) -> None:
        conn, n = Connection(target), 0
        try:
            while time.perf_counter() < until:
                started = time.perf_counter()
                try:
                    status, body, _ = await conn.call(30)
                except Exception as exc:
                    if record:
                        _error(stats, type(exc).__name__, f"{type(exc).__name__}: {exc}")
                    await asyncio.sleep(0.01)
                    continue
                elapsed_ms = (time.perf_counter() - started) * 1000
                n += 1
                if not record:
                    stats.warmup_ok += status == 200
                    continue
                if status != 200:
                    _error(stats, f"HTTP {status}", f"HTTP {status}: {body[:300]!r}")
                    continue
                if n % check_every == 0:
                    problem = reply_problem(body)
                    if problem:
                        _error(stats, "bad reply", f"{problem}: {body[:200]!r}")
                        continue
                stats.latencies_ms.append(elapsed_ms)
                stats.bytes_received += len(body)
        finally:
            conn.close()

    async def phase(length: float, record: bool) -> float:
        until = time.perf_counter() + length
        started, cpu0 = time.perf_counter(), time.process_time()
        tasks = [asyncio.ensure_future(worker(until, record)) for _ in range(concurrency)]
        try:
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=length + 60)
        except TimeoutError:
            stats.errors["phase timeout"] += 1
        if record:
            stats.client_cpu_s = time.process_time() - cpu0
        return time.perf_counter() - started

    if warmup > 0:
        await phase(warmup, record=False)
    stats.elapsed_s = await phase(duration, record=True)
    return stats


async def sequential(targets: list[Target], rounds: int, warmup_rounds: int) -> dict[str, Stats]:
    """One client: each round calls every target once, the order rotating each round."""
    stats = {t.label: Stats() for t in targets}
    conns = [Connection(t) for t in targets]
    started_cpu = time.process_time()
    try:
        for i in range(warmup_rounds + rounds):
            record = i >= warmup_rounds
            shift = i % len(conns)
            for conn in conns[shift:] + conns[:shift]:
                s = stats[conn.target.label]
                started = time.perf_counter()
                try:
                    status, body, _ = await conn.call(30)
                except Exception as exc:
                    if record:
                        _error(s, type(exc).__name__, f"{type(exc).__name__}: {exc}")
                    continue
                elapsed = time.perf_counter() - started
                if not record:
                    s.warmup_ok += status == 200
                    continue
                problem = f"HTTP {status}" if status != 200 else reply_problem(body)
                if problem:
                    _error(s, problem.split(":")[0], f"{problem}: {body[:200]!r}")
                    continue
                s.latencies_ms.append(elapsed * 1000)
                s.elapsed_s += elapsed
                s.bytes_received += len(body)
    finally:
        for conn in conns:
            conn.close()
    cpu = time.process_time() - started_cpu
    for s in stats.values():
        s.client_cpu_s = cpu / len(stats)
    return stats


@dataclass
class StreamStats:
    count: int = 0
    ok: int = 0
    errors: Counter = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)
    first_byte_ms: list[float] = field(default_factory=list)
    total_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    client_cpu_s: float = 0.0

    @property
    def failed(self) -> int:
        return self.count - self.ok


async def streams(target: Target, count: int, timeout: float) -> StreamStats:
    """``count`` streaming calls at once, each on its own connection."""
    stats = StreamStats(count=count)

    def fail(kind: str, sample: str) -> None:
        stats.errors[kind] += 1
        if len(stats.error_samples) < 5:
            stats.error_samples.append(sample[:300])

    async def one() -> None:
        conn = Connection(target)
        started = time.perf_counter()
        try:
            status, body, first = await conn.call(timeout)
        except Exception as exc:
            fail(type(exc).__name__, f"{type(exc).__name__}: {exc}")
            return
        finally:
            conn.close()
        ended = time.perf_counter()
        problem = f"HTTP {status}" if status != 200 else stream_problem(body)
        if problem:
            fail(problem.split(":")[0], f"{problem}: {body[:200]!r}")
            return
        stats.ok += 1
        stats.first_byte_ms.append((first - started) * 1000)
        stats.total_ms.append((ended - started) * 1000)

    started, cpu0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one() for _ in range(count)))
    stats.wall_s = time.perf_counter() - started
    stats.client_cpu_s = time.process_time() - cpu0
    return stats


def run_async(coro):
    """The client on uvloop (it takes less CPU from the servers than asyncio's default loop)."""
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


# --- CPU accounting ------------------------------------------------------------------------------------


class CpuSplit:
    """The machine's CPU during a phase, by process group: hub, portkey, stubs, bench, postgres, redis, other."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.busy0 = machine_cpu()[0]
        self.before = process_cpu()
        self.started = time.perf_counter()

    def stop(self) -> str:
        after = process_cpu()
        busy = machine_cpu()[0] - self.busy0
        wall = time.perf_counter() - self.started
        children: dict[int, list[int]] = {}
        for pid, (_, ppid, _) in after.items():
            children.setdefault(ppid, []).append(pid)
        owner: dict[int, str] = {}
        for name, roots in self.groups.items():
            todo = list(roots)
            while todo:
                pid = todo.pop()
                if pid not in owner:
                    owner[pid] = name
                    todo.extend(children.get(pid, []))
        owner[os.getpid()] = "bench"
        totals = dict.fromkeys([*self.groups, "bench", "postgres", "redis", "other"], 0.0)
        others: Counter = Counter()
        for pid, (name, _, seconds) in after.items():
            used = seconds - (self.before[pid][2] if pid in self.before and self.before[pid][0] == name else 0.0)
            group = owner.get(pid) or (
                "postgres" if name.startswith("postgres") else "redis" if name.startswith("redis") else "other"
            )
            totals[group] += used
            if group == "other":
                others[name] += used
        parts = " + ".join(f"{k} {v:.1f}" for k, v in totals.items() if v >= 0.05 or k in self.groups)
        warn = ""
        if totals["other"] > 0.1 * wall:
            top = ", ".join(f"{name} {sec:.1f}s" for name, sec in others.most_common(3) if sec >= 0.05)
            warn = f"  WARNING: other processes were busy ({top}); the figures are low"
        return f"CPU seconds (incl. warm-up, {wall:.0f}s wall): machine {busy:.1f} = {parts}{warn}"


# --- Checks and reports ------------------------------------------------------------------------------------


def preflight(target: Target) -> None:
    async def check() -> tuple[int, bytes]:
        conn = Connection(target)
        try:
            status, body, _ = await conn.call(30)
        finally:
            conn.close()
        return status, body

    status, body = run_async(check())
    problem = (f"HTTP {status}" if status != 200 else None) or (
        stream_problem(body) if target.stream else reply_problem(body)
    )
    if problem:
        raise RuntimeError(f"{target.label}: the first call failed ({problem}): {body[:600]!r}")


def describe_streams(label: str, s: StreamStats, width: int) -> None:
    fb = percentiles(s.first_byte_ms, (50, 99))
    total = percentiles(s.total_ms, (50, 99, 100))
    print(
        f"{label:<{width}} {s.ok}/{s.count} streams ok, {s.failed} failed in {s.wall_s:.1f}s wall; first byte p50 "
        f"{fb[0]:.0f} ms p99 {fb[1]:.0f} ms; whole stream p50 {total[0]:.0f} ms p99 {total[1]:.0f} ms max "
        f"{total[2]:.0f} ms (bench client CPU {s.client_cpu_s:.1f}s)",
        flush=True,
    )
    if s.errors:
        pad = " " * (width + 1)
        print(f"{pad}errors by kind: {dict(s.errors)}", flush=True)
        for sample in s.error_samples:
            print(f"{pad}e.g. {sample}", flush=True)


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


# --- Main ------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15, help="measured seconds per throughput phase (15)")
    parser.add_argument("--warmup", type=float, default=3, help="unmeasured seconds before each phase (3)")
    parser.add_argument("--sequential", type=int, default=2000, help="rounds of the sequential run (2000)")
    parser.add_argument("--concurrency", type=int, default=64, help="clients of the throughput phases (64)")
    parser.add_argument("--slow-ms", type=float, default=50, help="latency of the slow stub (50)")
    parser.add_argument("--streams", type=int, default=1000, help="concurrent streaming calls (1000)")
    parser.add_argument("--stream-seconds", type=float, default=2.0, help="how long each stream lasts (2)")
    parser.add_argument("--stream-workers", type=int, default=2, help="hub processes for the streams (2)")
    parser.add_argument(
        "--workers", type=int, default=1, help="hub processes for the sequential and throughput phases (1)"
    )
    parser.add_argument("--quick", action="store_true", help="a ~30 s smoke run (after setup)")
    parser.add_argument(
        "--budget", action="store_true", help="a blocking hub-wide budget: every call reserves and settles"
    )
    parser.add_argument("--skip-portkey", action="store_true", help="no Portkey path (its figures are null)")
    parser.add_argument(
        "--no-rate-limits",
        action="store_true",
        help="GATEWAY_RATE_LIMITS_ENABLED=false on the hub: no deployment limit in the path (bench/ratelimit.py --gateway)",
    )
    parser.add_argument(
        "--phases",
        default=",".join(PHASES),
        help=f"comma-separated subset of {','.join(PHASES)} (default: all; the JSON figures of a skipped one are null)",
    )
    parser.add_argument("--setup-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    if not args.phases or set(args.phases) - set(PHASES):
        parser.error(f"--phases takes a comma-separated subset of {','.join(PHASES)}")
    if args.quick:
        args.seconds, args.warmup, args.sequential = 2, 0.5, 300
        args.streams = min(args.streams, 200)
    if not (
        0 < args.seconds <= 3600
        and 0 <= args.warmup <= 600
        and 0 < args.sequential <= 1_000_000
        and 0 < args.concurrency <= 4096
        and 0 < args.streams <= 10_000
        and 0 < args.stream_seconds <= 60
        and 0 < args.stream_workers <= 16
        and 0 < args.workers <= 16
        and 0 <= args.slow_ms <= 10_000
    ):
        parser.error("an option is out of range")
    return args


def main() -> int:
    args = parse_args()
    if args.setup_worker:
        setup_worker({k: int(v) for k, v in json.loads(args.setup_worker).items()})
        return 0

    started = time.perf_counter()
    cores = os.cpu_count() or 1
    step(
        f"client (this process), the stubs, the hub, Portkey, PostgreSQL and Redis share this machine's {cores} "
        "cores: the figures compare the paths with one another on it"
    )
    env = bench_env(
        DB_NAME,
        REDIS_URL,
        GATEWAY_ALLOW_PRIVATE_UPSTREAMS="true",
        GATEWAY_RATE_LIMITS_ENABLED="false" if args.no_rate_limits else "true",
    )
    use_portkey = not args.skip_portkey
    if use_portkey:
        ensure_portkey()
    step(f"resetting database {DB_NAME}")
    reset_database(DB_NAME)
    step("migrating")
    migrate(env)
    redis_delete_matching(REDIS_URL, "*", limit=10_000_000)

    chunk_ms = 1000 * args.stream_seconds / (STREAM_EVENTS - 1)
    results = Results()
    with contextlib.ExitStack() as stack:
        stub_env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        stubs = {
            "instant": stack.enter_context(stub_process("stub-instant", stub_env)),
            "slow": stack.enter_context(stub_process("stub-slow", stub_env, delay_ms=args.slow_ms)),
            "stream": stack.enter_context(stub_process("stub-stream", stub_env, chunk_delay_ms=chunk_ms)),
        }
        step(
            "stubs: "
            + ", ".join(f"{k} {p.url}" for k, p in stubs.items())
            + f" (slow: {args.slow_ms:g} ms; stream: {STREAM_EVENTS} events {chunk_ms:.0f} ms apart)"
        )
        ports = json.dumps({k: p.port for k, p in stubs.items()})
        if args.budget:
            env = {**env, "BENCH_GATEWAY_BUDGET": "1"}
        setup = json.loads(run_worker(__file__, "--setup-worker", env, 300, "setup", ports))
        deployments, api_key = setup["deployments"], setup["api_key"]
        step(f"setup done in {time.perf_counter() - started:.1f}s: deployments {deployments}")

        portkey = stack.enter_context(portkey_process()) if use_portkey else None
        if portkey:
            step(f"portkey {PORTKEY_PACKAGE}@{PORTKEY_VERSION} on {portkey.url} (log {portkey.log_path})")

        def targets(stub: str, hub_url: str, stream: bool = False) -> dict[str, Target]:
            stub_url = stubs[stub].url
            stub_auth = {"Authorization": f"Bearer {STUB_KEY}"}
            hub_path = f"{API}/deployments/{deployments[stub]}/v1/chat/completions"
            found = {
                "direct": make_target("direct", stub_url, "/v1/chat/completions", stub_auth, stream),
                "hub": make_target("hub", hub_url, hub_path, {"Authorization": f"Bearer {api_key}"}, stream),
            }
            if portkey:
                headers = {"x-portkey-provider": "openai", "x-portkey-custom-host": f"{stub_url}/v1", **stub_auth}
                found["portkey"] = make_target("portkey", portkey.url, "/v1/chat/completions", headers, stream)
            return found

        def groups(hub: Server) -> dict[str, list[int]]:
            found = {"hub": [hub.pid], "stubs": [p.pid for p in stubs.values()]}
            if portkey:
                found["portkey"] = [portkey.pid]
            return found

        def hub_server(workers: int) -> HubServer:
            hub = HubServer(
                {**env},
                workers,
                log_name="modelhub-bench-gw-hub",
                stopped=f"hub ({workers} worker{'s' * (workers > 1)}) stopped",
            )
            hub.env["PUBLIC_BASE_URL"] = hub.base_url
            step(f"starting the hub: uvicorn --workers {workers} on {hub.base_url} (log {hub.log_path})")
            return hub

        if {"sequential", "instant", "slow"} & set(args.phases):
            with hub_server(args.workers) as hub:
                step(f"hub health answered {hub.wait_for_health()}")
                for stub in ("instant", "slow"):
                    for target in targets(stub, hub.base_url).values():
                        preflight(target)
                step("one call on every path answered the stub's reply")
                check_idle()
                if "sequential" in args.phases:
                    seq_targets = list(targets("instant", hub.base_url).values())
                    warm = max(50, args.sequential // 10)
                    labels = [t.label for t in seq_targets]
                    step(f"sequential: 1 client, {warm} + {args.sequential} rounds over {labels}, order rotating")
                    meter = CpuSplit(groups(hub))
                    results.sequential = run_async(sequential(seq_targets, args.sequential, warm))
                    results.sequential_cpu = meter.stop()
                    for label, s in results.sequential.items():
                        p50, p99 = percentiles(s.latencies_ms, (50, 99))
                        print(f"  {label:<9} p50 {p50:7.3f} ms  p99 {p99:7.3f} ms  errors {s.error_count}", flush=True)
                    print(f"{' ' * 11}{results.sequential_cpu}", flush=True)
                for stub in ("instant", "slow"):
                    if stub not in args.phases:
                        continue
                    for label, target in targets(stub, hub.base_url).items():
                        step(
                            f"throughput ({stub} stub): {label}, {args.concurrency} clients, "
                            f"{args.warmup:g}s warm-up + {args.seconds:g}s"
                        )
                        meter = CpuSplit(groups(hub))
                        s = run_async(closed_loop(target, args.concurrency, args.seconds, args.warmup))
                        s.cpu_line = meter.stop()
                        results.throughput[stub][label] = s
                        describe(f"  {label}", s, width=10)
                        print(f"{' ' * 11}{s.cpu_line}", flush=True)
                hub.warn_if_exited()

        if "streams" in args.phases:
            with hub_server(args.stream_workers) as hub:
                step(f"hub health answered {hub.wait_for_health()}")
                stream_targets = targets("stream", hub.base_url, stream=True)
                for label in ("direct", "hub"):
                    preflight(stream_targets[label])
                for label in ("direct", "hub"):
                    step(f"streams: {args.streams} concurrent streaming calls, {label} ({args.stream_seconds:g}s each)")
                    meter = CpuSplit(groups(hub))
                    s = run_async(streams(stream_targets[label], args.streams, timeout=60 + 10 * args.stream_seconds))
                    s.cpu_line = meter.stop()
                    results.streams[label] = s
                    describe_streams(f"  {label}", s, width=10)
                    print(f"{' ' * 11}{s.cpu_line}", flush=True)
                hub.warn_if_exited()
    redis_delete_matching(REDIS_URL, "*", limit=10_000_000)
    report(results, args)
    print(f"total time {time.perf_counter() - started:.0f}s")
    print(json.dumps(results.figures(args)))
    return 0


@dataclass
class Results:
    sequential: dict[str, Stats] = field(default_factory=dict)
    sequential_cpu: str = ""
    throughput: dict[str, dict[str, Stats]] = field(default_factory=lambda: {"instant": {}, "slow": {}})
    streams: dict[str, StreamStats] = field(default_factory=dict)

    def added(self, label: str, p: float) -> float:
        """What ``label`` adds over direct at the ``p``-th percentile of the sequential run (NaN if not run)."""
        if label not in self.sequential or "direct" not in self.sequential:
            return NAN
        return percentile(self.sequential[label].latencies_ms, p) - percentile(
            self.sequential["direct"].latencies_ms, p
        )

    def rps(self, stub: str, label: str) -> float:
        found = self.throughput[stub].get(label)
        return found.rps if found is not None else NAN

    def figures(self, args: argparse.Namespace) -> dict:
        added_p50, peer_p50 = self.added("hub", 50), self.added("portkey", 50)
        rps_64, peer_rps_64 = self.rps("instant", "hub"), self.rps("instant", "portkey")
        hub_streams = self.streams.get("hub")
        return {
            "added_p50_ms": num(added_p50, 3),
            "added_p99_ms": num(self.added("hub", 99), 3),
            "peer_added_p50_ms": num(peer_p50, 3),
            "ratio_to_peer": num(_ratio(added_p50, peer_p50), 3),
            "rps_64": num(rps_64, 1),
            "peer_rps_64": num(peer_rps_64, 1),
            "throughput_vs_peer": num(_ratio(rps_64, peer_rps_64), 3),
            "throughput_ratio_50ms": num(_ratio(self.rps("slow", "hub"), self.rps("slow", "direct")), 3),
            "streams_ok": hub_streams.ok if hub_streams else None,
            "streams_failed": hub_streams.failed if hub_streams else None,
        }


NAN = float("nan")


def _ratio(a: float, b: float) -> float:
    return a / b if a == a and b == b and b > 0 else NAN


def report(results: Results, args: argparse.Namespace) -> None:
    print()
    width = 18
    if results.sequential:
        print(f"sequential, 1 client, {args.sequential} interleaved rounds (instant stub):")
        for label, s in results.sequential.items():
            p50, p95, p99 = percentiles(s.latencies_ms, (50, 95, 99))
            print(
                f"  {label:<{width - 2}} p50 {p50:7.3f} ms  p95 {p95:7.3f} ms  p99 {p99:7.3f} ms  ok {s.ok}  "
                f"errors {s.error_count}",
                flush=True,
            )
            if s.errors:
                print(f"  {'':<{width - 2}} errors by kind: {dict(s.errors)}; e.g. {s.error_samples[:2]}")
        print(f"  {results.sequential_cpu}")
        line = f"  added over direct: hub p50 {results.added('hub', 50):+.3f} ms p99 {results.added('hub', 99):+.3f} ms"
        if "portkey" in results.sequential:
            line += f"; portkey p50 {results.added('portkey', 50):+.3f} ms p99 {results.added('portkey', 99):+.3f} ms"
        print(line)
    for stub, title in (("instant", "instant stub"), ("slow", f"{args.slow_ms:g} ms stub")):
        if results.throughput[stub]:
            print(f"throughput, {args.concurrency} clients, {title}:")
            for label, s in results.throughput[stub].items():
                describe(f"  {label}", s, width=width)
    if results.streams:
        print(
            f"streams, {args.streams} concurrent, {args.stream_seconds:g}s stub, "
            f"hub on {args.stream_workers} processes:"
        )
        for label, s in results.streams.items():
            describe_streams(f"  {label}", s, width=width)

    print()
    figures = results.figures(args)
    added_p50, peer_p50 = results.added("hub", 50), results.added("portkey", 50)
    if added_p50 == added_p50 and peer_p50 == peer_p50:
        print(
            f"added p50 at 1 client: hub {added_p50:.3f} ms vs portkey {peer_p50:.3f} ms "
            f"(ratio {figures['ratio_to_peer']}); goal hub <= portkey: {verdict(added_p50 <= peer_p50)}"
        )
    rps_64, peer_rps_64 = results.rps("instant", "hub"), results.rps("instant", "portkey")
    if rps_64 == rps_64 and peer_rps_64 == peer_rps_64:
        print(
            f"throughput at {args.concurrency} clients (instant stub): hub {rps_64:.0f} vs portkey {peer_rps_64:.0f} "
            f"req/s (ratio {figures['throughput_vs_peer']}); goal hub >= portkey: {verdict(rps_64 >= peer_rps_64)}"
        )
    slow_hub, slow_direct = results.rps("slow", "hub"), results.rps("slow", "direct")
    if slow_hub == slow_hub:
        ratio = figures["throughput_ratio_50ms"]
        print(
            f"throughput at {args.concurrency} clients ({args.slow_ms:g} ms stub): hub {slow_hub:.0f} vs direct "
            f"{slow_direct:.0f} req/s (ratio {ratio}); goal >= 0.90: {verdict(ratio is not None and ratio >= 0.9)}"
        )
    hub_streams = results.streams.get("hub")
    if hub_streams:
        print(
            f"streams through the hub: {hub_streams.ok} ok, {hub_streams.failed} failed; goal 0 failed: "
            f"{verdict(hub_streams.failed == 0)}"
        )


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers (ExitStack) on SIGTERM too
    sys.exit(main())
