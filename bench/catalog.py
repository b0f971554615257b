#!/usr/bin/env python
"""Catalog list/search benchmark: PostgreSQL + Redis + uvicorn (2 workers) under concurrent load.

    .venv/bin/python bench/catalog.py [--duration 30] [--concurrency 32] [--client raw|httpx]

Steps (every step bounded in time; the server is always stopped):

1. drop and re-create the database ``modelhub_bench`` (psycopg, autocommit),
   run ``manage.py migrate`` against it;
2. seed N models (default 5,000; deterministic from ``--seed``) with ``bulk_create``
   in a ``django.setup()`` subprocess (this same file, ``--seed-worker``), plus one
   ``viewer`` user; the PostgreSQL trigger fills ``search_vector``; then ANALYZE;
3. start ``uvicorn modelhub.asgi:application --workers 2`` on a free 127.0.0.1 port,
   wait for ``/health``, obtain a JWT for the viewer;
4. closed-loop load from ``--concurrency`` clients (the small httptools ``raw`` client by
   default, or httpx) for ``--duration`` seconds (after ``--warmup`` seconds that are not
   counted) against ``GET /models?search=..&provider=..&modelType=..&limit=25``, then the
   same load against the trivial authenticated ``GET /auth/me`` as a reference;
5. print requests/s, p50/p95/p99, errors and the ratio; the last line is one JSON object.

Only 200 responses count towards requests/s and latency; everything else is an
error and is reported. Traffic goes to 127.0.0.1 only. The shared machinery (server,
load client, CPU accounting) lives in ``bench/common.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/common.py, also when imported from elsewhere
from common import (
    API,
    PYTHON,
    ROOT,
    Stats,
    bench_env,
    check_idle,
    describe,
    free_port,
    get_token,
    measured,
    migrate,
    num,
    pg_dsn,
    redis_delete_matching,
    reset_database,
    run_checked,
    run_load,
    start_server,
    step,
    stop_server,
    tail,
    wait_for_health,
)

DB_NAME = "modelhub_bench"
PG_BENCH_DSN = pg_dsn(DB_NAME)
REDIS_URL = "redis://127.0.0.1:6379/1"
BENCH_USERNAME = "bench-viewer"

# --- Synthetic catalog vocabulary (shared by the seeder and the request generator) ----------

PROVIDERS = ["openai", "anthropic", "google", "neuroweaver", "custom"]
MODEL_TYPES = ["text", "vision", "multimodal", "embedding", "code"]
FAMILIES = [
    "aurora",
    "nimbus",
    "falcon",
    "orion",
    "atlas",
    "sage",
    "lumen",
    "vega",
    "helix",
    "quartz",
    "cobalt",
    "zephyr",
    "ember",
    "titan",
    "nova",
    "polaris",
    "cirrus",
    "granite",
    "juniper",
    "raven",
    "sparrow",
    "kestrel",
    "onyx",
    "cedar",
    "sequoia",
    "meridian",
    "pulsar",
    "quasar",
    "tundra",
    "sierra",
    "harbor",
    "beacon",
    "prism",
    "vertex",
    "fable",
    "lyra",
    "marlin",
    "condor",
    "basalt",
    "willow",
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
    "text": [
        "chat",
        "streaming",
        "function_calling",
        "json_mode",
        "reasoning",
        "long_context",
        "tool_use",
        "fine_tuning",
        "batch",
    ],
    "code": [
        "code_completion",
        "chat",
        "streaming",
        "function_calling",
        "long_context",
        "fill_in_the_middle",
        "tool_use",
    ],
    "vision": ["vision", "ocr", "object_detection", "image_classification", "batch"],
    "multimodal": ["chat", "vision", "audio", "streaming", "function_calling", "json_mode", "long_context", "tool_use"],
    "embedding": ["embeddings", "batch", "multilingual", "reranking"],
}
TASKS = {
    "text": [
        "chat",
        "summarization",
        "extraction",
        "classification",
        "translation",
        "question_answering",
        "sentiment_analysis",
        "planning",
    ],
    "code": ["coding", "code_review", "test_generation", "refactoring", "documentation"],
    "vision": ["image_captioning", "ocr", "object_detection", "document_parsing", "visual_inspection"],
    "multimodal": ["chat", "image_understanding", "document_parsing", "transcription", "summarization"],
    "embedding": ["semantic_search", "retrieval", "clustering", "deduplication", "recommendation"],
}
DOMAINS = [
    ("legal", "legal contract analysis"),
    ("medical", "medical record summarization"),
    ("finance", "financial report extraction"),
    ("retail", "retail product search"),
    ("support", "customer support automation"),
    ("education", "education and tutoring"),
    ("security", "security log triage"),
    ("scientific", "scientific literature review"),
    ("multilingual", "multilingual translation"),
    ("insurance", "insurance claims processing"),
    ("marketing", "marketing copy generation"),
    ("hr", "recruiting and resume screening"),
    ("logistics", "logistics and supply chain planning"),
    ("gaming", "game dialogue generation"),
]
CATEGORIES = [
    "general",
    "reasoning",
    "coding",
    "embeddings",
    "vision",
    "legal",
    "medical",
    "finance",
    "customer-support",
    "translation",
    "research",
    "security",
]
ADJECTIVES = [
    "Fast",
    "Compact",
    "Accurate",
    "Efficient",
    "Robust",
    "Lightweight",
    "State-of-the-art",
    "Low-latency",
    "Cost-efficient",
    "High-throughput",
    "Instruction-tuned",
    "Open-weight",
]
EXTRAS = [
    "Supports {n} languages.",
    "Optimised for on-premise deployment.",
    "Trained on curated {d} corpora.",
    "Handles long documents up to {ctx} tokens.",
    "Distilled from a larger teacher model.",
    "Quantised weights available for edge devices.",
    "Strong at structured JSON output.",
    "Evaluated on internal benchmarks with human review.",
    "Good default for batch workloads.",
]
TAGS = [
    "fast",
    "cheap",
    "flagship",
    "open-weight",
    "long-context",
    "multilingual",
    "beta",
    "edge",
    "private",
    "gpu",
    "cpu",
    "quantized",
    "distilled",
    "enterprise",
    "research",
    "realtime",
    "batch",
]
COMPLIANCE = ["SOC2", "GDPR", "HIPAA", "ISO27001", "PCI-DSS"]
LICENSES = ["proprietary", "apache-2.0", "mit", "llama-community", "cc-by-nc-4.0"]
STATUSES = (["active"] * 16) + (["experimental"] * 2) + ["deprecated", "maintenance"]
SECURITY_LEVELS = ["public", "internal", "internal", "restricted", "confidential"]

# Search terms the load uses; all of them occur in the seeded data (checked after seeding).
SEARCH_TERMS = [
    # single words from descriptions, tags, categories, capabilities, names
    "legal",
    "medical",
    "finance",
    "translation",
    "summarization",
    "multilingual",
    "retrieval",
    "support",
    "security",
    "scientific",
    "insurance",
    "reasoning",
    "vision",
    "embeddings",
    "coding",
    "fast",
    "compact",
    "streaming",
    "ocr",
    "rerank",
    "instruct",
    "turbo",
    "quantised",
    "json",
    # model families and partial names (name icontains + tsvector)
    "aurora",
    "nimbus",
    "falcon",
    "orion",
    "helix",
    "quartz",
    "zephyr",
    "polaris",
    "sequoia",
    "pulsar",
    "aurora-7b",
    "nimbus-mini",
    "falcon-70b",
    "vega-large",
    "titan-13b",
    # phrases (websearch: all words must match)
    "legal contract",
    "customer support",
    "fast summarization",
    "code review",
    "low latency",
    "medical record",
    "financial report",
    "long documents",
    "multilingual translation",
    "edge devices",
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
                name=name,
                version=version,
                provider=provider,
                model_type=model_type,
                capabilities=caps,
                supported_tasks=tasks,
                input_formats=["text"] + (["image"] if model_type in ("vision", "multimodal") else []),
                output_formats=["vector"]
                if model_type == "embedding"
                else ["text"] + (["json"] if "json_mode" in caps else []),
                max_tokens=max_tokens,
                context_window=context_window,
                max_batch_size=rng.choice([1, 1, 1, 8, 32, 256, 2048]) if model_type != "embedding" else 2048,
                supported_parameters=params,
                baseline_avg_latency_ms=round(latency, 1),
                baseline_cost_per_1k_tokens=cost,
                baseline_success_rate=round(rng.uniform(0.95, 0.9999), 4),
                baseline_avg_tokens_per_request=rng.randint(50, 4_000),
                description=description,
                tags=tags,
                category=category,
                license=rng.choice(LICENSES),
                documentation=f"https://docs.example.com/models/{name}",
                status=rng.choice(STATUSES),
                security_level=rng.choice(SECURITY_LEVELS),
                compliance=sorted(rng.sample(COMPLIANCE, k=rng.randint(0, 3))),
                popularity=int(10 ** rng.uniform(0, 6)),
                avg_rating=round(rng.uniform(2.5, 5.0), 2),
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
            defaults=dict(
                requests_per_minute=MAX_LIMIT,
                requests_per_hour=MAX_LIMIT,
                requests_per_day=MAX_LIMIT,
                burst_limit=MAX_LIMIT,
            ),
        )
        limits_note = f" with a rate-limit override of {MAX_LIMIT:,} per window"
    print(
        f"seeded {ModelRegistry.objects.count()} models and user {BENCH_USERNAME!r}{limits_note} "
        f"in {time.perf_counter() - started:.1f}s",
        flush=True,
    )


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


def sample_catalog_page(stats: Stats, headers: dict, body: bytes) -> None:
    """Page statistics from a sample of the catalog responses (``run_load`` ``sample``)."""
    try:
        payload = json.loads(body)
        page = len(payload["models"])
        stats.samples["pages"] += 1
        stats.samples["models"] += page
        stats.samples["empty"] += page == 0
        stats.samples["total"] += payload["pagination"]["total"]
    except (ValueError, KeyError, TypeError):
        pass


# --- Database, Redis, checks ----------------------------------------------------------------------


def clear_redis_facets() -> None:
    """Drop cached catalog facets in the bench Redis DB: they describe a previous seed."""
    redis_delete_matching(REDIS_URL, "modelhub:*catalog:facets*")


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


def preflight(base_url: str, headers: dict) -> None:
    """One catalog and one auth/me request must succeed before the load starts."""
    import httpx

    with httpx.Client(base_url=base_url, headers=headers, timeout=10, trust_env=False) as client:
        for url in (catalog_url_factory(0)(), f"{API}/auth/me"):
            response = client.get(url)
            if response.status_code != 200:
                raise RuntimeError(f"preflight GET {url} answered {response.status_code}: {response.text[:500]}")


# --- Main ------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=30, help="measured seconds per endpoint (default 30)")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent clients (default 32)")
    parser.add_argument("--warmup", type=float, default=3, help="unmeasured seconds before each phase (default 3)")
    parser.add_argument("--models", type=int, default=5000, help="models to seed (default 5000)")
    parser.add_argument("--seed", type=int, default=20240601, help="random seed for data and requests")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers (default 2)")
    parser.add_argument(
        "--client",
        choices=["raw", "httpx"],
        default="raw",
        help="load client: a minimal httptools keep-alive client that uses little of the machine's "
        "CPU (default), or httpx.AsyncClient",
    )
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

    env = bench_env(DB_NAME, REDIS_URL)
    started = time.perf_counter()
    step(f"resetting database {DB_NAME}")
    reset_database(DB_NAME)
    clear_redis_facets()
    step("migrating")
    migrate(env)
    step(f"seeding {args.models} models (seed {args.seed})")
    out = run_checked(
        [
            str(PYTHON),
            str(Path(__file__).resolve()),
            "--seed-worker",
            "--models",
            str(args.models),
            "--seed",
            str(args.seed),
        ],
        env,
        600,
        "seeding",
    )
    step(out.strip().splitlines()[-1] if out.strip() else "seeded")
    hits = analyze_and_check(SEARCH_TERMS)
    zero = [t for t, n in hits.items() if n == 0]
    counts = sorted(hits.values())
    step(
        f"search terms: {len(hits)}, rows matched per term min {counts[0]} / median {counts[len(counts) // 2]} / "
        f"max {counts[-1]} (before provider/modelType filters)"
    )
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
        headers = {"Authorization": f"Bearer {get_token(base_url, BENCH_USERNAME, env['BENCH_PASSWORD'])}"}
        preflight(base_url, headers)
        check_idle()

        step(f"catalog: {args.concurrency} {args.client} clients, {args.warmup:g}s warm-up + {args.duration:g}s")
        catalog = measured(
            proc,
            lambda: asyncio.run(
                run_load(
                    base_url,
                    headers,
                    lambda i: catalog_url_factory(args.seed * 1000 + i),
                    concurrency=args.concurrency,
                    duration=args.duration,
                    warmup=args.warmup,
                    sample_every=10,
                    sample=sample_catalog_page,
                    client_kind=args.client,
                )
            ),
        )
        step(
            f"reference auth/me: {args.concurrency} {args.client} clients, {args.warmup:g}s warm-up + {args.duration:g}s"
        )
        reference = measured(
            proc,
            lambda: asyncio.run(
                run_load(
                    base_url,
                    headers,
                    lambda i: (lambda: f"{API}/auth/me"),
                    concurrency=args.concurrency,
                    duration=args.duration,
                    warmup=args.warmup,
                    client_kind=args.client,
                )
            ),
        )
        if proc.poll() is not None:
            step(f"WARNING: server exited during the run ({proc.returncode}):\n{tail(log_path)}")
    finally:
        stop_server(proc)
        step("server stopped")

    print()
    describe("catalog", catalog)
    pages = catalog.samples["pages"]
    if pages:
        print(
            f"         sampled {pages} pages: avg {catalog.samples['models'] / pages:.1f} "
            f"models/page, {100 * catalog.samples['empty'] / pages:.0f}% empty, "
            f"avg total {catalog.samples['total'] / pages:.0f} matches",
            flush=True,
        )
    describe("auth/me", reference)
    ratio = catalog.rps / reference.rps if reference.rps else 0.0
    goal = catalog.rps >= 400 and catalog.percentile(95) < 50 and ratio >= 0.35
    print(f"ratio    {ratio:.3f} (catalog rps / auth/me rps)")
    print(
        f"goal (>= 400 req/s, p95 < 50 ms, ratio >= 0.35): {'met' if goal else 'NOT met'}"
        f"{'' if not (catalog.error_count or reference.error_count) else '; there were errors'}"
    )

    print(
        json.dumps(
            {
                "rps": num(catalog.rps, 1),
                "p50_ms": num(catalog.percentile(50), 2),
                "p95_ms": num(catalog.percentile(95), 2),
                "p99_ms": num(catalog.percentile(99), 2),
                "ref_rps": num(reference.rps, 1),
                "ratio": num(ratio, 3),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
