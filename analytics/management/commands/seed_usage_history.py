"""``python manage.py seed_usage_history``: realistic *past* usage events through the ingestion service.

History needs past timestamps, which no call through the gateway can have (the gateway stamps each call
when it happens), so this seeds the dashboard's first 24 hours for a newcomer the way a client that
reports usage itself would (``POST /analytics/events``'s validation and storage). Live traffic goes
through the gateway: ``manage.py simulate_traffic`` (gateway app).


Several models (and their live deployments, when there are any), a diurnal load curve,
per-model latency around the model's baseline with a lognormal body and a slow tail,
errors at a base rate plus one incident window with a burst of a single error code,
ratings, accept/reject feedback, use cases from each model's supported tasks, a pool of
end users and repeated prompts (``promptHash``). Events go through
:func:`analytics.ingest.ingest_events` in batches, exactly as the API stores them; then the
rollup runs so the dashboard has data at once.
"""

from __future__ import annotations

import hashlib
import math
import random
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from analytics.ingest import ingest_events
from analytics.rollup import rollup

ERROR_CODES = [
    ("PROVIDER_TIMEOUT", "The provider did not answer within the deployment timeout."),
    ("RATE_LIMITED", "429 Too Many Requests from the provider."),
    ("CONTEXT_TOO_LONG", "The prompt exceeds the model's context window."),
    ("UPSTREAM_5XX", "502 Bad Gateway from the provider."),
]


class Command(BaseCommand):
    help = "Generate realistic usage events (diurnal load, errors, ratings, latency tails) and roll them up."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--hours", type=int, default=24, help="How far back the traffic starts (1-720).")
        parser.add_argument(
            "--rate", type=float, default=1.0, help="Average events per second across all models (0.01-500)."
        )
        parser.add_argument("--models", type=int, default=6, help="How many catalog models get traffic (1-50).")
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument("--no-rollup", action="store_true", help="Only ingest; leave the rollup to the worker.")
        parser.add_argument(
            "--if-empty", action="store_true", help="Do nothing when events of the last --hours exist (scripts/run)."
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        from catalog.selectors import deployable_models
        from deployments.selectors import live_deployments_by_model

        hours, rate, count = opts["hours"], opts["rate"], opts["models"]
        if not 1 <= hours <= 720 or not 0.01 <= rate <= 500 or not 1 <= count <= 50:
            raise CommandError("--hours must be 1-720, --rate 0.01-500, --models 1-50")
        models = deployable_models(limit=count)
        if not models:
            raise CommandError("No models in the catalog: run `manage.py seed_demo` first.")
        rng = random.Random(opts["seed"])  # noqa: S311 - simulated traffic, not secrets
        live = live_deployments_by_model([m.pk for m in models])

        now = timezone.now()
        start = now - timedelta(hours=hours)
        if opts["if_empty"]:
            from analytics.models import UsageEvent

            if UsageEvent.objects.filter(timestamp__gte=start).exists():
                self.stdout.write("usage events exist already: not simulating more")
                return
        weights = [rng.uniform(0.5, 2.0) for _ in models]
        total_weight = sum(weights)
        incident_model = rng.randrange(len(models))
        incident_start = now - timedelta(minutes=rng.randint(20, 40))
        users = [f"user-{i:04d}" for i in range(500)]
        prompts = [hashlib.sha256(f"prompt-{i}".encode()).hexdigest()[:32] for i in range(200)]

        batch: list[dict[str, Any]] = []
        stored = duplicates = rejected = 0
        t = start
        seq = 0
        while t < now:
            hour = t.hour + t.minute / 60
            diurnal = 0.25 + 0.75 * (1 + math.sin(2 * math.pi * (hour - 9) / 24)) / 2  # peak mid-afternoon UTC
            t += timedelta(seconds=rng.expovariate(rate * diurnal))
            if t >= now:
                break
            index = rng.choices(range(len(models)), weights)[0]
            model = models[index]
            seq += 1
            batch.append(
                self._event(
                    rng,
                    model,
                    t,
                    seq,
                    live.get(model.pk),
                    users,
                    prompts,
                    incident=index == incident_model and t >= incident_start,
                )
            )
            if len(batch) == 1000:
                result = ingest_events(batch, now=timezone.now())
                stored, duplicates, rejected = (
                    stored + result.accepted,
                    duplicates + result.duplicates,
                    rejected + len(result.rejected),
                )
                batch = []
        if batch:
            result = ingest_events(batch, now=timezone.now())
            stored, duplicates, rejected = (
                stored + result.accepted,
                duplicates + result.duplicates,
                rejected + len(result.rejected),
            )
        self.stdout.write(
            f"ingested {stored} events ({duplicates} duplicates, {rejected} rejected) for {len(models)} models "
            f"over {hours}h, weights {[round(w / total_weight, 2) for w in weights]}"
        )
        if not opts["no_rollup"]:
            report = rollup()
            self.stdout.write(f"rolled up: {report.as_dict()}")

    @staticmethod
    def _event(
        rng: random.Random,
        model: Any,
        at: Any,
        seq: int,
        deployments: list | None,
        users: list[str],
        prompts: list[str],
        *,
        incident: bool,
    ) -> dict[str, Any]:
        baseline = float(model.baseline_avg_latency_ms or 300)
        latency = rng.lognormvariate(math.log(baseline * 0.85), 0.45)
        if rng.random() < 0.01:
            latency *= rng.uniform(4, 15)  # cold starts, provider hiccups
        if incident:
            latency *= 2.5
        tokens = max(20, int(model.baseline_avg_tokens_per_request or 800))
        prompt_tokens = max(1, int(rng.lognormvariate(math.log(tokens * 0.7), 0.5)))
        completion_tokens = max(1, int(rng.lognormvariate(math.log(tokens * 0.3), 0.6)))
        failed = rng.random() < (0.35 if incident else 0.015)
        body: dict[str, Any] = {
            "requestId": f"sim-{model.pk.hex[:8]}-{int(at.timestamp() * 1000)}-{seq}",
            "timestamp": at.isoformat(),
            "modelId": str(model.pk),
            "userId": rng.choice(users),
            "latencyMs": round(min(latency, 600_000.0), 2),
            "promptTokens": prompt_tokens,
            "completionTokens": 0 if failed else completion_tokens,
            "success": not failed,
            "useCase": rng.choice(model.supported_tasks or ["chat"])[:100],
        }
        if deployments:
            body["deploymentId"] = str(rng.choice(deployments).pk)
        else:
            body["environment"] = rng.choices(["production", "staging", "development"], [0.8, 0.15, 0.05])[0]
        if failed:
            code, message = ("UPSTREAM_5XX", ERROR_CODES[3][1]) if incident else rng.choice(ERROR_CODES)
            body.update(errorCode=code, errorMessage=message)
        else:
            body["confidenceScore"] = round(min(1.0, max(0.0, rng.gauss(0.82, 0.1))), 3)
            if rng.random() < 0.3:
                quality = 4.3 - (1.5 if incident else 0) - (hash(model.pk) % 5) * 0.15
                body["userRating"] = min(5, max(1, round(rng.gauss(quality, 0.8))))
            if rng.random() < 0.5:
                body["accepted"] = rng.random() < 0.85
        if rng.random() < 0.25:
            body["promptHash"] = rng.choice(prompts)
        return body
