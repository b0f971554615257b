#!/usr/bin/env python
"""Catalog list/search benchmark: PostgreSQL + Redis + uvicorn (2 workers) under concurrent load.

    .venv/bin/python bench/catalog.py [--duration 30] [--concurrency 32]

Steps (every step bounded in time; the server is always stopped):

1. drop and re-create the database ``modelhub_bench`` (psycopg, autocommit),
   run ``manage.py migrate`` against it;
2. seed N models (default 5,000; deterministic from ``--seed``) with ``bulk_create``
   in a ``django.setup()`` subprocess (this same file, ``--seed-worker``), plus one
   ``viewer`` user; the PostgreSQL trigger fills ``search_vector``; then ANALYZE;
3. start ``uvicorn modelhub.asgi:application --workers 2`` on a free 127.0.0.1 port,
   wait for ``/health``, obtain a JWT for the viewer;
4. closed-loop load from ``--concurrency`` httpx clients for ``--duration`` seconds
   (after ``--warmup`` seconds that are not counted) against
   ``GET /models?search=..&provider=..&modelType=..&limit=25``, then the same load
   against the trivial authenticated ``GET /auth/me`` as a reference;
5. print requests/s, p50/p95/p99, errors and the ratio; the last line is one JSON object.

Only 200 responses count towards requests/s and latency; everything else is an
error and is reported. Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
UVICORN = ROOT / ".venv" / "bin" / "uvicorn"
DB_NAME = "modelhub_bench"
PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5"
PG_BENCH_DSN = f"host=127.0.0.1 port=5432 user=postgres dbname={DB_NAME} connect_timeout=5"
DATABASE_URL = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
REDIS_URL = "redis://127.0.0.1:6379/1"
API = "/api/v1/modelhub"
BENCH_USERNAME = "bench-viewer"

# --- Synthetic catalog vocabulary (shared by the seeder and the request generator) ----------

PROVIDERS = ["openai", "anthropic", "google", "neuroweaver", "custom"]
MODEL_TYPES = ["text", "vision", "multimodal", "embedding", "code"]
FAMILIES = [
    "aurora", "nimbus", "falcon", "orion", "atlas", "sage", "lumen", "vega", "helix", "quartz",
    "cobalt", "zephyr", "ember", "titan", "nova", "polaris", "cirrus", "granite", "juniper", "raven",
    "sparrow", "kestrel", "onyx", "cedar", "sequoia", "meridian", "pulsar", "quasar", "tundra", "sierra",
    "harbor", "beacon", "prism", "vertex", "fable", "lyra", "marlin", "condor", "basalt", "willow",
]
# Each family belongs to one provider (as in real catalogs), spread over all providers.
FAMILY_PROVIDER = {f: PROVIDERS[(i * 7 + 3) % len(PROVIDERS)] for i, f in enumerate(FAMILIES)}
SIZES = ["nano", "mini", "small", "base", "medium", "large", "xl", "1b", "3b", "7b", "8b", "13b", "34b", "70b", "405b"]
TYPE_WEIGHTS = {"text": 40, "code": 15, "multimodal": 18, "vision": 10, "embedding": 17}
VARIANTS = {
    "text": ["instruct", "chat", "base", "turbo", "pro", "lite", "reasoner"],
    "code": ["coder", "code-instruct", "codegen", "code-review"],
    "vision": ["vision", "vl", "ocr", "detect"],
    "multimodal": ["omni", "mm", "vision-chat", "audio-chat"],
    "embedding": ["embed", "embed-multilingual", "retriever", "rerank"],
}
CAPABILITIES = {
    "text": ["chat", "streaming", "function_calling", "json_mode", "reasoning", "long_context", "tool_use", "fine_tuning", "batch"],
    "code": ["code_completion", "chat", "streaming", "function_calling", "long_context", "fill_in_the_middle", "tool_use"],
    "vision": ["vision", "ocr", "object_detection", "image_classification", "batch"],
    "multimodal": ["chat", "vision", "audio", "streaming", "function_calling", "json_mode", "long_context", "tool_use"],
    "embedding": ["embeddings", "batch", "multilingual", "reranking"],
}
TASKS = {
    "text": ["chat", "summarization", "extraction", "classification", "translation", "question_answering", "sentiment_analysis", "planning"],
    "code": ["coding", "code_review", "test_generation", "refactoring", "documentation"],
    "vision": ["image_captioning", "ocr", "object_detection", "document_parsing", "visual_inspection"],
    "multimodal": ["chat", "image_understanding", "document_parsing", "transcription", "summarization"],
    "embedding": ["semantic_search", "retrieval", "clustering", "deduplication", "recommendation"],
}
DOMAINS = [
    ("legal", "legal contract analysis"), ("medical", "medical record summarization"),
    ("finance", "financial report extraction"), ("retail", "retail product search"),
    ("support", "customer support automation"), ("education", "education and tutoring"),
    ("security", "security log triage"), ("scientific", "scientific literature review"),
    ("multilingual", "multilingual translation"), ("insurance", "insurance claims processing"),
    ("marketing", "marketing copy generation"), ("hr", "recruiting and resume screening"),
    ("logistics", "logistics and supply chain planning"), ("gaming", "game dialogue generation"),
]
CATEGORIES = ["general", "reasoning", "coding", "embeddings", "vision", "legal", "medical", "finance",
              "customer-support", "translation", "research", "security"]
ADJECTIVES = ["Fast", "Compact", "Accurate", "Efficient", "Robust", "Lightweight", "State-of-the-art",
              "Low-latency", "Cost-efficient", "High-throughput", "Instruction-tuned", "Open-weight"]
EXTRAS = [
    "Supports {n} languages.", "Optimised for on-premise deployment.", "Trained on curated {d} corpora.",
    "Handles long documents up to {ctx} tokens.", "Distilled from a larger teacher model.",
    "Quantised weights available for edge devices.", "Strong at structured JSON output.",
    "Evaluated on internal benchmarks with human review.", "Good default for batch workloads.",
]
TAGS = ["fast", "cheap", "flagship", "open-weight", "long-context", "multilingual", "beta", "edge", "private",
        "gpu", "cpu", "quantized", "distilled", "enterprise", "research", "realtime", "batch"]
COMPLIANCE = ["SOC2", "GDPR", "HIPAA", "ISO27001", "PCI-DSS"]
LICENSES = ["proprietary", "apache-2.0", "mit", "llama-community", "cc-by-nc-4.0"]
STATUSES = (["active"] * 16) + (["experimental"] * 2) + ["deprecated", "maintenance"]
SECURITY_LEVELS = ["public", "internal", "internal", "restricted", "confidential"]

# Search terms the load uses; all of them occur in the seeded data (checked after seeding).
SEARCH_TERMS = [
    # single words from descriptions, tags, categories, capabilities, names
    "legal", "medical", "finance", "translation", "summarization", "multilingual", "retrieval",
    "support", "security", "scientific", "insurance", "reasoning", "vision", "embeddings", "coding",
    "fast", "compact", "streaming", "ocr", "rerank", "instruct", "turbo", "quantised", "json",
    # model families and partial names (name icontains + tsvector)
    "aurora", "nimbus", "falcon", "orion", "helix", "quartz", "zephyr", "polaris", "sequoia", "pulsar",
    "aurora-7b", "nimbus-mini", "falcon-70b", "vega-large", "titan-13b",
    # phrases (websearch: all words must match)
    "legal contract", "customer support", "fast summarization", "code review", "low latency",
    "medical record", "financial report", "long documents", "multilingual translation", "edge devices",
]


def _weighted(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def generate_models(count: int, seed: int) -> list[dict]:
    """``count`` varied, deterministic model rows (kwargs for ``ModelRegistry``)."""
    rng = random.Random(seed)
    seen: set[tuple[str, str]] = set()
    rows: list[dict] = []
    attempts = 0
    while len(rows) < count and attempts < count * 50:
        attempts += 1
        family = rng.choice(FAMILIES)
        model_type = _weighted(rng, TYPE_WEIGHTS)
        size = rng.choice(SIZES)
        variant = rng.choice(VARIANTS[model_type])
        name = f"{family}-{size}-{variant}"
        if rng.random() < 0.25:
            version = f"{rng.randint(2023, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        else:
            version = f"{rng.randint(1, 4)}.{rng.randint(0, 9)}.{rng.randint(0, 20)}"
        if (name, version) in seen:
            continue
        seen.add((name, version))
        provider = FAMILY_PROVIDER[family] if rng.random() < 0.85 else rng.choice(PROVIDERS)
        domain, domain_phrase = rng.choice(DOMAINS)
        caps = rng.sample(CAPABILITIES[model_type], k=rng.randint(1, min(5, len(CAPABILITIES[model_type]))))
        tasks = rng.sample(TASKS[model_type], k=rng.randint(1, 3))
        context_window = rng.choice([4_096, 8_192, 16_384, 32_768, 128_000, 200_000, 1_000_000])
        max_tokens = min(context_window, rng.choice([2_048, 4_096, 8_192, 16_384, 32_768]))
        big = size in ("large", "xl", "34b", "70b", "405b")
        if model_type == "embedding":
            latency = rng.uniform(20, 300)
        elif big:
            latency = rng.uniform(800, 6_000)
        else:
            latency = rng.uniform(120, 1_500)
        cost = Decimal(f"{10 ** rng.uniform(-5.3, -1.2):.6f}")
        adjective = rng.choice(ADJECTIVES)
        extra = rng.choice(EXTRAS).format(n=rng.randint(2, 120), d=domain, ctx=f"{context_window:,}")
        description = (
            f"{adjective} {model_type} model from the {family.title()} family ({size}), tuned for "
            f"{domain_phrase} and {tasks[0].replace('_', ' ')}. {extra}"
        )
        if rng.random() < 0.3:
            description += " " + rng.choice(EXTRAS).format(n=rng.randint(2, 120), d=domain, ctx=f"{context_window:,}")
        tags = sorted(set(rng.sample(TAGS, k=rng.randint(1, 4)) + ([domain] if rng.random() < 0.6 else [])))
        category = domain if rng.random() < 0.35 and domain in CATEGORIES else rng.choice(CATEGORIES)
        params = {
            "temperature": {"type": "float", "min": 0, "max": 2, "default": round(rng.uniform(0.2, 1.0), 2)},
            "top_p": {"type": "float", "min": 0, "max": 1, "default": 1},
        }
        if model_type in ("text", "code", "multimodal"):
            params["max_output_tokens"] = {"type": "int", "min": 1, "max": max_tokens, "default": min(1024, max_tokens)}
        rows.append(
            dict(
                name=name, version=version, provider=provider, model_type=model_type,
                capabilities=caps, supported_tasks=tasks,
                input_formats=["text"] + (["image"] if model_type in ("vision", "multimodal") else []),
                output_formats=["vector"] if model_type == "embedding" else ["text"] + (["json"] if "json_mode" in caps else []),
                max_tokens=max_tokens, context_window=context_window,
                max_batch_size=rng.choice([1, 1, 1, 8, 32, 256, 2048]) if model_type != "embedding" else 2048,
                supported_parameters=params,
                baseline_avg_latency_ms=round(latency, 1), baseline_cost_per_1k_tokens=cost,
                baseline_success_rate=round(rng.uniform(0.95, 0.9999), 4),
                baseline_avg_tokens_per_request=rng.randint(50, 4_000),
                description=description, tags=tags, category=category,
                license=rng.choice(LICENSES), documentation=f"https://docs.example.com/models/{name}",
                status=rng.choice(STATUSES), security_level=rng.choice(SECURITY_LEVELS),
                compliance=sorted(rng.sample(COMPLIANCE, k=rng.randint(0, 3))),
                popularity=int(10 ** rng.uniform(0, 6)), avg_rating=round(rng.uniform(2.5, 5.0), 2),
            )
        )
    if len(rows) < count:
        raise RuntimeError(f"could only generate {len(rows)} unique models")
    return rows


def seed_worker(args: argparse.Namespace) -> None:
    """Runs in a subprocess with the bench environment: ORM bulk_create + the viewer user."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "modelhub.settings")
    import django

    django.setup()
    from catalog.models import ModelRegistry
    from modelhub.accounts.services import user_create

    started = time.perf_counter()
    rows = generate_models(args.models, args.seed)
    ModelRegistry.objects.bulk_create([ModelRegistry(**row) for row in rows], batch_size=1000)
    user = user_create(actor=None, username=BENCH_USERNAME, password=os.environ["BENCH_PASSWORD"], role="viewer")
    limits_note = ""
    try:  # rate limits stay on (their cost is part of every request) but must not refuse the load
        from modelhub.accounts.limits import MAX_LIMIT
        from modelhub.accounts.models import RateLimitOverride
    except ImportError:
        pass
    else:
        RateLimitOverride.objects.update_or_create(
            user=user,
            defaults=dict(requests_per_minute=MAX_LIMIT, requests_per_hour=MAX_LIMIT, requests_per_day=MAX_LIMIT,
                          burst_limit=MAX_LIMIT),
        )
        limits_note = f" with a rate-limit override of {MAX_LIMIT:,} per window"
    print(f"seeded {ModelRegistry.objects.count()} models and user {BENCH_USERNAME!r}{limits_note} "
          f"in {time.perf_counter() - started:.1f}s", flush=True)


# --- Request generation -----------------------------------------------------------------


def catalog_url_factory(seed: int):
    """Returns ``next_url()`` giving a varied catalog query each call (deterministic per client)."""
    rng = random.Random(seed)

    def next_url() -> str:
        term = rng.choice(SEARCH_TERMS)
        providers = rng.sample(PROVIDERS, k=rng.choices([1, 2, 3], weights=[45, 35, 20])[0])
        types = rng.sample(MODEL_TYPES, k=rng.choices([1, 2, 3], weights=[40, 35, 25])[0])
        return (
            f"{API}/models?search={quote(term, safe='')}&provider={','.join(providers)}"
            f"&modelType={','.join(types)}&limit=25"
        )

    return next_url


# --- Load ------------------------------------------------------------------------------------


@dataclass
class Stats:
    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)
    bytes_received: int = 0
    sampled_pages: int = 0
    sampled_models: int = 0
    sampled_empty: int = 0
    sampled_total: int = 0
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


class RawConnection:
    """A minimal HTTP/1.1 keep-alive GET client on one socket (httptools parses the response).

    Only for ``--client raw``: it costs the bench process far less CPU than httpx,
    which matters when client and server share two cores.
    """

    def __init__(self, host: str, port: int, headers: dict) -> None:
        self.host, self.port = host, port
        self.head_tail = "".join(f"{k}: {v}\r\n" for k, v in {"Host": f"{host}:{port}", **headers}.items()).encode() + b"\r\n"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, bytes]:
        import httptools

        try:
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            self.writer.write(b"GET " + path.encode() + b" HTTP/1.1\r\n" + self.head_tail)
            response = _RawResponse()
            parser = httptools.HttpResponseParser(response)
            while not response.done:
                data = await self.reader.read(262_144)
                if not data:
                    raise ConnectionError("server closed the connection")
                parser.feed_data(data)
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


async def run_load(base_url: str, headers: dict, make_url, *, concurrency: int, duration: float,
                   warmup: float, sample_every: int = 0, client_kind: str = "httpx") -> Stats:
    """Closed loop: ``concurrency`` workers send back-to-back requests until the deadline."""
    import httpx

    stats = Stats()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    timeout = httpx.Timeout(10.0, connect=5.0)
    host, port = base_url.rsplit("//", 1)[1].split(":")
    async with httpx.AsyncClient(base_url=base_url, headers=headers, http1=True, http2=False, limits=limits,
                                 timeout=timeout, trust_env=False) as client:

        async def worker(index: int, until: float, record: bool) -> None:
            next_url = make_url(index)
            raw = RawConnection(host, int(port), headers) if client_kind == "raw" else None
            n = 0
            try:
                while time.perf_counter() < until:
                    url = next_url()
                    started = time.perf_counter()
                    try:
                        if raw is not None:
                            status, body = await asyncio.wait_for(raw.get(url), timeout=10)
                        else:
                            response = await client.get(url)
                            status, body = response.status_code, response.content
                    except Exception as exc:  # noqa: BLE001 - every failure is an error
                        if record:
                            stats.errors[type(exc).__name__] += 1
                            if len(stats.error_samples) < 5:
                                stats.error_samples.append(f"{type(exc).__name__}: {exc} ({url})")
                        await asyncio.sleep(0.01)
                        continue
                    elapsed_ms = (time.perf_counter() - started) * 1000
                    if not record:
                        continue
                    if status != 200:
                        stats.errors[f"HTTP {status}"] += 1
                        if len(stats.error_samples) < 5:
                            stats.error_samples.append(f"HTTP {status} {url}: {body[:300]!r}")
                        continue
                    stats.latencies_ms.append(elapsed_ms)
                    stats.bytes_received += len(body)
                    n += 1
                    if sample_every and n % sample_every == 0:
                        try:
                            payload = json.loads(body)
                            page = len(payload["models"])
                            stats.sampled_pages += 1
                            stats.sampled_models += page
                            stats.sampled_empty += page == 0
                            stats.sampled_total += payload["pagination"]["total"]
                        except (ValueError, KeyError, TypeError):
                            pass
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


# --- Environment, database, server ---------------------------------------------------------------


def bench_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="modelhub.settings",
        DATABASE_URL=DATABASE_URL,
        REDIS_URL=REDIS_URL,
        SECRET_KEY="bench-secret-" + secrets.token_urlsafe(48),
        JWT_SIGNING_KEY="bench-jwt-" + secrets.token_urlsafe(48),
        LOG_LEVEL="WARNING",
        DEBUG="false",  # DEBUG would record every query and skew the figures
        ALLOWED_HOSTS="127.0.0.1,localhost",
        BENCH_PASSWORD="Bench-" + secrets.token_urlsafe(18),
        PYTHONUNBUFFERED="1",
    )
    return env


def step(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def reset_database() -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")


def clear_redis_facets() -> None:
    """Drop cached catalog facets in the bench Redis DB: they describe a previous seed."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        keys = list(client.scan_iter(match="modelhub:*catalog:facets*", count=500))[:10_000]
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def run_checked(cmd: list[str], env: dict, timeout: float, what: str) -> str:
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout


def analyze_and_check(terms: list[str]) -> dict[str, int]:
    """ANALYZE the seeded table and count rows each search term matches (as the API does)."""
    import psycopg

    with psycopg.connect(PG_BENCH_DSN, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE catalog_modelregistry")
        missing = conn.execute("SELECT count(*) FROM catalog_modelregistry WHERE search_vector IS NULL").fetchone()[0]
        if missing:
            raise RuntimeError(f"{missing} rows have no search_vector: is the trigger installed?")
        hits = {}
        for term in terms:
            hits[term] = conn.execute(
                "SELECT count(*) FROM catalog_modelregistry WHERE search_vector @@ websearch_to_tsquery('english', %s)"
                " OR name ILIKE %s",
                (term, f"%{term}%"),
            ).fetchone()[0]
    return hits


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env: dict, port: int, workers: int, log_path: Path) -> subprocess.Popen:
    cmd = [str(UVICORN), "modelhub.asgi:application", "--host", "127.0.0.1", "--port", str(port),
           "--workers", str(workers), "--no-access-log", "--log-level", "warning"]
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


def get_token(base_url: str, password: str) -> str:
    import httpx

    with httpx.Client(base_url=base_url, timeout=10, trust_env=False) as client:
        response = client.post(f"{API}/auth/token", json={"username": BENCH_USERNAME, "password": password})
        if response.status_code != 200:
            raise RuntimeError(f"auth/token answered {response.status_code}: {response.text[:500]}")
        return response.json()["access"]


def preflight(base_url: str, headers: dict) -> None:
    """One catalog and one auth/me request must succeed before the load starts."""
    import httpx

    with httpx.Client(base_url=base_url, headers=headers, timeout=10, trust_env=False) as client:
        for url in (catalog_url_factory(0)(), f"{API}/auth/me"):
            response = client.get(url)
            if response.status_code != 200:
                raise RuntimeError(f"preflight GET {url} answered {response.status_code}: {response.text[:500]}")


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


def measured(proc: subprocess.Popen, run):  # noqa: ANN001, ANN201
    """Run ``run()`` and attach the machine's CPU use during it (seconds, by process group) to its Stats."""
    busy0, _ = machine_cpu()
    procs0 = process_cpu()
    started = time.perf_counter()
    stats = run()
    stats.machine_busy_s = machine_cpu()[0] - busy0
    stats.cpu = cpu_breakdown(procs0, process_cpu(), proc.pid)
    stats.phase_wall_s = time.perf_counter() - started
    return stats


def describe(label: str, stats: Stats) -> None:
    print(
        f"{label:<8} {stats.rps:8.1f} req/s  p50 {stats.percentile(50):6.1f} ms  p95 {stats.percentile(95):6.1f} ms  "
        f"p99 {stats.percentile(99):6.1f} ms  ok {stats.ok}  errors {stats.error_count}  "
        f"({stats.elapsed_s:.1f}s, {stats.bytes_received / max(stats.ok, 1) / 1024:.1f} KiB/response, "
        f"bench client CPU {stats.client_cpu_s:.1f}s = {100 * stats.client_cpu_s / max(stats.elapsed_s, 1e-9):.0f}% of a core)",
        flush=True,
    )
    if stats.machine_busy_s and stats.cpu:
        c = stats.cpu
        known = sum(v for v in c.values() if isinstance(v, float))
        print(f"         CPU seconds in the phase (incl. warm-up): machine {stats.machine_busy_s:.1f} = uvicorn "
              f"{c['uvicorn']:.1f} + bench {c['bench']:.1f} + postgres {c['postgres']:.1f} + redis {c['redis']:.1f} "
              f"+ other processes {c['other']:.1f} + unattributed {max(stats.machine_busy_s - known, 0):.1f}", flush=True)
        if c["other"] > 0.1 * stats.phase_wall_s:
            print(f"         WARNING: other processes used {100 * c['other'] / stats.phase_wall_s:.0f}% of a core "
                  f"during this phase ({c['other_top']}); the figures are low", flush=True)
    if stats.errors:
        print(f"         errors by kind: {dict(stats.errors)}", flush=True)
        for sample in stats.error_samples:
            print(f"         e.g. {sample}", flush=True)


# --- Main ------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=30, help="measured seconds per endpoint (default 30)")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent clients (default 32)")
    parser.add_argument("--warmup", type=float, default=3, help="unmeasured seconds before each phase (default 3)")
    parser.add_argument("--models", type=int, default=5000, help="models to seed (default 5000)")
    parser.add_argument("--seed", type=int, default=20240601, help="random seed for data and requests")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers (default 2)")
    parser.add_argument("--client", choices=["httpx", "raw"], default="httpx",
                        help="load client: httpx.AsyncClient (default) or a minimal httptools keep-alive client "
                             "that uses less of the machine's CPU")
    parser.add_argument("--seed-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not (0 < args.duration <= 3600 and 0 < args.concurrency <= 1024 and 0 <= args.warmup <= 600):
        parser.error("duration must be in (0, 3600], concurrency in (0, 1024], warmup in [0, 600]")
    return args


def main() -> int:
    args = parse_args()
    if args.seed_worker:
        seed_worker(args)
        return 0

    env = bench_env()
    started = time.perf_counter()
    step(f"resetting database {DB_NAME}")
    reset_database()
    clear_redis_facets()
    step("migrating")
    run_checked([str(PYTHON), "manage.py", "migrate", "--noinput"], env, 600, "migrate")
    step(f"seeding {args.models} models (seed {args.seed})")
    out = run_checked([str(PYTHON), str(Path(__file__).resolve()), "--seed-worker", "--models", str(args.models),
                       "--seed", str(args.seed)], env, 600, "seeding")
    step(out.strip().splitlines()[-1] if out.strip() else "seeded")
    hits = analyze_and_check(SEARCH_TERMS)
    zero = [t for t, n in hits.items() if n == 0]
    counts = sorted(hits.values())
    step(f"search terms: {len(hits)}, rows matched per term min {counts[0]} / median {counts[len(counts) // 2]} / "
         f"max {counts[-1]} (before provider/modelType filters)")
    if zero:
        step(f"WARNING: terms matching nothing: {zero}")

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log_path = Path(tempfile.gettempdir()) / f"modelhub-bench-uvicorn-{port}.log"
    step(f"starting uvicorn ({args.workers} workers) on {base_url}; log {log_path}")
    proc = start_server(env, port, args.workers, log_path)
    try:
        health = wait_for_health(base_url, proc, log_path)
        step(f"health answered {health} after {time.perf_counter() - started:.1f}s total setup")
        headers = {"Authorization": f"Bearer {get_token(base_url, env['BENCH_PASSWORD'])}"}
        preflight(base_url, headers)
        busy = machine_busy_fraction()
        cores = os.cpu_count() or 1
        step(f"machine CPU busy before the load: {100 * busy:.0f}% of {cores} cores"
             + (" - WARNING: something else is running; the figures will be low" if busy > 0.15 else ""))

        step(f"catalog: {args.concurrency} {args.client} clients, {args.warmup:g}s warm-up + {args.duration:g}s")
        catalog = measured(proc, lambda: asyncio.run(run_load(
            base_url, headers, lambda i: catalog_url_factory(args.seed * 1000 + i),
            concurrency=args.concurrency, duration=args.duration, warmup=args.warmup, sample_every=10,
            client_kind=args.client,
        )))
        step(f"reference auth/me: {args.concurrency} {args.client} clients, {args.warmup:g}s warm-up + {args.duration:g}s")
        reference = measured(proc, lambda: asyncio.run(run_load(
            base_url, headers, lambda i: (lambda: f"{API}/auth/me"),
            concurrency=args.concurrency, duration=args.duration, warmup=args.warmup, client_kind=args.client,
        )))
        if proc.poll() is not None:
            step(f"WARNING: server exited during the run ({proc.returncode}):\n{tail(log_path)}")
    finally:
        stop_server(proc)
        step("server stopped")

    print()
    describe("catalog", catalog)
    if catalog.sampled_pages:
        print(f"         sampled {catalog.sampled_pages} pages: avg {catalog.sampled_models / catalog.sampled_pages:.1f} "
              f"models/page, {100 * catalog.sampled_empty / catalog.sampled_pages:.0f}% empty, "
              f"avg total {catalog.sampled_total / catalog.sampled_pages:.0f} matches", flush=True)
    describe("auth/me", reference)
    ratio = catalog.rps / reference.rps if reference.rps else 0.0
    goal = catalog.rps >= 400 and catalog.percentile(95) < 50 and ratio >= 0.35
    print(f"ratio    {ratio:.3f} (catalog rps / auth/me rps)")
    print(f"goal (>= 400 req/s, p95 < 50 ms, ratio >= 0.35): {'met' if goal else 'NOT met'}"
          f"{'' if not (catalog.error_count or reference.error_count) else '; there were errors'}")

    def num(value: float, digits: int) -> float | None:
        return None if value != value else round(value, digits)  # NaN (no successes) -> null

    print(json.dumps({
        "rps": num(catalog.rps, 1),
        "p50_ms": num(catalog.percentile(50), 2),
        "p95_ms": num(catalog.percentile(95), 2),
        "p99_ms": num(catalog.percentile(99), 2),
        "ref_rps": num(reference.rps, 1),
        "ratio": num(ratio, 3),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
