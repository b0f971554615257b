"""Shared pieces of the end-to-end benchmarks in ``bench/`` (``catalog.py``, ``ratelimit.py``).

Everything here talks to 127.0.0.1 only and every wait is bounded in time:

- environment: :func:`bench_env` (random keys, ``DEBUG=false``, the bench database and Redis DB);
- PostgreSQL: :func:`reset_database` (drop + create), :func:`run_checked` (``manage.py migrate``, seeders);
- Redis: :func:`redis_delete_matching` (clear the bench DB's keys of one kind);
- server: :func:`free_port`, :func:`start_server` / :func:`stop_server` (uvicorn in its own process
  group), :func:`wait_for_health`, :func:`get_token`, :func:`tail`;
- load: :func:`run_load` (closed loop, httpx or the small :class:`RawConnection` client), :class:`Stats`;
- CPU accounting from ``/proc``: :func:`machine_cpu`, :func:`process_cpu`, :func:`cpu_breakdown`,
  :func:`machine_busy_fraction`, :func:`measured`;
- output: :func:`step`, :func:`describe`, :func:`num`.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
UVICORN = ROOT / ".venv" / "bin" / "uvicorn"
API = "/api/v1/modelhub"
PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
PG_ADMIN_DSN = f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname=postgres connect_timeout=5"


def pg_dsn(db_name: str) -> str:
    """libpq DSN of a bench database (psycopg)."""
    return f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={db_name} connect_timeout=5"


def database_url(db_name: str) -> str:
    """``DATABASE_URL`` of a bench database (Django settings)."""
    return f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{db_name}"


# --- Output ------------------------------------------------------------------------------------


def step(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def num(value: float, digits: int) -> float | None:
    """Rounded for JSON; NaN (no successes) becomes null."""
    return None if value != value else round(value, digits)


# --- Load ------------------------------------------------------------------------------------


@dataclass
class Stats:
    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)
    bytes_received: int = 0
    warmup_ok: int = 0  # 200 responses during the (unmeasured) warm-up
    samples: Counter = field(default_factory=Counter)  # filled by a run_load ``sample`` callback
    elapsed_s: float = 0.0
    client_cpu_s: float = 0.0
    machine_busy_s: float = 0.0
    phase_wall_s: float = 0.0
    cpu: dict = field(default_factory=dict)  # see cpu_breakdown

    @property
    def ok(self) -> int:
        return len(self.latencies_ms)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def rps(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        data = sorted(self.latencies_ms)
        k = (len(data) - 1) * p / 100
        lo = int(k)
        hi = min(lo + 1, len(data) - 1)
        return data[lo] + (data[hi] - data[lo]) * (k - lo)


class _RawResponse:
    """httptools callbacks for one response."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.done = False

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        self.done = True


class _RawResponseWithHeaders(_RawResponse):
    """The same, also collecting the headers (lower-cased names); used only for sampled responses."""

    def __init__(self) -> None:
        super().__init__()
        self.headers: dict[str, str] = {}

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")


class RawConnection:
    """A minimal HTTP/1.1 keep-alive GET client on one socket (httptools parses the response).

    For ``--client raw``: it costs the bench process far less CPU than httpx,
    which matters when client and server share two cores.
    """

    def __init__(self, host: str, port: int, headers: dict) -> None:
        self.host, self.port = host, port
        self.head_tail = (
            "".join(f"{k}: {v}\r\n" for k, v in {"Host": f"{host}:{port}", **headers}.items()).encode() + b"\r\n"
        )
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.last_headers: dict[str, str] = {}

    async def get(self, path: str, want_headers: bool = False) -> tuple[int, bytes]:
        """(status, body); with ``want_headers`` the response headers go to ``last_headers``."""
        import httptools

        try:
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            self.writer.write(b"GET " + path.encode() + b" HTTP/1.1\r\n" + self.head_tail)
            response = _RawResponseWithHeaders() if want_headers else _RawResponse()
            parser = httptools.HttpResponseParser(response)
            while not response.done:
                data = await self.reader.read(262_144)
                if not data:
                    raise ConnectionError("server closed the connection")
                parser.feed_data(data)
            if want_headers:
                self.last_headers = response.headers
            if not parser.should_keep_alive():
                self.close()
            return parser.get_status_code(), b"".join(response.chunks)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


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


# --- Environment, database, Redis ---------------------------------------------------------------


def bench_env(db_name: str, redis_url: str, **extra: str) -> dict[str, str]:
    """The environment for the server and the subprocesses: ours, plus the bench settings."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="modelhub.settings",
        DATABASE_URL=database_url(db_name),
        REDIS_URL=redis_url,
        SECRET_KEY="bench-secret-" + secrets.token_urlsafe(48),
        JWT_SIGNING_KEY="bench-jwt-" + secrets.token_urlsafe(48),
        LOG_LEVEL="WARNING",
        DEBUG="false",  # DEBUG would record every query and skew the figures
        ALLOWED_HOSTS="127.0.0.1,localhost",
        BENCH_PASSWORD="Bench-" + secrets.token_urlsafe(18),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def reset_database(db_name: str) -> None:
    """Drop (forcing out any connection) and re-create a bench database."""
    import psycopg

    if not db_name.replace("_", "").isalnum():
        raise ValueError(f"unsafe database name {db_name!r}")
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {db_name}")


def redis_delete_matching(redis_url: str, pattern: str, limit: int = 10_000) -> int:
    """Delete up to ``limit`` keys matching ``pattern`` in the Redis DB of ``redis_url``; returns how many."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        keys = list(client.scan_iter(match=pattern, count=500))[:limit]
        if keys:
            client.delete(*keys)
        return len(keys)
    finally:
        client.close()


def run_checked(cmd: list[str], env: dict, timeout: float, what: str) -> str:
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout


def migrate(env: dict) -> None:
    run_checked([str(PYTHON), "manage.py", "migrate", "--noinput"], env, 600, "migrate")


# --- Server -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env: dict, port: int, workers: int, log_path: Path) -> subprocess.Popen:
    cmd = [
        str(UVICORN),
        "modelhub.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    with open(log_path, "wb") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=5)
    else:
        # The master is gone; make sure no orphaned worker of its group survives.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def tail(path: Path, limit: int = 3000) -> str:
    try:
        return path.read_bytes()[-limit:].decode(errors="replace")
    except OSError:
        return ""


def wait_for_health(base_url: str, proc: subprocess.Popen, log_path: Path, timeout: float = 90) -> int:
    import httpx

    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=base_url, timeout=5, trust_env=False) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{tail(log_path)}")
            try:
                response = client.get(f"{API}/health")
                if response.status_code == 503:
                    step(f"health answered 503 (degraded): {response.text[:300]}")
                return response.status_code
            except httpx.TransportError:
                time.sleep(0.25)
    raise RuntimeError(f"server did not answer /health within {timeout:.0f}s:\n{tail(log_path)}")


def get_token(base_url: str, username: str, password: str) -> str:
    import httpx

    with httpx.Client(base_url=base_url, timeout=10, trust_env=False) as client:
        response = client.post(f"{API}/auth/token", json={"username": username, "password": password})
        if response.status_code != 200:
            raise RuntimeError(f"auth/token answered {response.status_code}: {response.text[:500]}")
        return response.json()["access"]


# --- CPU accounting (Linux /proc) ---------------------------------------------------------------


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat (zeros elsewhere)."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return 0.0, 0.0
    hz = os.sysconf("SC_CLK_TCK")
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    return (sum(ticks) - idle) / hz, sum(ticks) / hz


def process_cpu() -> dict[int, tuple[str, int, float]]:
    """{pid: (name, ppid, CPU seconds so far)} for every process, from /proc (empty elsewhere)."""
    hz = os.sysconf("SC_CLK_TCK")
    result = {}
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return result
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                raw = f.read()
            name = raw[raw.index("(") + 1 : raw.rindex(")")]
            fields = raw.rsplit(")", 1)[1].split()
            result[pid] = (name, int(fields[1]), (int(fields[11]) + int(fields[12])) / hz)
        except (OSError, ValueError, IndexError):
            continue
    return result


def cpu_breakdown(before: dict, after: dict, server_pid: int) -> dict[str, float]:
    """CPU seconds used between two ``process_cpu()`` snapshots, by uvicorn / bench / postgres / redis / other
    (plus ``other_top``: the busiest other process names)."""
    children: dict[int, list[int]] = {}
    for pid, (_, ppid, _) in after.items():
        children.setdefault(ppid, []).append(pid)
    server, todo = set(), [server_pid]
    while todo:
        pid = todo.pop()
        if pid not in server:
            server.add(pid)
            todo.extend(children.get(pid, []))
    totals = dict.fromkeys(("uvicorn", "bench", "postgres", "redis", "other"), 0.0)
    others: Counter = Counter()
    for pid, (name, _, seconds) in after.items():
        used = seconds - (before[pid][2] if pid in before and before[pid][0] == name else 0.0)
        if pid in server:
            totals["uvicorn"] += used
        elif pid == os.getpid():
            totals["bench"] += used
        elif name.startswith("postgres"):
            totals["postgres"] += used
        elif name.startswith("redis"):
            totals["redis"] += used
        else:
            totals["other"] += used
            others[name] += used
    totals["other_top"] = ", ".join(f"{name} {sec:.1f}s" for name, sec in others.most_common(3) if sec >= 0.05)
    return totals


def machine_busy_fraction(seconds: float = 1.0) -> float:
    busy0, total0 = machine_cpu()
    time.sleep(seconds)
    busy1, total1 = machine_cpu()
    return (busy1 - busy0) / (total1 - total0) if total1 > total0 else 0.0


def check_idle(threshold: float = 0.15) -> float:
    """Print how busy the machine is (1 s sample) and warn above ``threshold``; returns the fraction."""
    busy = machine_busy_fraction()
    cores = os.cpu_count() or 1
    step(
        f"machine CPU busy before the load: {100 * busy:.0f}% of {cores} cores"
        + (" - WARNING: something else is running; the figures will be low" if busy > threshold else "")
    )
    return busy


def measured(proc: subprocess.Popen, run):
    """Run ``run()`` and attach the machine's CPU use during it (seconds, by process group) to its Stats."""
    busy0, _ = machine_cpu()
    procs0 = process_cpu()
    started = time.perf_counter()
    stats = run()
    stats.machine_busy_s = machine_cpu()[0] - busy0
    stats.cpu = cpu_breakdown(procs0, process_cpu(), proc.pid)
    stats.phase_wall_s = time.perf_counter() - started
    return stats


def describe(label: str, stats: Stats, width: int = 8) -> None:
    """The human-readable lines for one measured phase (``width``: the label column)."""
    pad = " " * (width + 1)
    print(
        f"{label:<{width}} {stats.rps:8.1f} req/s  p50 {stats.percentile(50):6.1f} ms  p95 {stats.percentile(95):6.1f} ms  "
        f"p99 {stats.percentile(99):6.1f} ms  ok {stats.ok}  errors {stats.error_count}  "
        f"({stats.elapsed_s:.1f}s, {stats.bytes_received / max(stats.ok, 1) / 1024:.1f} KiB/response, "
        f"bench client CPU {stats.client_cpu_s:.1f}s = {100 * stats.client_cpu_s / max(stats.elapsed_s, 1e-9):.0f}% of a core)",
        flush=True,
    )
    if stats.machine_busy_s and stats.cpu:
        c = stats.cpu
        known = sum(v for v in c.values() if isinstance(v, float))
        print(
            f"{pad}CPU seconds in the phase (incl. warm-up): machine {stats.machine_busy_s:.1f} = uvicorn "
            f"{c['uvicorn']:.1f} + bench {c['bench']:.1f} + postgres {c['postgres']:.1f} + redis {c['redis']:.1f} "
            f"+ other processes {c['other']:.1f} + unattributed {max(stats.machine_busy_s - known, 0):.1f}",
            flush=True,
        )
        if c["other"] > 0.1 * stats.phase_wall_s:
            print(
                f"{pad}WARNING: other processes used {100 * c['other'] / stats.phase_wall_s:.0f}% of a core "
                f"during this phase ({c['other_top']}); the figures are low",
                flush=True,
            )
    if stats.errors:
        print(f"{pad}errors by kind: {dict(stats.errors)}", flush=True)
        for sample in stats.error_samples:
            print(f"{pad}e.g. {sample}", flush=True)
