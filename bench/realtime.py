#!/usr/bin/env python
"""Realtime fan-out benchmark: events published through ``modelhub.realtime.send_now`` reach
1,000 websocket subscribers on ``uvicorn modelhub.asgi:application --workers 2`` via the Redis
channel layer.

    .venv/bin/python bench/realtime.py [--subscribers 1000] [--rate 20] [--duration 30] [--workers 2]

Steps (every step bounded in time; the server is always stopped):

1. drop and re-create the database ``modelhub_bench_rt``, migrate, create one ``viewer`` user
   (a ``django.setup()`` subprocess: this same file, ``--setup-worker``);
2. start uvicorn with ``--workers`` processes on a free 127.0.0.1 port (Redis DB 3), wait for
   ``/health``, get a JWT;
3. reference: 1 websocket subscriber, ``--rate`` events/s for ``--reference-duration`` s;
4. connect the other subscribers (websockets' sans-I/O client on uvloop, ``Authorization: Bearer``,
   each waits for its ``auth:ok``), ``--warmup`` s of events not counted, then ``--rate`` events/s
   for ``--duration`` s to all of them;
5. print delivered/expected and publish-to-receive latency p50/p95/p99 for both phases, the CPU
   split, and the ratio p95(all) / p95(1 subscriber); the last line is one JSON object.

The publisher is this process: ``django.setup()`` with the server's settings (the same Redis
channel layer), a thread calling ``send_now`` - the path a Celery worker takes. Each event
carries its ``time.time()`` just before ``send_now``; the subscriber takes ``time.time()`` on
receipt (same machine, same clock). The reference subscriber runs on this process's loop; the load
phase's are spread over ``--client-processes`` subscriber processes (default 2; this same file,
``--subscriber-worker``), each one uvloop reading its share of the sockets, so that one event's thousands
of reads are not queued behind each other in one loop (``--client-processes 0``: all on this loop, as
before). The subscribers' CPU is part of the latency; it is reported ("bench").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/harness
from harness.cpu import CpuMeter, check_idle
from harness.db import reset_database
from harness.env import bench_env, bench_target, migrate, run_worker
from harness.report import step, warn_other_processes
from harness.seed import django_setup
from harness.server import Server, add_server_argument
from harness.stats import num, percentiles
from harness.websocket import WebSocketClient

DB_NAME, REDIS_URL = bench_target("modelhub_bench_rt", "redis://127.0.0.1:6379/3")
BENCH_USERNAME = "bench-viewer"
WS_PATH = "/modelhub/realtime"


def setup_worker() -> None:
    django_setup()
    from modelhub.accounts.services import user_create

    user = user_create(actor=None, username=BENCH_USERNAME, password=os.environ["BENCH_PASSWORD"], role="viewer")
    print(json.dumps({"user_id": str(user.pk)}), flush=True)


# --- Subscribers ---------------------------------------------------------------------------------


class Phase:
    """What the subscribers received for one phase (events tagged with its name)."""

    def __init__(self, name: str, subscribers: int):
        self.name = name
        self.subscribers = subscribers
        self.latencies_ms: list[float] = []
        self.published = 0
        self.publish_ms: list[float] = []  # how long each send_now call took (publisher side)
        self.cpu: dict = {}
        self.machine_busy_s = 0.0
        self.wall_s = 0.0
        self.client_cpu_s = 0.0

    @property
    def expected(self) -> int:
        return self.published * self.subscribers

    @property
    def delivered(self) -> int:
        return len(self.latencies_ms)

    def percentiles(self) -> tuple[float, float, float]:
        return percentiles(self.latencies_ms, (50, 95, 99))


class Subscribers:
    """Websocket clients on one loop; each message is timed on arrival and credited to its phase."""

    def __init__(self, url: str, token: str):
        self.url = url
        self.token = token
        self.sockets: list[WebSocketClient] = []
        self.phases: dict[str, Phase] = {}
        self.other = 0  # messages that were not bench events (should stay 0)
        self.ended_early: list[str] = []  # sockets that ended before the bench closed them
        self.closing = False

    def on_close(self, subscriber: WebSocketClient, reason: str) -> None:
        if not self.closing:
            self.ended_early.append(reason)

    def on_message(self, subscriber: WebSocketClient, raw: bytes, received: float) -> None:
        import orjson

        message = orjson.loads(raw)
        if not subscriber.ready.done():
            if message.get("event") == "auth:ok":
                subscriber.ready.set_result(None)
            else:
                subscriber.ready.set_exception(RuntimeError(f"unexpected first message {message}"))
            return
        details = message["data"].get("details", {}) if isinstance(message.get("data"), dict) else {}
        tag = details.get("phase", "")
        phase = self.phases.get(tag)
        if phase is None:
            self.other += tag != "warmup"
            return
        phase.latencies_ms.append((received - details["sentAt"]) * 1000)

    async def connect(self, count: int, concurrency: int) -> float:
        from urllib.parse import urlparse

        started = time.perf_counter()
        gate = asyncio.Semaphore(concurrency)
        parsed = urlparse(self.url)
        loop = asyncio.get_running_loop()
        headers = {"Authorization": f"Bearer {self.token}"}

        async def one() -> None:
            async with gate:
                subscriber = WebSocketClient(self.url, headers, self.on_message, self.on_close)
                await asyncio.wait_for(loop.create_connection(lambda: subscriber, parsed.hostname, parsed.port), 30)
                await asyncio.wait_for(subscriber.ready, 30)
                self.sockets.append(subscriber)

        await asyncio.gather(*(one() for _ in range(count)))
        return time.perf_counter() - started

    async def close(self) -> None:
        self.closing = True
        for subscriber in self.sockets:
            subscriber.close()
        await asyncio.wait([s.done for s in self.sockets], timeout=10)


def publish_loop(phase: Phase | None, tag: str, rate: float, seconds: float) -> int:
    """``rate`` events/s for ``seconds`` through send_now, on a steady schedule; returns how many."""
    from modelhub.realtime import send_now

    count = int(rate * seconds)
    started = time.perf_counter()
    for i in range(count):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        sent_at = time.time()
        send_now(
            "deployment:status",
            {
                "deploymentId": "bench",
                "status": "running",
                "timestamp": "2025-01-01T00:00:00Z",
                "details": {"phase": tag, "seq": i, "sentAt": sent_at},
            },
        )
        if phase is not None:
            phase.publish_ms.append((time.time() - sent_at) * 1000)
    return count


async def run_phase(subs: Subscribers, phase: Phase, rate: float, seconds: float, server_pid: int) -> None:
    subs.phases[phase.name] = phase
    meter = CpuMeter()
    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    phase.published = await asyncio.to_thread(publish_loop, phase, phase.name, rate, seconds)
    deadline = time.monotonic() + 10  # let the last events arrive
    while phase.delivered < phase.expected and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)  # and catch any duplicate
    phase.wall_s = time.perf_counter() - wall0
    phase.client_cpu_s = time.process_time() - cpu0
    phase.machine_busy_s, phase.cpu = meter.stop(server_pid)


def describe(phase: Phase, width: int) -> None:
    p50, p95, p99 = phase.percentiles()
    pub = sorted(phase.publish_ms)
    pub_p50 = pub[len(pub) // 2] if pub else float("nan")
    print(
        f"{phase.name:<{width}} delivered {phase.delivered}/{phase.expected} "
        f"({100 * phase.delivered / max(phase.expected, 1):.2f}%)  p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  "
        f"p99 {p99:6.1f} ms  ({phase.published} events x {phase.subscribers} subscribers, send_now p50 {pub_p50:.2f} ms)",
        flush=True,
    )
    c = phase.cpu
    if c:
        pad = " " * (width + 1)
        print(
            f"{pad}CPU seconds over {phase.wall_s:.1f}s: machine {phase.machine_busy_s:.1f} = uvicorn {c['uvicorn']:.1f} "
            f"+ bench (publisher + subscribers) {c['bench']:.1f} + redis {c['redis']:.1f} + postgres {c['postgres']:.1f} "
            f"+ other processes {c['other']:.1f}",
            flush=True,
        )
        warn_other_processes(c, phase.wall_s, pad)


async def bench(
    args: argparse.Namespace, base_url: str, token: str, server_pid: int
) -> tuple[Phase, Phase, Subscribers]:
    url = base_url.replace("http://", "ws://") + WS_PATH
    subs = Subscribers(url, token)
    await subs.connect(1, 1)
    step(f"reference: 1 subscriber, {args.rate:g} events/s for {args.reference_duration:g}s")
    reference = Phase("1 subscriber", 1)
    await run_phase(subs, reference, args.rate, args.reference_duration, server_pid)
    if args.client_processes > 0:
        load = await load_in_processes(args, url, token, server_pid, subs)
        await subs.close()
        return reference, load, subs

    step(f"connecting {args.subscribers - 1} more subscribers ({args.connect_concurrency} at a time)")
    took = await subs.connect(args.subscribers - 1, args.connect_concurrency)
    step(f"{len(subs.sockets)} subscribers connected and authenticated in {took:.1f}s")
    if args.warmup > 0:
        await asyncio.to_thread(publish_loop, None, "warmup", args.rate, args.warmup)
        await asyncio.sleep(1)
    step(f"load: {len(subs.sockets)} subscribers, {args.rate:g} events/s for {args.duration:g}s")
    load = Phase(f"{len(subs.sockets)} subscribers", len(subs.sockets))
    await run_phase(subs, load, args.rate, args.duration, server_pid)
    await subs.close()
    return reference, load, subs


# --- Subscribers in several processes (--client-processes) --------------------------------------------
# One process's loop reads every socket in turn: with 5,000 sockets an event is 5,000 reads (~19 us each)
# queued behind each other, which the latency of the last one includes. Split over processes, the reads of
# one event proceed in parallel as the server's writes do (the reference subscriber stays here).


async def load_in_processes(
    args: argparse.Namespace, url: str, token: str, server_pid: int, subs: Subscribers
) -> Phase:
    import subprocess
    import tempfile

    from harness.paths import PYTHON

    total = args.subscribers - 1
    counts = [
        total // args.client_processes + (i < total % args.client_processes) for i in range(args.client_processes)
    ]
    name = f"{args.subscribers} subscribers"
    load = Phase(name, total + 1)
    subs.phases[name] = load  # the reference subscriber in this process counts too
    outdir = tempfile.mkdtemp(prefix="modelhub-bench-rt-")
    env = {**os.environ, "BENCH_TOKEN": token}
    step(f"connecting {total} more subscribers in {len(counts)} processes ({counts})")
    started = time.perf_counter()
    children = [
        subprocess.Popen(
            [
                str(PYTHON),
                __file__,
                "--subscriber-worker",
                url,
                str(count),
                name,
                f"{outdir}/{i}.json",
                str(args.connect_concurrency),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i, count in enumerate(counts)
    ]
    try:

        async def line(child: subprocess.Popen, want: str) -> None:
            got = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 300)
            if got.strip() != want:
                raise RuntimeError(f"subscriber process said {got!r}, not {want!r}")

        await asyncio.gather(*(line(c, "ready") for c in children))
        step(f"{total + 1} subscribers connected and authenticated in {time.perf_counter() - started:.1f}s")
        if args.warmup > 0:
            await asyncio.to_thread(publish_loop, None, "warmup", args.rate, args.warmup)
            await asyncio.sleep(1)
        step(
            f"load: {total + 1} subscribers in {len(counts) + 1} processes, {args.rate:g} events/s for {args.duration:g}s"
        )
        meter = CpuMeter()
        wall0 = time.perf_counter()
        load.published = await asyncio.to_thread(publish_loop, load, name, args.rate, args.duration)
        for child in children:
            child.stdin.write(f"published {load.published}\n")
            child.stdin.flush()
        await asyncio.gather(*(line(c, "done") for c in children))
        load.wall_s = time.perf_counter() - wall0
        load.machine_busy_s, load.cpu = meter.stop(server_pid)
        for i in range(len(children)):
            with open(f"{outdir}/{i}.json") as f:
                result = json.load(f)
            load.latencies_ms.extend(result["latencies_ms"])
            subs.other += result["other"]
            subs.ended_early.extend(result["ended_early"])
    finally:
        for child in children:
            with contextlib.suppress(OSError, ValueError):
                child.stdin.write("exit\n")
                child.stdin.flush()
        for child in children:
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
    return load


def subscriber_worker(url: str, count: int, name: str, out: str, concurrency: int) -> None:
    """A subscriber process: ``count`` sockets; says ``ready``, then waits for ``published N`` on stdin, for
    every socket's ``N`` events of phase ``name`` (at most 10 s more), writes the latencies to ``out`` and
    says ``done``; closes on ``exit``."""
    import uvloop

    async def run() -> None:
        subs = Subscribers(url, os.environ["BENCH_TOKEN"])
        phase = Phase(name, count)
        subs.phases[name] = phase
        await subs.connect(count, concurrency)
        print("ready", flush=True)
        said = await asyncio.to_thread(sys.stdin.readline)
        phase.published = int(said.split()[1])
        deadline = time.monotonic() + 10
        while phase.delivered < phase.expected and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # and catch any duplicate
        with open(out, "w") as f:
            json.dump({"latencies_ms": phase.latencies_ms, "other": subs.other, "ended_early": subs.ended_early}, f)
        print("done", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        await subs.close()

    uvloop.run(run())


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20.0, help="events per second")
    parser.add_argument("--duration", type=float, default=30.0, help="measured seconds with all subscribers")
    parser.add_argument("--reference-duration", type=float, default=10.0, help="measured seconds with 1 subscriber")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of events before the measured load")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    add_server_argument(parser)
    parser.add_argument("--connect-concurrency", type=int, default=50)
    parser.add_argument(
        "--client-processes",
        type=int,
        default=2,
        help="processes the load phase's subscribers are spread over (0: all in this one, as before)",
    )
    parser.add_argument("--setup-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--subscriber-worker", nargs=5, help=argparse.SUPPRESS)
    return parser.parse_args()


def raise_fd_limit(wanted: int) -> int:
    """This process's (and its children's: the server) open-file limit raised towards ``wanted`` - the soft
    limit up to the hard one, never the system's; returns the limit in force."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def main() -> int:
    args = parse_args()
    if args.setup_worker:
        setup_worker()
        return 0
    if args.subscriber_worker:
        url, count, name, out, concurrency = args.subscriber_worker
        subscriber_worker(url, int(count), name, out, int(concurrency))
        return 0
    limit = raise_fd_limit(2 * args.subscribers + 1024)
    if limit < args.subscribers + 256:
        step(f"WARNING: open-file limit {limit} (hard limit) is too low for {args.subscribers} subscribers")

    env = bench_env(DB_NAME, REDIS_URL)
    step(f"resetting database {DB_NAME}")
    reset_database(DB_NAME)
    step("migrating")
    migrate(env)
    run_worker(__file__, "--setup-worker", env, 300, "setup")

    # This process publishes: the server's settings, hence the same Redis channel layer.
    os.environ.update(env)
    django_setup()

    server = Server(env, args.workers, kind=args.server)
    step(f"starting {args.server} --workers {args.workers} on {server.base_url} (log {server.log_path})")
    with server:
        server.wait_for_health()
        token = server.token(BENCH_USERNAME)
        check_idle()
        # uvloop, as uvicorn uses: the subscribers' 20,000 socket reads a second cost a third of
        # what they do on asyncio's default loop.
        import uvloop

        reference, load, subs = uvloop.run(bench(args, server.base_url, token, server.pid))

    print()
    width = max(len(reference.name), len(load.name))
    describe(reference, width)
    describe(load, width)
    if subs.other or subs.ended_early:
        print(
            f"non-bench messages: {subs.other}; sockets that ended early: {len(subs.ended_early)} "
            f"(e.g. {subs.ended_early[:3]})"
        )
    ref_p95 = reference.percentiles()[1]
    p50, p95, p99 = load.percentiles()
    ratio = p95 / ref_p95 if ref_p95 else float("nan")
    all_delivered = load.delivered == load.expected and reference.delivered == reference.expected
    print(f"p95 with {load.subscribers} subscribers / p95 with 1: {ratio:.2f} ({p95:.1f} / {ref_p95:.1f} ms)")
    bound = 100 if args.rate <= 4 else 300  # issue #15: 5,000 x 4/s under 100 ms, 5,000 x 20/s under 300 ms
    print(
        f"goal: all delivered ({'met' if all_delivered else 'NOT met'}), p95 < {bound} ms "
        f"({'met' if p95 < bound else 'NOT met'})"
    )
    print(
        json.dumps(
            {
                "subscribers": load.subscribers,
                "expected": load.expected,
                "delivered": load.delivered,
                "p50_ms": num(p50, 1),
                "p95_ms": num(p95, 1),
                "p99_ms": num(p99, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
