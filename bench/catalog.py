#!/usr/bin/env python
"""Catalog list/search benchmark: PostgreSQL + Redis + uvicorn or granian (2 workers) under concurrent load.

    .venv/bin/python bench/catalog.py [--duration 30] [--concurrency 32] [--client raw|httpx]

Steps (every step bounded in time; the server is always stopped):

1. drop and re-create the database ``modelhub_bench`` (psycopg, autocommit),
   run ``manage.py migrate`` against it;
2. seed N models (default 5,000; deterministic from ``--seed``) with ``bulk_create``
   in a ``django.setup()`` subprocess (this same file, ``--seed-worker``), plus one
   ``viewer`` user; the PostgreSQL trigger fills ``search_vector``; then ANALYZE;
3. start ``uvicorn modelhub.asgi:application --workers 2`` (or granian, ``--servers``) on a free 127.0.0.1 port,
   wait for ``/health``, obtain a JWT for the viewer;
4. closed-loop load from ``--concurrency`` clients (the small httptools ``raw`` client by
   default, or httpx) for ``--duration`` seconds (after ``--warmup`` seconds that are not
   counted) against ``GET /models?search=..&provider=..&modelType=..&limit=25``, then the
   same load against the trivial authenticated ``GET /auth/me`` as a reference;
5. print requests/s, p50/p95/p99, errors and the ratio; with ``--servers uvicorn,granian`` steps 3-5 again
   for each server on the same data (the whole-answer cache emptied between them), and their ratios;
   the last line is one JSON object.

Only 200 responses count towards requests/s and latency; everything else is an
error and is reported. Traffic goes to 127.0.0.1 only. The synthetic data is in
``bench/catalog_data.py``; the shared machinery (server, load client, CPU accounting) in ``bench/harness/``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/harness, also when imported from elsewhere
from catalog_data import MODEL_TYPES, PROVIDERS, SEARCH_TERMS, generate_models
from harness.cpu import check_idle
from harness.db import pg_dsn, redis_delete_matching, reset_database
from harness.env import bench_env, bench_target, migrate, run_worker
from harness.load import measured_load
from harness.paths import API
from harness.report import describe, step
from harness.seed import bench_user, django_setup
from harness.server import SERVERS, Server
from harness.stats import Stats, num

DB_NAME, REDIS_URL = bench_target("modelhub_bench", "redis://127.0.0.1:6379/1")
PG_BENCH_DSN = pg_dsn(DB_NAME)
BENCH_USERNAME = "bench-viewer"


def seed_worker(args: argparse.Namespace) -> None:
    """Runs in a subprocess with the bench environment: ORM bulk_create + the viewer user."""
    django_setup()
    from catalog.models import ModelRegistry

    started = time.perf_counter()
    rows = generate_models(args.models, args.seed)
    ModelRegistry.objects.bulk_create([ModelRegistry(**row) for row in rows], batch_size=1000)
    _, limit = bench_user(BENCH_USERNAME, "viewer")
    print(
        f"seeded {ModelRegistry.objects.count()} models and user {BENCH_USERNAME!r} with a rate-limit override "
        f"of {limit:,} per window in {time.perf_counter() - started:.1f}s",
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


def popular_url_factory(seed: int, distinct: int, skew: float):
    """Returns ``next_url()`` drawing from ``distinct`` queries with Zipf weights ``1 / rank**skew`` (a few
    queries asked often, a long tail rarely: what a catalog's search box sees), the same queries for every
    client (drawn from ``seed``), each client its own sequence."""
    draw = catalog_url_factory(seed)
    queries = list(dict.fromkeys(draw() for _ in range(distinct * 2)))[:distinct]
    weights = [1 / (rank**skew) for rank in range(1, distinct + 1)]

    def factory(client: int):
        rng = random.Random(seed * 7919 + client)
        return lambda: rng.choices(queries, weights)[0]

    return factory


def sample_catalog_page(stats: Stats, headers: dict, body: bytes) -> None:
    """Page statistics from a sample of the catalog responses (``run_load`` ``sample``)."""
    try:
        payload = json.loads(body)
        page = len(payload["models"])
        stats.samples["pages"] += 1
        stats.samples["models"] += page
        stats.samples["empty"] += page == 0
        stats.samples["total"] += payload["pagination"]["total"]
        stats.samples["cache_hits"] += headers.get("x-catalog-cache") == "hit"
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
    parser.add_argument("--workers", type=int, default=2, help="server processes (default 2)")
    parser.add_argument(
        "--servers",
        default="uvicorn",
        help="comma-separated ASGI servers to measure one after the other on the same data: uvicorn, granian "
        "(default uvicorn; the first is the JSON line's figures, all of them under 'servers')",
    )
    parser.add_argument(
        "--client",
        choices=["raw", "httpx"],
        default="raw",
        help="load client: a minimal httptools keep-alive client that uses little of the machine's "
        "CPU (default), or httpx.AsyncClient",
    )
    parser.add_argument(
        "--list-cache-seconds",
        type=int,
        default=None,
        help="the server's CATALOG_LIST_CACHE_SECONDS (default: the setting's default; 0 turns the "
        "whole-answer cache off, for the before/after comparison)",
    )
    parser.add_argument(
        "--popular",
        type=int,
        default=0,
        metavar="N",
        help="also a phase drawing from N distinct queries with Zipf weights (--skew); default 0: only the "
        "uniform random queries (a new combination almost every request: the cache's worst case)",
    )
    parser.add_argument("--skew", type=float, default=1.0, help="Zipf exponent of --popular (default 1.0)")
    parser.add_argument("--seed-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.servers = [kind.strip() for kind in args.servers.split(",") if kind.strip()]
    if not args.servers or not set(args.servers) <= set(SERVERS) or len(set(args.servers)) < len(args.servers):
        parser.error(f"--servers: distinct values of {', '.join(SERVERS)}")
    if not (0 < args.duration <= 3600 and 0 < args.concurrency <= 1024 and 0 <= args.warmup <= 600):
        parser.error("duration must be in (0, 3600], concurrency in (0, 1024], warmup in [0, 600]")
    return args


def main() -> int:
    args = parse_args()
    if args.seed_worker:
        seed_worker(args)
        return 0

    env = bench_env(DB_NAME, REDIS_URL)
    if args.list_cache_seconds is not None:
        env["CATALOG_LIST_CACHE_SECONDS"] = str(args.list_cache_seconds)
    started = time.perf_counter()
    step(f"resetting database {DB_NAME}")
    reset_database(DB_NAME)
    clear_redis_facets()
    step("migrating")
    migrate(env)
    step(f"seeding {args.models} models (seed {args.seed})")
    seeded = run_worker(
        __file__, "--seed-worker", env, 600, "seeding", "--models", str(args.models), "--seed", str(args.seed)
    )
    step(seeded or "seeded")
    hits = analyze_and_check(SEARCH_TERMS)
    zero = [t for t, n in hits.items() if n == 0]
    counts = sorted(hits.values())
    step(
        f"search terms: {len(hits)}, rows matched per term min {counts[0]} / median {counts[len(counts) // 2]} / "
        f"max {counts[-1]} (before provider/modelType filters)"
    )
    if zero:
        step(f"WARNING: terms matching nothing: {zero}")

    results = {}
    for kind in args.servers:
        if len(args.servers) > 1:
            clear_redis_facets()  # each server starts with the same empty whole-answer cache
        results[kind] = run_server(env, args, kind, started)
    if len(results) > 1:
        first, *others = results
        for other in others:
            a, b = results[first]["summary"], results[other]["summary"]
            print(
                f"{other} / {first}: catalog {b['rps'] / a['rps']:.3f}, auth/me {b['ref_rps'] / a['ref_rps']:.3f}"
                + (f", popular {b['popular_rps'] / a['popular_rps']:.3f}" if "popular_rps" in a else "")
            )
    main_result = results[args.servers[0]]["summary"]
    print(
        json.dumps(
            {**main_result, "server": args.servers[0]}
            if len(results) == 1
            else {**main_result, "server": args.servers[0], "servers": {k: v["summary"] for k, v in results.items()}}
        )
    )
    return 0


def run_server(env: dict, args: argparse.Namespace, kind: str, started: float) -> dict:
    """The catalog (+ popular) and auth/me phases against one server; prints them; returns the figures."""
    server = Server(env, args.workers, stopped=f"{kind} stopped", kind=kind)
    step(f"starting {kind} ({args.workers} workers) on {server.base_url}; log {server.log_path}")
    with server:
        health = server.wait_for_health()
        step(f"health answered {health} after {time.perf_counter() - started:.1f}s total setup")
        headers = server.bearer(BENCH_USERNAME)
        preflight(server.base_url, headers)
        check_idle()

        step(f"catalog: {args.concurrency} {args.client} clients, {args.warmup:g}s warm-up + {args.duration:g}s")
        load = dict(concurrency=args.concurrency, duration=args.duration, warmup=args.warmup, client_kind=args.client)
        catalog = measured_load(
            server,
            headers,
            lambda i: catalog_url_factory(args.seed * 1000 + i),
            sample_every=10,
            sample=sample_catalog_page,
            sample_headers=True,
            **load,
        )
        popular = None
        if args.popular:
            step(f"catalog, {args.popular} popular queries (Zipf {args.skew:g}): {args.concurrency} clients")
            popular = measured_load(
                server,
                headers,
                popular_url_factory(args.seed, args.popular, args.skew),
                sample_every=10,
                sample=sample_catalog_page,
                sample_headers=True,
                **load,
            )
        step(
            f"reference auth/me: {args.concurrency} {args.client} clients, {args.warmup:g}s warm-up + {args.duration:g}s"
        )
        reference = measured_load(server, headers, lambda i: (lambda: f"{API}/auth/me"), **load)
        server.warn_if_exited()

    print(f"\n--- {kind}, {args.workers} processes")
    describe("catalog", catalog)
    pages = catalog.samples["pages"]
    if pages:
        print(
            f"         sampled {pages} pages: avg {catalog.samples['models'] / pages:.1f} "
            f"models/page, {100 * catalog.samples['empty'] / pages:.0f}% empty, "
            f"avg total {catalog.samples['total'] / pages:.0f} matches, "
            f"whole-answer cache hits {100 * catalog.samples['cache_hits'] / pages:.1f}%",
            flush=True,
        )
    if popular is not None:
        describe("popular", popular)
        sampled = popular.samples["pages"]
        if sampled:
            print(
                f"         {args.popular} distinct queries, Zipf {args.skew:g}: whole-answer cache hits "
                f"{100 * popular.samples['cache_hits'] / sampled:.1f}% of {sampled} sampled",
                flush=True,
            )
    describe("auth/me", reference)
    ratio = catalog.rps / reference.rps if reference.rps else 0.0
    goal = catalog.rps >= 400 and catalog.percentile(95) < 100 and ratio >= 0.6
    print(f"ratio    {ratio:.3f} (catalog rps / auth/me rps)")
    print(
        f"goal (>= 400 req/s, p95 < 100 ms, ratio >= 0.6): {'met' if goal else 'NOT met'}"
        f"{'' if not (catalog.error_count or reference.error_count) else '; there were errors'}",
        flush=True,
    )
    summary = {
        "rps": num(catalog.rps, 1),
        "p50_ms": num(catalog.percentile(50), 2),
        "p95_ms": num(catalog.percentile(95), 2),
        "p99_ms": num(catalog.percentile(99), 2),
        "ref_rps": num(reference.rps, 1),
        "ratio": num(ratio, 3),
        "cache_hit_rate": num(catalog.samples["cache_hits"] / pages, 3) if pages else None,
    }
    if popular is not None:
        summary.update(
            popular_rps=num(popular.rps, 1),
            popular_p95_ms=num(popular.percentile(95), 2),
            popular_ratio=num(popular.rps / reference.rps, 3) if reference.rps else None,
            popular_cache_hit_rate=num(popular.samples["cache_hits"] / max(1, popular.samples["pages"]), 3),
        )
    return {"summary": summary}


if __name__ == "__main__":
    sys.exit(main())
