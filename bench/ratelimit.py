#!/usr/bin/env python
"""Rate-limiting overhead benchmark: the same endpoint with the limiter ON and OFF, in one run.

    .venv/bin/python bench/ratelimit.py [--duration 20] [--concurrency 32] [--client raw|httpx]

Steps (every step bounded in time; each server is always stopped):

1. drop and re-create the database ``modelhub_bench_rl``, run ``manage.py migrate``;
2. in a ``django.setup()`` subprocess (this same file, ``--setup-worker``) create an admin and a
   ``viewer``, and give the viewer a rate-limit override of 10,000,000 per window through
   ``rate_limit_override_set`` - so with limiting on, every request runs the limiter (one Redis
   ``EVALSHA`` on DB 2) but none is refused;
3. for each phase - ``RATE_LIMITS_ENABLED=true``, then ``false`` (``--order`` swaps them) - start
   ``uvicorn modelhub.asgi:application --workers 2`` on a free 127.0.0.1 port, get a JWT, check
   that ``X-RateLimit-Limit`` is present (on) or absent (off), then
   a. closed-loop load from ``--concurrency`` clients for ``--duration`` s after ``--warmup`` s
      against ``GET /api/v1/modelhub/auth/me`` (Bearer), sampling response headers,
   b. one client sending sequential requests for ``--latency-duration`` s: the per-request cost
      of the limiter without queueing,
   and stop the server; one server at a time, never both loaded at once;
4. print both phases (requests/s, p50/p95/p99, CPU breakdown, server CPU per request), the
   throughput ratio and the added p50; the last line is one JSON object::

       {"rps_limited", "rps_unlimited", "throughput_ratio", "added_p50_ms", "added_p50_ms_1client"}

``--gateway`` measures the gateway's per-deployment limit instead: ``bench/gateway.py`` (hub only; the 1-client
sequential rounds and 64 clients on the instant stub) with the limit in the path, then with
``GATEWAY_RATE_LIMITS_ENABLED=false``; the last line is ``{"gateway_rps_limited", "gateway_rps_unlimited",
"throughput_ratio", "added_p50_ms_1client"}``.

Only 200 responses count towards requests/s and latency; everything else is an error and is
reported. Traffic goes to 127.0.0.1 only. The shared machinery lives in ``bench/harness/``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/harness
from harness.cpu import check_idle
from harness.db import redis_delete_matching, reset_database
from harness.env import bench_env, bench_target, migrate, run_worker
from harness.load import measured_load
from harness.paths import API
from harness.report import describe, step
from harness.seed import django_setup
from harness.server import Server
from harness.stats import Stats, num

DB_NAME, REDIS_URL = bench_target("modelhub_bench_rl", "redis://127.0.0.1:6379/2")
BENCH_USERNAME = "bench-rl-viewer"
ADMIN_USERNAME = "bench-rl-admin"
OVERRIDE_LIMIT = 10_000_000
ENDPOINT = f"{API}/auth/me"
LIMIT_HEADER = "x-ratelimit-limit"


# --- Setup (subprocess with django.setup()) ---------------------------------------------------------


def setup_worker() -> None:
    """Create the admin and the bench viewer, and give the viewer the maximum override."""
    django_setup()
    from modelhub.accounts.services import rate_limit_override_set, user_create

    password = os.environ["BENCH_PASSWORD"]
    admin = user_create(actor=None, username=ADMIN_USERNAME, password=password + "-admin", role="admin")
    user = user_create(actor=None, username=BENCH_USERNAME, password=password, role="viewer")
    override = rate_limit_override_set(
        actor=admin,
        user=user,
        requests_per_minute=OVERRIDE_LIMIT,
        requests_per_hour=OVERRIDE_LIMIT,
        requests_per_day=OVERRIDE_LIMIT,
        burst_limit=OVERRIDE_LIMIT,
    )
    print(
        json.dumps(
            {
                "user_id": str(user.pk),
                "override": [
                    override.requests_per_minute,
                    override.requests_per_hour,
                    override.requests_per_day,
                    override.burst_limit,
                ],
            }
        ),
        flush=True,
    )


# --- Header checks ---------------------------------------------------------------------------------


def sample_limit_header(stats: Stats, headers: dict, body: bytes) -> None:
    """Count sampled responses with and without ``X-RateLimit-Limit`` (``run_load`` ``sample``)."""
    value = headers.get(LIMIT_HEADER)
    if value is None:
        stats.samples["without_header"] += 1
    else:
        stats.samples["with_header"] += 1
        stats.samples[f"limit={value}"] += 1


def check_headers(base_url: str, headers: dict, enabled: bool, count: int = 3) -> list[str | None]:
    """``count`` GETs of the endpoint: all 200, and ``X-RateLimit-Limit`` present iff ``enabled``."""
    import httpx

    seen: list[str | None] = []
    with httpx.Client(base_url=base_url, headers=headers, timeout=10, trust_env=False) as client:
        for _ in range(count):
            response = client.get(ENDPOINT)
            if response.status_code != 200:
                raise RuntimeError(f"GET {ENDPOINT} answered {response.status_code}: {response.text[:500]}")
            seen.append(response.headers.get(LIMIT_HEADER))
    if enabled and not all(seen):
        raise RuntimeError(f"rate limiting should be ON but X-RateLimit-Limit is missing: {seen}")
    if not enabled and any(seen):
        raise RuntimeError(f"rate limiting should be OFF but X-RateLimit-Limit is present: {seen}")
    return seen


def user_counter(user_id: str) -> int:
    """Requests the limiter counted for the bench user (its day window(s) in the bench Redis DB)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        keys = list(client.scan_iter(match=f"rl:{{u:{user_id}}}:d:*", count=500))[:100]
        return sum(int(v) for v in client.mget(keys) if v is not None) if keys else 0
    finally:
        client.close()


# --- One phase ---------------------------------------------------------------------------------------


@dataclass
class Phase:
    enabled: bool
    load: Stats | None = None
    single: Stats | None = None
    header_checks: list = field(default_factory=list)
    limiter_count: int = 0
    requests_sent: int = 0  # 200s of the bench user on this server (warm-ups, checks and both loads)

    @property
    def label(self) -> str:
        return "limit on" if self.enabled else "limit off"


def run_phase(phase: Phase, env: dict, args: argparse.Namespace, user_id: str) -> None:
    redis_delete_matching(REDIS_URL, "rl:*")  # fresh counters: the check below counts this phase only
    env = {**env, "RATE_LIMITS_ENABLED": "true" if phase.enabled else "false"}
    server = Server(env, args.workers, stopped=f"[{phase.label}] server stopped")
    step(
        f"[{phase.label}] starting uvicorn ({args.workers} workers, RATE_LIMITS_ENABLED="
        f"{env['RATE_LIMITS_ENABLED']}) on {server.base_url}; log {server.log_path}"
    )
    with server:
        health = server.wait_for_health()
        step(f"[{phase.label}] health answered {health}")
        headers = server.bearer(BENCH_USERNAME)
        phase.header_checks += check_headers(server.base_url, headers, phase.enabled)
        step(f"[{phase.label}] X-RateLimit-Limit on 3 preflight responses: {phase.header_checks}")
        check_idle()

        step(
            f"[{phase.label}] auth/me: {args.concurrency} {args.client} clients, "
            f"{args.warmup:g}s warm-up + {args.duration:g}s"
        )
        load = dict(sample=sample_limit_header, sample_headers=True, client_kind=args.client)
        phase.load = measured_load(
            server,
            headers,
            lambda i: (lambda: ENDPOINT),
            concurrency=args.concurrency,
            duration=args.duration,
            warmup=args.warmup,
            sample_every=50,
            **load,
        )
        step(
            f"[{phase.label}] auth/me: 1 {args.client} client, sequential, "
            f"{args.latency_warmup:g}s warm-up + {args.latency_duration:g}s"
        )
        phase.single = measured_load(
            server,
            headers,
            lambda i: (lambda: ENDPOINT),
            concurrency=1,
            duration=args.latency_duration,
            warmup=args.latency_warmup,
            sample_every=100,
            **load,
        )
        phase.header_checks += check_headers(server.base_url, headers, phase.enabled)
        server.warn_if_exited()
    phase.limiter_count = user_counter(user_id)
    phase.requests_sent = (
        len(phase.header_checks) + phase.load.ok + phase.load.warmup_ok + phase.single.ok + phase.single.warmup_ok
    )


def report(phase: Phase, width: int) -> None:
    for kind, stats in (("", phase.load), ("1 client ", phase.single)):
        describe(f"{kind}{phase.label}", stats, width=width)
        pad = " " * (width + 1)
        served = stats.ok + stats.warmup_ok
        if served and stats.cpu:
            c = stats.cpu
            per = {k: 1e6 * c[k] / served for k in ("uvicorn", "redis", "postgres")}
            print(
                f"{pad}server CPU per request (incl. warm-up, {served} requests): uvicorn {per['uvicorn']:.0f} us "
                f"+ redis {per['redis']:.0f} us + postgres {per['postgres']:.0f} us "
                f"= {sum(per.values()):.0f} us",
                flush=True,
            )
        s = stats.samples
        if s:
            values = sorted(k.split("=", 1)[1] for k in s if k.startswith("limit="))
            print(
                f"{pad}sampled headers: {s['with_header']} with X-RateLimit-Limit"
                f"{' (' + ', '.join(values) + ')' if values else ''}, {s['without_header']} without",
                flush=True,
            )


# --- Main ------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20, help="measured seconds per phase (default 20)")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent clients (default 32)")
    parser.add_argument("--warmup", type=float, default=3, help="unmeasured seconds before each phase (default 3)")
    parser.add_argument(
        "--latency-duration",
        type=float,
        default=5,
        help="measured seconds of the 1-client sequential run per phase (default 5)",
    )
    parser.add_argument(
        "--latency-warmup", type=float, default=1, help="unmeasured seconds before the 1-client run (default 1)"
    )
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers (default 2)")
    parser.add_argument(
        "--client",
        choices=["raw", "httpx"],
        default="raw",
        help="load client: a minimal httptools keep-alive client (default) or httpx.AsyncClient",
    )
    parser.add_argument(
        "--order",
        choices=["on-off", "off-on"],
        default="on-off",
        help="which phase runs first (default: limiting on, then off)",
    )
    parser.add_argument(
        "--gateway",
        action="store_true",
        help="instead: the gateway's per-deployment limit - bench/gateway.py (hub only: 1-client sequential "
        "rounds and 64 clients on the instant stub) run with the limit in the path, then with "
        "GATEWAY_RATE_LIMITS_ENABLED=false, compared",
    )
    parser.add_argument("--setup-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    durations = (args.duration, args.latency_duration)
    warmups = (args.warmup, args.latency_warmup)
    if not (
        all(0 < d <= 3600 for d in durations)
        and all(0 <= w <= 600 for w in warmups)
        and 0 < args.concurrency <= 1024
        and 0 < args.workers <= 16
    ):
        parser.error(
            "durations must be in (0, 3600], warm-ups in [0, 600], concurrency in (0, 1024], workers in (0, 16]"
        )
    return args


def gateway_main(args: argparse.Namespace) -> int:
    """The deployment limit of gateway calls: two ``bench/gateway.py`` runs (limit on, then off), compared."""
    import subprocess

    figures = {}
    for label, extra in (("on", []), ("off", ["--no-rate-limits"])):
        cmd = [sys.executable, str(Path(__file__).with_name("gateway.py")), "--phases", "sequential,instant"]
        cmd += ["--skip-portkey", "--seconds", f"{args.duration:g}", "--warmup", f"{args.warmup:g}", *extra]
        step(f"[gateway, deployment limit {label}] {' '.join(cmd[1:])}")
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
        lines = done.stdout.strip().splitlines()
        if done.returncode or not lines:
            print(done.stdout[-3000:], done.stderr[-3000:], sep="\n")
            raise SystemExit(f"bench/gateway.py ({label}) failed with exit code {done.returncode}")
        for line in lines[-40:-1]:
            if "hub" in line or "direct" in line:
                print(f"  [{label}] {line}")
        figures[label] = json.loads(lines[-1])
    on, off = figures["on"], figures["off"]
    ratio = on["rps_64"] / off["rps_64"] if off["rps_64"] else 0.0
    added_1 = on["added_p50_ms"] - off["added_p50_ms"]  # each run's hub p50 minus its own direct p50
    print(
        f"gateway throughput ratio {ratio:.3f} (limit on {on['rps_64']:.1f} / off {off['rps_64']:.1f} req/s, "
        f"64 clients); goal >= 0.85: {'met' if ratio >= 0.85 else 'NOT met'}"
    )
    print(
        f"gateway added p50 {added_1:+.3f} ms with 1 sequential client (over direct: on {on['added_p50_ms']:.3f}, "
        f"off {off['added_p50_ms']:.3f} ms); goal <= 1.5 ms: {'met' if added_1 <= 1.5 else 'NOT met'}"
    )
    print(
        json.dumps(
            {
                "gateway_rps_limited": num(on["rps_64"], 1),
                "gateway_rps_unlimited": num(off["rps_64"], 1),
                "throughput_ratio": num(ratio, 3),
                "added_p50_ms_1client": num(added_1, 3),
            }
        )
    )
    return 0


def main() -> int:
    args = parse_args()
    if args.setup_worker:
        setup_worker()
        return 0
    if args.gateway:
        return gateway_main(args)

    env = bench_env(DB_NAME, REDIS_URL)
    started = time.perf_counter()
    step(f"resetting database {DB_NAME}")
    reset_database(DB_NAME)
    step("migrating")
    migrate(env)
    setup = json.loads(run_worker(__file__, "--setup-worker", env, 300, "setup"))
    step(
        f"created {BENCH_USERNAME!r} (viewer) with a rate-limit override of {setup['override']} "
        f"(minute, hour, day, burst) set by {ADMIN_USERNAME!r}; setup took {time.perf_counter() - started:.1f}s"
    )

    phases = [Phase(enabled=True), Phase(enabled=False)]
    if args.order == "off-on":
        phases.reverse()
    for phase in phases:
        run_phase(phase, env, args, setup["user_id"])
    on, off = (phases[0], phases[1]) if phases[0].enabled else (phases[1], phases[0])

    print()
    width = len("1 client limit off")
    for phase in phases:
        report(phase, width)
    print(
        f"limiter counters in Redis DB {REDIS_URL.rsplit('/', 1)[1]} for the bench user: limit on {on.limiter_count} "
        f"(200s the client got from that server: {on.requests_sent}), limit off {off.limiter_count}"
    )
    if on.limiter_count < on.requests_sent or off.limiter_count:
        print("WARNING: the limiter's counters do not match the requests: check RATE_LIMITS_ENABLED / REDIS_URL")

    ratio = on.load.rps / off.load.rps if off.load.rps else 0.0
    added = on.load.percentile(50) - off.load.percentile(50)
    added_1 = on.single.percentile(50) - off.single.percentile(50)
    errors = sum(p.load.error_count + p.single.error_count for p in phases)
    print(
        f"throughput ratio {ratio:.3f} (limited {on.load.rps:.1f} / unlimited {off.load.rps:.1f} req/s, "
        f"{args.concurrency} clients); goal >= 0.85: {'met' if ratio >= 0.85 else 'NOT met'}"
    )
    print(
        f"added p50 {added:+.2f} ms with {args.concurrency} clients ({on.load.percentile(50):.2f} vs "
        f"{off.load.percentile(50):.2f} ms, mostly queueing)"
    )
    print(
        f"added p50 {added_1:+.3f} ms with 1 sequential client ({on.single.percentile(50):.3f} vs "
        f"{off.single.percentile(50):.3f} ms): the limiter's own per-request latency; goal <= 1.5 ms: "
        f"{'met' if added_1 <= 1.5 else 'NOT met'}"
    )
    print(f"errors (non-200 or transport): {errors}")

    print(
        json.dumps(
            {
                "rps_limited": num(on.load.rps, 1),
                "rps_unlimited": num(off.load.rps, 1),
                "throughput_ratio": num(ratio, 3),
                "added_p50_ms": num(added, 2),
                "added_p50_ms_1client": num(added_1, 3),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
