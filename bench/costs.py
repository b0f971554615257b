#!/usr/bin/env python
"""Cost-analysis benchmark: 30 days of usage events for 20 models (5 million rows) on PostgreSQL.

    .venv/bin/python bench/costs.py [--events 5000000] [--requests 100] [--cold 5] [--query-only]

Steps (bounded in time; the server is always stopped):

1. drop and re-create ``modelhub_bench_costs``, migrate; seed 20 models (five price levels) and an analyst;
2. generate the events inside PostgreSQL over the last 30 days: use cases, 10 % without an end user
   (batch-able), 20 % drawn from 5,000 repeated prompt hashes (cacheable), ~2 % failures; costs priced as
   ingestion prices them; then roll everything up;
3. compute the analysis's daily figures of every day (``costs.refresh_cost_days``, timed: the job's one-off
   backfill; afterwards it recomputes today and yesterday every 5 minutes);
4. start uvicorn; ``GET /cost/analysis?from=-30d&to=now``: ``--cold`` calls with a different ``to`` each
   (nothing cached: the 1d buckets + the daily figures), then ``--requests`` calls of one query (the answer
   cached ``COSTS_ANALYSIS_CACHE_SECONDS``);
5. check: ``totalCost`` equals ``SUM(cost)`` of the raw rows in the window.

The last line is one JSON object: {"cold_p50_ms", "cold_p95_ms", "warm_p50_ms", "warm_p95_ms", "total_matches",
"refresh_all_days_s"}.
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

DB_NAME, REDIS_URL = bench_target("modelhub_bench_costs", "redis://127.0.0.1:6379/11")
USERNAME = "bench-cost-analyst"
MODELS = 20
DAYS = 30


def seed_worker() -> None:
    django_setup()
    plain_models(
        "cost-model",
        MODELS,
        lambda i: 150 + 60 * i,
        baseline_cost_per_1k_tokens=Decimal("0.002"),
        baseline_success_rate=0.98,
        baseline_avg_tokens_per_request=800,
    )
    from catalog.models import ModelRegistry

    for i, model in enumerate(ModelRegistry.objects.order_by("name")):
        model.baseline_cost_per_1k_tokens = Decimal("0.0005") * (1 + i % 5)
        model.save(update_fields=["baseline_cost_per_1k_tokens"])
    bench_user(USERNAME, "analyst")


def refresh_worker() -> None:
    """The analysis's daily figures for every retained day (what costs.refresh_cost_days backfills once)."""
    django_setup()
    from costs.services import refresh_cost_days

    print(json.dumps(refresh_cost_days()), flush=True)


def token_worker() -> None:
    """An access token for the bench analyst (``--query-only``: the password of that run is gone)."""
    django_setup()
    from rest_framework_simplejwt.tokens import RefreshToken

    from modelhub.accounts.models import User

    print(RefreshToken.for_user(User.objects.get(username=USERNAME)).access_token, flush=True)


def rollup_worker() -> None:
    django_setup()
    from analytics.rollup import rollup

    print(json.dumps(rollup().as_dict()), flush=True)


GENERATE_SQL = """
INSERT INTO analytics_usageevent (request_id, timestamp, model_id, deployment_id, environment, user_id, latency_ms,
    prompt_tokens, completion_tokens, cost, success, error_code, error_message, confidence_score, user_rating, accepted,
    use_case, experiment_id, variant, prompt_hash, client_request_id, attempt, cached, reservation_id, received_at)
SELECT 'gen-' || g, ts, m.id, NULL, 'production', CASE WHEN g %% 10 = 0 THEN '' ELSE 'u' || (g %% 5000) END,
       100 + random() * 900, p, c, ((p + c) * m.baseline_cost_per_1k_tokens / 1000)::numeric(18, 8),
       e.code IS NULL, coalesce(e.code, ''), coalesce(e.msg, ''), NULL,
       CASE WHEN random() < 0.3 THEN 1 + floor(random() * 5)::int END,
       CASE WHEN random() < 0.5 THEN random() < 0.85 END,
       (ARRAY['chat', 'summarization', 'extraction', 'coding'])[1 + g %% 4], '', '',
       CASE WHEN g %% 5 = 0 THEN 'h' || (g %% 5000) ELSE 'p' || g END, '', 1, false, '', now()
FROM (
    SELECT g, %(start)s::timestamptz + (g::float8 / %(total)s) * interval '30 days' AS ts,
           (200 + random() * 1200)::int AS p, (50 + random() * 400)::int AS c
    FROM generate_series(%(offset)s, %(offset)s + %(n)s - 1) AS g
) s
JOIN LATERAL (SELECT id, baseline_cost_per_1k_tokens FROM catalog_modelregistry ORDER BY name OFFSET (g %% 20) LIMIT 1) m
    ON true
LEFT JOIN LATERAL (
    SELECT 'UPSTREAM_5XX' AS code, 'simulated failure' AS msg WHERE random() < 0.02
) e ON true
"""


def generate(events: int, start: datetime) -> float:
    import psycopg

    started = time.perf_counter()
    with psycopg.connect(pg_dsn(DB_NAME), autocommit=True) as conn:
        chunk = 1_000_000
        for offset in range(0, events, chunk):
            n = min(chunk, events - offset)
            conn.execute(GENERATE_SQL, {"start": start, "total": events, "offset": offset, "n": n})
            step(f"  {offset + n:,} events")
        conn.execute(
            "INSERT INTO analytics_dirtyhour (model_id, hour, marked_at) SELECT DISTINCT model_id, "
            "date_trunc('hour', timestamp), now() FROM analytics_usageevent ON CONFLICT DO NOTHING"
        )
        conn.execute("VACUUM ANALYZE analytics_usageevent")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--cold", type=int, default=50)
    parser.add_argument("--query-only", action="store_true", help="reuse the database of a previous run")
    parser.add_argument("--seed-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rollup-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--refresh-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--token-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--skip-refresh", action="store_true", help="--query-only: the daily figures are there")
    args = parser.parse_args()
    if args.token_worker:
        return token_worker()
    if args.refresh_worker:
        return refresh_worker()
    if args.seed_worker:
        return seed_worker()
    if args.rollup_worker:
        return rollup_worker()

    import psycopg

    env = bench_env(DB_NAME, REDIS_URL)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = now - timedelta(days=DAYS)
    if not args.query_only:
        step(f"resetting database {DB_NAME} and migrating")
        reset_database(DB_NAME)
        migrate(env)
        run_worker(__file__, "--seed-worker", env, 120, "seed")
        step(f"generating {args.events:,} events over {DAYS} days for {MODELS} models inside PostgreSQL")
        step(f"generated in {generate(args.events, start):.1f}s")
        started = time.perf_counter()
        report = json.loads(run_worker(__file__, "--rollup-worker", env, 3600, "rollup"))
        step(f"rolled up in {time.perf_counter() - started:.1f}s: {report}")
        with psycopg.connect(pg_dsn(DB_NAME), autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE analytics_metricbucket")
    else:
        migrate(env)
    refresh_s = None
    if not args.skip_refresh:
        started = time.perf_counter()
        report = json.loads(run_worker(__file__, "--refresh-worker", env, 3600, "refresh"))
        refresh_s = time.perf_counter() - started
        step(f"daily cost figures of every retained day computed in {refresh_s:.1f}s: {report}")
    with psycopg.connect(pg_dsn(DB_NAME)) as conn:
        first, last = conn.execute("SELECT min(timestamp), max(timestamp) FROM analytics_usageevent").fetchone()
    window_start = first.replace(hour=0, minute=0, second=0, microsecond=0)
    window_end = last.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    with psycopg.connect(pg_dsn(DB_NAME)) as conn:
        raw_total = conn.execute(
            "SELECT sum(cost) FROM analytics_usageevent WHERE timestamp >= %s AND timestamp < %s",
            (window_start, window_end),
        ).fetchone()[0]

    cold_ms: list[float] = []
    warm_ms: list[float] = []
    total = None
    server = Server(env, 1, log_name="bench-costs")
    with server:
        server.wait_for_health()
        token = run_worker(__file__, "--token-worker", env, 60, "token") if args.query_only else server.token(USERNAME)

        async def calls() -> None:
            nonlocal total
            client = RawConnection("127.0.0.1", server.port, {"Authorization": f"Bearer {token}"})
            salt = int(time.time()) % 250  # end days no earlier run of the last minute asked for: nothing cached
            try:
                for i in range(args.cold):  # a different (later, empty) end day each: no cached answer
                    query = urlencode(
                        {
                            "from": window_start.isoformat(),
                            "to": (window_end + timedelta(days=i + 1 + salt)).isoformat(),
                        }
                    )
                    t0 = time.perf_counter()
                    status, body = await client.get(f"{API}/cost/analysis?{query}")
                    cold_ms.append((time.perf_counter() - t0) * 1000)
                    if status != 200:
                        raise RuntimeError(f"analysis answered {status}: {body[:500]!r}")
                    if i < 3:
                        step(f"  cold call {i + 1}: {cold_ms[-1]:.0f} ms")
                query = urlencode({"from": window_start.isoformat(), "to": window_end.isoformat()})
                for i in range(args.requests + 1):
                    t0 = time.perf_counter()
                    status, body = await client.get(f"{API}/cost/analysis?{query}")
                    took = (time.perf_counter() - t0) * 1000
                    if status != 200:
                        raise RuntimeError(f"analysis answered {status}: {body[:500]!r}")
                    if i:
                        warm_ms.append(took)
                    total = json.loads(body)["currentUsage"]["totalCost"]
            finally:
                client.close()

        asyncio.run(calls())
    matches = total is not None and abs(total - float(raw_total)) < 1e-6
    step(
        f"cold: p50 {pct(cold_ms, 50):.0f} ms, max {max(cold_ms):.0f} ms; warm: p50 {pct(warm_ms, 50):.1f}, p95 {pct(warm_ms, 95):.1f} ms"
    )
    step(f"totalCost {total} vs SUM(cost) {raw_total}: {'equal' if matches else 'DIFFERENT'}")
    print(
        json.dumps(
            {
                "cold_p50_ms": num(pct(cold_ms, 50), 1),
                "cold_p95_ms": num(pct(cold_ms, 95), 1),
                "warm_p50_ms": num(pct(warm_ms, 50), 2),
                "warm_p95_ms": num(pct(warm_ms, 95), 2),
                "total_matches": matches,
                "refresh_all_days_s": None if refresh_s is None else num(refresh_s, 1),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
