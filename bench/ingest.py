#!/usr/bin/env python
"""Usage-event ingestion benchmark: POST /analytics/events against PostgreSQL + Redis + uvicorn.

    .venv/bin/python bench/ingest.py [--duration 60] [--concurrency 8] [--batch 500] [--workers 2]

Steps (bounded in time; the server is always stopped):

1. drop and re-create the database ``modelhub_bench_ingest``, migrate;
2. seed 20 models and a developer (rate limits on, with a per-user override so they never refuse);
3. start ``uvicorn modelhub.asgi:application --workers N``, get a JWT;
4. ``--concurrency`` clients (httpx, keep-alive) post ``--batch``-event batches in a closed loop for
   ``--duration`` seconds in all; every event has a unique ``requestId`` (bodies from pre-encoded
   templates, see ``BodyMaker``); a batch counts when the answer is 200 with ``accepted == batch``;
5. reference, same run: rows generated the same way written with one raw psycopg ``COPY`` into the same
   table. Load and reference alternate in ``--rounds`` rounds (the machine's speed drifts within minutes):
   ratio = all events the API stored per second of load / all rows COPY wrote per second of COPY;
6. ``lost`` = events the API acknowledged minus rows found in the table for them (must be 0).

The last line is one JSON object: {"events_per_s", "batch_p50_ms", "batch_p95_ms", "copy_events_per_s",
"ratio", "round_ratios", "median_round_ratio", "lost"}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/harness
from harness.db import pg_dsn, reset_database
from harness.env import bench_env, bench_target, migrate, run_worker
from harness.paths import API
from harness.report import describe, step
from harness.seed import bench_user, django_setup, plain_models
from harness.server import Server, add_server_argument
from harness.stats import Stats, num

DB_NAME, REDIS_URL = bench_target("modelhub_bench_ingest", "redis://127.0.0.1:6379/11")
USERNAME = "bench-ingest"
MODELS = 20


def seed_worker() -> None:
    django_setup()
    from catalog.models import ModelRegistry

    plain_models(
        "bench-model",
        MODELS,
        lambda i: 300 + 20 * i,
        baseline_cost_per_1k_tokens=Decimal("0.0015"),
        baseline_success_rate=0.99,
    )
    bench_user(USERNAME, "developer")
    print(json.dumps([str(m.pk) for m in ModelRegistry.objects.order_by("name")]))


class BatchMaker:
    """Varied, valid events with unique request ids, cheap to produce (string templates)."""

    def __init__(self, model_ids: list[str], prefix: str) -> None:
        self.model_ids = model_ids
        self.prefix = prefix
        self.count = 0
        self.base = datetime.now(UTC) - timedelta(minutes=50)

    def rows(self, n: int) -> list[dict]:
        out = []
        for _ in range(n):
            i = self.count
            self.count += 1
            out.append(
                {
                    "requestId": f"{self.prefix}-{i}",
                    "timestamp": (self.base + timedelta(milliseconds=i % 3_000_000)).isoformat(),
                    "modelId": self.model_ids[i % len(self.model_ids)],
                    "environment": "production",
                    "userId": f"u{i % 997}",
                    "latencyMs": float(50 + (i * 7919) % 2000),
                    "promptTokens": 100 + i % 900,
                    "completionTokens": 20 + i % 300,
                    "success": i % 37 != 0,
                    **(
                        {"errorCode": "TIMEOUT", "errorMessage": "provider timeout"}
                        if i % 37 == 0
                        else {"userRating": 1 + i % 5}
                    ),
                    "useCase": "chat",
                }
            )
        return out


class BodyMaker:
    """Request bodies for the load phase at next to no client CPU, so the load generator leaves the two
    cores to the server (building and encoding 500 dicts per batch cost the client ~10 us an event, a
    quarter of the server's own time per event).

    ``TEMPLATES`` batches of varied events are encoded once with a placeholder in every ``requestId``;
    each body is a template with the placeholder replaced by a batch-unique prefix (one ``bytes.replace``),
    so every event still has a unique ``requestId`` (``{client prefix}-{batch}-{i}``).
    """

    TEMPLATES = 16
    PLACEHOLDER = "@@batch@@"

    def __init__(self, model_ids: list[str], prefix: str, batch: int) -> None:
        import orjson

        maker = BatchMaker(model_ids, self.PLACEHOLDER)
        self.templates = [orjson.dumps({"events": maker.rows(batch)}) for _ in range(self.TEMPLATES)]
        self.prefix = prefix
        self.count = 0

    def body(self) -> bytes:
        template = self.templates[self.count % self.TEMPLATES]
        unique = f"{self.prefix}-{self.count}".encode()
        self.count += 1
        return template.replace(self.PLACEHOLDER.encode(), unique)


async def post_load(
    base_url: str, token: str, model_ids: list[str], *, concurrency: int, duration: float, batch: int, warmup: float
) -> tuple[Stats, int, list[str]]:
    import httpx

    stats = Stats()
    acknowledged = 0
    prefixes: list[str] = []
    stop_at = time.monotonic() + warmup + duration
    measure_from = time.monotonic() + warmup

    async def client(index: int) -> None:
        nonlocal acknowledged
        prefix = f"c{index}-{uuid.uuid4().hex[:8]}"
        prefixes.append(prefix)
        maker = BodyMaker(model_ids, prefix, batch)
        async with httpx.AsyncClient(
            base_url=base_url,
            timeout=60,
            trust_env=False,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        ) as http:
            while time.monotonic() < stop_at:
                body = maker.body()
                started = time.monotonic()
                try:
                    response = await http.post(f"{API}/analytics/events", content=body)
                except httpx.HTTPError as exc:
                    stats.errors[type(exc).__name__] += 1
                    continue
                took = (time.monotonic() - started) * 1000
                if response.status_code == 200 and response.json()["accepted"] == batch:
                    acknowledged += batch
                    if started >= measure_from:
                        stats.latencies_ms.append(took)
                else:
                    stats.errors[response.status_code] += 1
                    if len(stats.error_samples) < 3:
                        stats.error_samples.append(response.text[:300])

    started = time.monotonic()
    await asyncio.gather(*(client(i) for i in range(concurrency)))
    stats.elapsed_s = time.monotonic() - started - warmup
    return stats, acknowledged, prefixes


def copy_reference(model_ids: list[str], rows: int) -> float:
    """Rows per second of one raw psycopg COPY of equally generated rows into the events table."""
    import psycopg

    maker = BatchMaker(model_ids, "copy-" + uuid.uuid4().hex[:8])
    data = maker.rows(rows)
    now = datetime.now(UTC)
    columns = (
        "request_id",
        "timestamp",
        "model_id",
        "deployment_id",
        "environment",
        "user_id",
        "latency_ms",
        "prompt_tokens",
        "completion_tokens",
        "cost",
        "success",
        "error_code",
        "error_message",
        "confidence_score",
        "user_rating",
        "accepted",
        "use_case",
        "experiment_id",
        "variant",
        "prompt_hash",
        "client_request_id",
        "attempt",
        "cached",
        "reservation_id",
        "received_at",
    )
    tuples = [
        (
            e["requestId"],
            datetime.fromisoformat(e["timestamp"]),
            uuid.UUID(e["modelId"]),
            None,
            e["environment"],
            e["userId"],
            e["latencyMs"],
            e["promptTokens"],
            e["completionTokens"],
            (e["promptTokens"] + e["completionTokens"]) * 0.0015 / 1000,
            e["success"],
            e.get("errorCode", ""),
            e.get("errorMessage", ""),
            None,
            e.get("userRating"),
            None,
            e["useCase"],
            "",
            "",
            "",
            "",
            1,
            False,
            "",
            now,
        )
        for e in data
    ]  # converted before the clock starts: the reference is the database path alone
    with psycopg.connect(pg_dsn(DB_NAME)) as conn, conn.cursor() as cur:
        started = time.perf_counter()
        with cur.copy(f"COPY analytics_usageevent ({', '.join(columns)}) FROM STDIN") as copy:
            for row in tuples:
                copy.write_row(row)
        conn.commit()
        return rows / (time.perf_counter() - started)


def count_rows(prefixes: list[str]) -> int:
    import psycopg

    with psycopg.connect(pg_dsn(DB_NAME)) as conn:
        total = 0
        for prefix in prefixes:
            total += conn.execute(
                "SELECT count(*) FROM analytics_usageevent WHERE request_id LIKE %s", (prefix + "-%",)
            ).fetchone()[0]
        return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    add_server_argument(parser)
    parser.add_argument("--rounds", type=int, default=5, help="load / reference alternations")
    parser.add_argument("--reference-rows", type=int, default=250_000, help="COPY reference rows in all")
    parser.add_argument("--seed-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed_worker:
        seed_worker()
        return

    env = bench_env(DB_NAME, REDIS_URL)
    step(f"resetting database {DB_NAME} and migrating")
    reset_database(DB_NAME)
    migrate(env)
    model_ids = json.loads(run_worker(__file__, "--seed-worker", env, 120, "seed"))
    # The load and the reference alternate in ``--rounds`` rounds and the ratio is of their totals: this
    # machine's speed drifts by up to 2x within minutes, so one reference on one side of the load (or even
    # one before and one after) gave ratios from 0.26 to 0.45 for the same code.
    rounds = max(1, args.rounds)
    per_round_s, per_round_rows = args.duration / rounds, max(10_000, args.reference_rows // rounds)
    stats, acknowledged, prefixes = Stats(), 0, []
    copy_rows = copy_seconds = 0.0
    round_ratios = []
    server = Server(env, args.workers, log_name="bench-ingest", kind=args.server)
    step(f"starting {args.server} with {args.workers} workers on {server.base_url}")
    with server:
        server.wait_for_health()
        token = server.token(USERNAME)
        step(
            f"{rounds} rounds of: {args.batch}-event batches from {args.concurrency} clients for {per_round_s:.0f}s "
            f"(+{args.warmup:.0f}s warm-up in the first), then a raw psycopg COPY of {per_round_rows:,} equally "
            "generated rows into analytics_usageevent (the reference)"
        )
        for index in range(rounds):
            round_stats, round_acknowledged, round_prefixes = asyncio.run(
                post_load(
                    server.base_url,
                    token,
                    model_ids,
                    concurrency=args.concurrency,
                    duration=per_round_s,
                    batch=args.batch,
                    warmup=args.warmup if index == 0 else 0.0,
                )
            )
            stats.latencies_ms += round_stats.latencies_ms
            stats.errors.update(round_stats.errors)
            stats.error_samples += round_stats.error_samples[: 3 - len(stats.error_samples)]
            stats.elapsed_s += round_stats.elapsed_s
            acknowledged += round_acknowledged
            prefixes += round_prefixes
            copy_rate_round = copy_reference(model_ids, per_round_rows)
            copy_rows += per_round_rows
            copy_seconds += per_round_rows / copy_rate_round
            api_round = round_stats.ok * args.batch / round_stats.elapsed_s if round_stats.elapsed_s else 0.0
            round_ratios.append(api_round / copy_rate_round)
            step(
                f"round {index + 1}: API {api_round:,.0f} events/s, COPY {copy_rate_round:,.0f} rows/s, "
                f"ratio {round_ratios[-1]:.3f}"
            )
    stored = count_rows(prefixes)
    lost = acknowledged - stored
    events_per_s = stats.ok * args.batch / stats.elapsed_s if stats.elapsed_s else 0.0
    copy_rate = copy_rows / copy_seconds
    describe("ingest batches", stats)
    step(
        f"API: {events_per_s:,.0f} events/s ({stats.ok} batches of {args.batch} in {stats.elapsed_s:.1f}s); "
        f"acknowledged {acknowledged:,}, stored {stored:,}, lost {lost}; COPY {copy_rate:,.0f} rows/s"
    )
    result = {
        "events_per_s": num(events_per_s, 1),
        "batch_p50_ms": num(stats.percentile(50), 2),
        "batch_p95_ms": num(stats.percentile(95), 2),
        "copy_events_per_s": num(copy_rate, 1),
        "ratio": num(events_per_s / copy_rate, 3) if copy_rate else None,
        "round_ratios": [num(r, 3) for r in round_ratios],
        "median_round_ratio": num(statistics.median(round_ratios), 3),  # robust to one round's drift
        "lost": lost,
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
