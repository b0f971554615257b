#!/usr/bin/env python
"""Analytics query benchmark: 7 days of usage events for 20 models (>= 5 million rows) on PostgreSQL.

    .venv/bin/python bench/analytics.py [--events 5000000] [--requests 200] [--raw-runs 10]

Steps (bounded in time; the server is always stopped):

1. drop and re-create ``modelhub_bench_analytics``, migrate; seed 20 models and an analyst;
2. generate the events inside PostgreSQL (``generate_series``; lognormal latencies around each
   model's baseline, ~1 % slow outliers, ~2 % errors over four codes, ratings, users) spread over
   the last 7 days, and mark their hours dirty as ingestion would;
3. roll up ONE day and time it (``rollup_day_s``), then roll up the other six days;
4. start uvicorn and call ``GET /analytics/models/{id}/performance?from=-7d&to=now&granularity=1h``
   ``--requests`` times (round robin over the models, each model read once before): API p50/p95 of
   repeat reads (the series kept per process until the model's next rollup); then the same on a
   server with the series cache off (``ANALYTICS_SERIES_CACHE_SECONDS=0``: every call loads its
   series, as a model's first read does): ``uncached_p50_ms`` / ``uncached_p95_ms``;
5. reference, same run: the exact ``percentile_cont(0.5, 0.95, 0.99)`` over the raw rows of the
   same model and window, ``--raw-runs`` times: p50/p95, and the speed-up (raw p95 / API p95);
6. percentile error: for every model, API p50/p95/p99 against the exact values (max relative error).

The last line is one JSON object: {"api_p50_ms", "api_p95_ms", "uncached_p50_ms", "uncached_p95_ms", "raw_p95_ms",
"speedup", "uncached_speedup", "max_rel_error", "rollup_day_s"}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/harness
from harness.db import pg_dsn, reset_database
from harness.env import bench_env, bench_target, migrate, run_worker
from harness.paths import API
from harness.rawhttp import RawConnection
from harness.report import step
from harness.seed import bench_user, django_setup, plain_models
from harness.server import Server
from harness.stats import num
from harness.stats import percentile as pct

DB_NAME, REDIS_URL = bench_target("modelhub_bench_analytics", "redis://127.0.0.1:6379/10")
USERNAME = "bench-analyst"
MODELS = 20


def seed_worker() -> None:
    django_setup()
    plain_models(
        "analytics-model",
        MODELS,
        lambda i: 150 + 60 * i,
        baseline_cost_per_1k_tokens=Decimal("0.002"),
        baseline_success_rate=0.98,
        baseline_avg_tokens_per_request=800,
    )
    bench_user(USERNAME, "analyst")


def token_worker() -> None:
    """Prints an access token for the bench analyst (``--query-only``: the password of that run is gone)."""
    django_setup()
    from rest_framework_simplejwt.tokens import RefreshToken

    from modelhub.accounts.models import User

    print(RefreshToken.for_user(User.objects.get(username=USERNAME)).access_token, flush=True)


def rollup_worker() -> None:
    """Roll up whatever is marked dirty; prints the report as JSON."""
    django_setup()
    from analytics.rollup import rollup

    print(json.dumps(rollup().as_dict()), flush=True)


GENERATE_SQL = """
INSERT INTO analytics_usageevent (request_id, timestamp, model_id, deployment_id, environment, user_id, latency_ms,
    prompt_tokens, completion_tokens, cost, success, error_code, error_message, confidence_score, user_rating, accepted,
    use_case, experiment_id, variant, prompt_hash, client_request_id, attempt, cached, reservation_id, received_at)
SELECT 'gen-' || g,
       %(start)s::timestamptz + (g::float8 / %(n)s) * interval '7 days',
       m.id, NULL, 'production', 'u' || (g %% 5000),
       CASE WHEN random() < 0.01 THEN m.baseline_avg_latency_ms * (4 + 10 * random())
            ELSE exp(ln(m.baseline_avg_latency_ms) + 0.5 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())) END,
       (200 + random() * 1200)::int, (50 + random() * 400)::int, (random() * 0.004)::numeric(18, 8),
       e.code IS NULL, coalesce(e.code, ''), coalesce(e.msg, ''),
       round((0.6 + 0.4 * random())::numeric, 3)::float8,
       CASE WHEN random() < 0.3 THEN 1 + floor(random() * 5)::int END,
       CASE WHEN random() < 0.5 THEN random() < 0.85 END,
       (ARRAY['chat', 'summarization', 'extraction', 'coding'])[1 + g %% 4], '', '', '', '', 1, false, '', now()
FROM generate_series(0, %(n)s - 1) AS g
JOIN LATERAL (SELECT id, baseline_avg_latency_ms FROM catalog_modelregistry ORDER BY name OFFSET (g %% 20) LIMIT 1) m ON true
LEFT JOIN LATERAL (
    SELECT (ARRAY['PROVIDER_TIMEOUT', 'RATE_LIMITED', 'UPSTREAM_5XX', 'CONTEXT_TOO_LONG'])[1 + (g / 7) %% 4] AS code,
           'simulated failure' AS msg
    WHERE random() < 0.02
) e ON true
"""


def generate(events: int, start: datetime) -> float:
    import psycopg

    started = time.perf_counter()
    with psycopg.connect(pg_dsn(DB_NAME), autocommit=True) as conn:
        chunk = 1_000_000
        for offset in range(0, events, chunk):
            n = min(chunk, events - offset)
            sql = GENERATE_SQL.replace("'gen-' || g", f"'gen-' || (g + {offset})").replace(
                "(g::float8 / %(n)s)", f"((g + {offset})::float8 / {events})"
            )
            conn.execute(sql, {"start": start, "n": n})
            step(f"  {offset + n:,} events")
        conn.execute("VACUUM ANALYZE analytics_usageevent")
    return time.perf_counter() - started


def mark_dirty(where: str, params: dict) -> int:
    import psycopg

    with psycopg.connect(pg_dsn(DB_NAME), autocommit=True) as conn:
        cur = conn.execute(
            "INSERT INTO analytics_dirtyhour (model_id, hour, marked_at) SELECT DISTINCT model_id, date_trunc('hour', timestamp), now() "
            f"FROM analytics_usageevent WHERE {where} ON CONFLICT DO NOTHING",
            params,
        )
        return cur.rowcount


def exact_percentiles(model_id: str, start: datetime, end: datetime) -> tuple[list[float], float]:
    import psycopg

    with psycopg.connect(pg_dsn(DB_NAME)) as conn:
        started = time.perf_counter()
        row = conn.execute(
            "SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_ms) FROM analytics_usageevent "
            "WHERE model_id = %s AND timestamp >= %s AND timestamp < %s",
            (model_id, start, end),
        ).fetchone()
        return list(row[0]), (time.perf_counter() - started) * 1000


def measure(
    env: dict, model_ids: list[str], query: str, args: argparse.Namespace, *, warm: int, cached: bool
) -> tuple[list[float], dict[str, list[float]], int]:
    """``--requests`` calls after ``warm`` unmeasured ones (round robin over the models) on a fresh server:
    (milliseconds per call, each model's p50/p95/p99, points per answer)."""
    server_env = env if cached else {**env, "ANALYTICS_SERIES_CACHE_SECONDS": "0"}
    server = Server(server_env, 1, log_name="bench-analytics")
    api_ms: list[float] = []
    api_percentiles: dict[str, list[float]] = {}
    points = 0
    with server:
        server.wait_for_health()
        if args.query_only:
            token = run_worker(__file__, "--token-worker", env, 60, "token")
        else:
            token = server.token(USERNAME)

        async def calls() -> None:
            nonlocal points
            # The small httptools keep-alive client from bench/harness/rawhttp.py: httpx's pure-Python parsing of
            # a 54 KB body would add milliseconds of client CPU to every measured call.
            client = RawConnection("127.0.0.1", server.port, {"Authorization": f"Bearer {token}"})
            try:
                for i in range(args.requests + warm):
                    model_id = model_ids[i % len(model_ids)]
                    t0 = time.perf_counter()
                    status, body = await client.get(f"{API}/analytics/models/{model_id}/performance?{query}")
                    took_ms = (time.perf_counter() - t0) * 1000
                    if status != 200:
                        raise RuntimeError(f"performance answered {status}: {body[:500]!r}")
                    if i >= warm:
                        api_ms.append(took_ms)
                    metrics = json.loads(body)["metrics"]
                    api_percentiles[model_id] = [
                        metrics["latency"]["p50"],
                        metrics["latency"]["p95"],
                        metrics["latency"]["p99"],
                    ]
                    points = len(metrics["timeSeries"])
            finally:
                client.close()

        asyncio.run(calls())
    return api_ms, api_percentiles, points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--raw-runs", type=int, default=10)
    parser.add_argument(
        "--query-only",
        action="store_true",
        help="reuse the database of a previous run: only the API and raw-query steps (rollup_day_s is null)",
    )
    parser.add_argument("--seed-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rollup-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--token-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed_worker:
        return seed_worker()
    if args.rollup_worker:
        return rollup_worker()
    if args.token_worker:
        return token_worker()

    import psycopg

    env = bench_env(DB_NAME, REDIS_URL)
    rollup_day_s = None
    if args.query_only:
        with psycopg.connect(pg_dsn(DB_NAME)) as conn:
            first, last = conn.execute("SELECT min(timestamp), max(timestamp) FROM analytics_usageevent").fetchone()
        now = last.replace(second=0, microsecond=0) + timedelta(minutes=1)
        start = now - timedelta(days=7)
        step(f"reusing {DB_NAME}: events from {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M}")
    else:
        step(f"resetting database {DB_NAME} and migrating")
        reset_database(DB_NAME)
        migrate(env)
        run_worker(__file__, "--seed-worker", env, 120, "seed")
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        start = now - timedelta(days=7)
        step(f"generating {args.events:,} events over 7 days for {MODELS} models inside PostgreSQL")
        took = generate(args.events, start)
        step(f"generated in {took:.1f}s")

        day_start = (start + timedelta(days=1)).replace(hour=0, minute=0)
        hours = mark_dirty(
            "timestamp >= %(a)s AND timestamp < %(b)s", {"a": day_start, "b": day_start + timedelta(days=1)}
        )
        with psycopg.connect(pg_dsn(DB_NAME)) as conn:
            day_events = conn.execute(
                "SELECT count(*) FROM analytics_usageevent WHERE timestamp >= %s AND timestamp < %s",
                (day_start, day_start + timedelta(days=1)),
            ).fetchone()[0]
        step(f"rolling up one day ({day_start:%Y-%m-%d}: {day_events:,} events, {hours} model-hours)")
        started = time.perf_counter()
        report = json.loads(run_worker(__file__, "--rollup-worker", env, 900, "rollup"))
        rollup_day_s = time.perf_counter() - started
        step(
            f"one day rolled up in {rollup_day_s:.1f}s (process included; rollup itself {report['seconds']}s: {report})"
        )
        mark_dirty("true", {})
        started = time.perf_counter()
        report = json.loads(run_worker(__file__, "--rollup-worker", env, 3600, "rollup"))
        step(f"whole week rolled up in {time.perf_counter() - started:.1f}s: {report}")
        with psycopg.connect(pg_dsn(DB_NAME), autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE analytics_metricbucket")  # what autovacuum does in production

    with psycopg.connect(pg_dsn(DB_NAME)) as conn:
        model_ids = [str(r[0]) for r in conn.execute("SELECT id FROM catalog_modelregistry ORDER BY name")]
    query = urlencode({"from": start.isoformat(), "to": now.isoformat(), "granularity": "1h"})
    # Twice, the same calls: as configured (a series is kept per process until its model's next rollup: every
    # model is read once while warming up, then each call is a repeat read, as a dashboard's refresh or a
    # second viewer's), and with the series cache off (every call loads its series: a model's first read).
    api_ms, api_percentiles, points = measure(env, model_ids, query, args, warm=len(model_ids), cached=True)
    step(f"API: {len(api_ms)} calls, p50 {pct(api_ms, 50):.1f} ms, p95 {pct(api_ms, 95):.1f} ms ({points} points each)")
    loaded_ms, loaded_percentiles, _ = measure(env, model_ids, query, args, warm=10, cached=False)
    step(f"API, series cache off: p50 {pct(loaded_ms, 50):.1f} ms, p95 {pct(loaded_ms, 95):.1f} ms")
    if loaded_percentiles != api_percentiles:
        raise RuntimeError("a kept series answered other percentiles than a loaded one")

    raw_ms: list[float] = []
    max_error = 0.0
    for i, model_id in enumerate(model_ids):
        exact, took_ms = exact_percentiles(model_id, start, now)
        if i < args.raw_runs:
            raw_ms.append(took_ms)
        for approx, real in zip(api_percentiles[model_id], exact, strict=True):
            max_error = max(max_error, abs(approx - real) / real)
    step(f"raw percentile_cont: {len(raw_ms)} runs, p50 {pct(raw_ms, 50):.1f} ms, p95 {pct(raw_ms, 95):.1f} ms")
    step(f"max relative error of p50/p95/p99 over {len(model_ids)} models: {max_error:.4%}")
    result = {
        "api_p50_ms": num(pct(api_ms, 50), 2),
        "api_p95_ms": num(pct(api_ms, 95), 2),
        "uncached_p50_ms": num(pct(loaded_ms, 50), 2),
        "uncached_p95_ms": num(pct(loaded_ms, 95), 2),
        "raw_p95_ms": num(pct(raw_ms, 95), 2),
        "speedup": num(pct(raw_ms, 95) / pct(api_ms, 95), 1),
        "uncached_speedup": num(pct(raw_ms, 95) / pct(loaded_ms, 95), 1),
        "max_rel_error": num(max_error, 5),
        "rollup_day_s": None if rollup_day_s is None else num(rollup_day_s, 2),
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
