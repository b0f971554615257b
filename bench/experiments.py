#!/usr/bin/env python
"""Experiment results benchmark: 2 variants, 1,000,000 usage events, 50,000 users, on PostgreSQL.

    .venv/bin/python bench/experiments.py [--events 1000000] [--users 50000] [--requests 200] [--raw-runs 10]

Steps (the server is always stopped):

1. drop and re-create ``modelhub_bench_experiments``, migrate; seed a model, a developer and a running
   experiment (control/cool, 50/50, primary ``user_rating``, secondary ``response_time``, ``cost_per_request``);
2. generate the events inside PostgreSQL (``generate_series``) over the last 24 hours, tagged with the
   experiment and the user's variant (users alternate), ratings on 30 %, lognormal latencies, 2 % failures;
3. build the aggregates once (``experiments.services.experiment_reaggregate``: every hour recomputed from raw
   rows, then the per-variant summaries) and time it;
4. start uvicorn and call ``GET /experiments/{id}/results`` ``--requests`` times: p50/p95;
5. reference, same run: the same statistic from raw rows (per-user sums of the 1M events in SQL, then
   the same ``experiments.results.compute``), ``--raw-runs`` times: p95, and the speed-up (raw p95 / API p95);
   the two answers' primary-metric confidence must agree.

The last line is one JSON object: {"events", "results_p95_ms", "raw_p95_ms", "speedup"}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/harness
from harness.db import pg_dsn, reset_database
from harness.env import bench_env, bench_target, migrate, run_worker
from harness.paths import API
from harness.rawhttp import RawConnection
from harness.report import step
from harness.seed import bench_user, django_setup
from harness.stats import num
from harness.stats import percentile as pct

DB_NAME, REDIS_URL = bench_target("modelhub_bench_experiments", "redis://127.0.0.1:6379/3")
USERNAME = "bench-experimenter"


def seed_worker() -> None:
    """A model, the bench user, and a running experiment started two days ago; prints its id."""
    django_setup()
    from datetime import timedelta
    from decimal import Decimal

    from django.utils import timezone

    from catalog.models import ModelRegistry
    from experiments import services
    from experiments.models import Experiment

    model = ModelRegistry.objects.create(
        name="bench-experiment-model",
        version="1",
        provider="custom",
        model_type="text",
        max_tokens=4096,
        context_window=32768,
        baseline_avg_latency_ms=300,
        baseline_cost_per_1k_tokens=Decimal("0.002"),
        baseline_success_rate=0.98,
        baseline_avg_tokens_per_request=800,
    )
    user, _ = bench_user(USERNAME, "manager")  # no deploymentId: every deployment, an all-grant role
    now = timezone.now()
    data = {
        "name": "bench",
        "description": "",
        "modelId": model.pk,
        "variants": [
            {"name": "control", "version": "1", "weight": 50, "configuration": {}},
            {"name": "cool", "version": "1", "weight": 50, "configuration": {"temperature": 0.2}},
        ],
        "traffic": {"type": "percentage", "totalPercentage": 100},
        "duration": {"startDate": now - timedelta(days=2), "endDate": now + timedelta(days=12)},
        "metrics": {
            "primary": "user_rating",
            "secondary": ["response_time", "cost_per_request"],
            "statisticalSignificance": 0.95,
        },
        "audience": {"percentage": 100},
    }
    experiment = services.experiment_create(actor=user, data=data)
    services.experiment_start(experiment=experiment, actor=user)
    Experiment.objects.filter(pk=experiment.pk).update(started_at=now - timedelta(days=2))
    print(json.dumps({"experiment": str(experiment.pk), "model": str(model.pk)}), flush=True)


def aggregate_worker(experiment_id: str) -> None:
    django_setup()
    from experiments import services
    from experiments.models import Experiment

    started = time.perf_counter()
    hours = services.experiment_reaggregate(experiment=Experiment.objects.get(pk=experiment_id))
    print(json.dumps({"hours": hours, "seconds": time.perf_counter() - started}), flush=True)


RAW_SQL = """
SELECT variant, COUNT(*), {outer}, {cross} FROM (
    SELECT variant, user_id,
           COUNT(*) AS requests, SUM(CASE WHEN success THEN 1 ELSE 0 END) AS successes,
           SUM(latency_ms) AS latency_sum, SUM(cost)::float8 AS cost_sum,
           SUM(prompt_tokens + completion_tokens) AS tokens_sum, COUNT(user_rating) AS rated,
           COALESCE(SUM(user_rating), 0) AS rating_sum, COUNT(accepted) AS feedback,
           SUM(CASE WHEN accepted THEN 1 ELSE 0 END) AS accepted, COUNT(confidence_score) AS scored,
           COALESCE(SUM(confidence_score), 0) AS confidence_sum
    FROM analytics_usageevent WHERE model_id = %s AND experiment_id = %s GROUP BY variant, user_id
) u GROUP BY variant
"""


def raw_worker(experiment_id: str, model_id: str, runs: int) -> None:
    """The same statistic from the raw rows, ``runs`` times; prints the timings and the primary confidence."""
    django_setup()
    from django.db import connection

    from experiments import selectors
    from experiments.constants import RATIO_PAIRS, SUMS
    from experiments.models import Experiment
    from experiments.results import compute

    experiment = selectors.experiment_queryset().get(pk=experiment_id)
    pairs = RATIO_PAIRS
    sql = RAW_SQL.format(
        outer=", ".join(f"SUM({s}), SUM({s}::float8 * {s})" for s in SUMS),
        cross=", ".join(f"SUM({a}::float8 * {b})" for a, b in pairs),
    )
    timings, confidence = [], None
    for _ in range(runs):
        started = time.perf_counter()
        experiment = Experiment.objects.prefetch_related("variants").get(pk=experiment_id)
        with connection.cursor() as cursor:
            cursor.execute(sql, [model_id, experiment_id])
            rows = cursor.fetchall()
        summaries = {}
        for row in rows:
            values = [float(v or 0) for v in row[2:]]
            sums = {s: [values[2 * i], values[2 * i + 1]] for i, s in enumerate(SUMS)}
            sums.update({f"{a}*{b}": values[2 * len(SUMS) + j] for j, (a, b) in enumerate(pairs)})
            summaries[row[0]] = {"units": row[1], "sums": sums, "sketch": {}}
        body = compute(
            variants=[{"name": v.name, "weight": v.weight} for v in experiment.variants.all()],
            summaries=summaries,
            primary=experiment.metrics["primary"],
            secondary=experiment.metrics["secondary"],
            significance=experiment.metrics["statisticalSignificance"],
            settings=selectors.analysis_settings(experiment),
        )
        timings.append((time.perf_counter() - started) * 1000)
        confidence = body["variants"][1]["metrics"]["primary"]["confidence"]
    print(json.dumps({"timings": timings, "confidence": confidence}), flush=True)


GENERATE_SQL = """
INSERT INTO analytics_usageevent (request_id, timestamp, model_id, deployment_id, environment, user_id, latency_ms,
    prompt_tokens, completion_tokens, cost, success, error_code, error_message, confidence_score, user_rating, accepted,
    use_case, experiment_id, variant, prompt_hash, client_request_id, attempt, cached, reservation_id, received_at)
SELECT 'exp-' || g,
       now() - interval '24 hours' + (g::float8 / %(total)s) * interval '23 hours',
       %(model)s, NULL, 'production', 'u' || (g %% %(users)s),
       exp(ln(300) + 0.4 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())),
       (200 + random() * 800)::int, (50 + random() * 300)::int, (0.001 + random() * 0.002)::numeric(18, 8),
       random() >= 0.02, '', '', round((0.6 + 0.4 * random())::numeric, 3)::float8,
       CASE WHEN random() < 0.3 THEN LEAST(5, GREATEST(1, round(3.5 + (g %% %(users)s %% 2) * 0.05
            + sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()))))::int END,
       CASE WHEN random() < 0.5 THEN random() < 0.85 END,
       'chat', %(experiment)s, CASE WHEN (g %% %(users)s) %% 2 = 0 THEN 'control' ELSE 'cool' END,
       '', '', 1, false, '', now()
FROM generate_series(%(offset)s, %(offset)s + %(n)s - 1) AS g
"""


def generate(events: int, users: int, experiment_id: str, model_id: str) -> float:
    import psycopg

    started = time.perf_counter()
    with psycopg.connect(pg_dsn(DB_NAME), autocommit=True) as conn:
        chunk = 250_000
        for offset in range(0, events, chunk):
            n = min(chunk, events - offset)
            conn.execute(
                GENERATE_SQL,
                {
                    "total": events,
                    "users": users,
                    "model": model_id,
                    "experiment": experiment_id,
                    "offset": offset,
                    "n": n,
                },
            )
            step(f"  {offset + n:,} events")
        conn.execute("VACUUM ANALYZE analytics_usageevent")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--raw-runs", type=int, default=10)
    parser.add_argument("--seed-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--aggregate-worker", help=argparse.SUPPRESS)
    parser.add_argument("--raw-worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed_worker:
        return seed_worker()
    if args.aggregate_worker:
        return aggregate_worker(args.aggregate_worker)
    if args.raw_worker:
        return raw_worker(args.raw_worker[0], args.raw_worker[1], int(args.raw_worker[2]))

    from harness.server import Server

    env = bench_env(DB_NAME, REDIS_URL)
    step(f"resetting database {DB_NAME} and migrating")
    reset_database(DB_NAME)
    migrate(env)
    seeded = json.loads(run_worker(__file__, "--seed-worker", env, 120, "seed"))
    experiment_id, model_id = seeded["experiment"], seeded["model"]
    step(f"generating {args.events:,} events of {args.users:,} users inside PostgreSQL")
    step(f"generated in {generate(args.events, args.users, experiment_id, model_id):.1f}s")
    report = json.loads(run_worker(__file__, "--aggregate-worker", env, 3600, "aggregate", experiment_id))
    step(f"aggregates built from raw rows: {report['hours']} hours in {report['seconds']:.1f}s")

    server = Server(env, 1, log_name="bench-experiments")
    api_ms: list[float] = []
    api_confidence = None
    with server:
        server.wait_for_health()
        token = server.token(USERNAME)

        async def calls() -> None:
            nonlocal api_confidence
            client = RawConnection("127.0.0.1", server.port, {"Authorization": f"Bearer {token}"})
            try:
                for i in range(args.requests + 10):
                    t0 = time.perf_counter()
                    status, body = await client.get(f"{API}/experiments/{experiment_id}/results")
                    took_ms = (time.perf_counter() - t0) * 1000
                    if status != 200:
                        raise RuntimeError(f"results answered {status}: {body[:500]!r}")
                    if i >= 10:  # the first ten warm up
                        api_ms.append(took_ms)
                    api_confidence = json.loads(body)["variants"][1]["metrics"]["primary"]["confidence"]
            finally:
                client.close()

        asyncio.run(calls())
    step(f"API: {len(api_ms)} calls, p50 {pct(api_ms, 50):.1f} ms, p95 {pct(api_ms, 95):.1f} ms")
    raw = json.loads(
        run_worker(__file__, "--raw-worker", env, 3600, "raw", experiment_id, model_id, str(args.raw_runs))
    )
    raw_ms = raw["timings"]
    step(f"raw rows: {len(raw_ms)} runs, p50 {pct(raw_ms, 50):.1f} ms, p95 {pct(raw_ms, 95):.1f} ms")
    step(f"primary confidence: API {api_confidence} vs raw {raw['confidence']}")
    if api_confidence is None or abs(api_confidence - raw["confidence"]) > 1e-6:
        raise RuntimeError("the results endpoint and the raw computation disagree")
    result = {
        "events": args.events,
        "results_p95_ms": num(pct(api_ms, 95), 2),
        "raw_p95_ms": num(pct(raw_ms, 95), 2),
        "speedup": num(pct(raw_ms, 95) / pct(api_ms, 95), 1),
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
