"""``python manage.py gateway_demo``: the embedded default's gateway, ready to call (idempotent).

1. every provider without a credential gets the **simulated provider** (no network);
2. the first ``--deployments`` demo models get a running production deployment (created through the
   deployments service and its readiness check, as the API would; kept when one is live already);
3. a fresh API key for the ``developer`` demo user (the previous demo key is revoked), printed once;
4. ``--calls`` chat completions are sent *through the gateway* (its ASGI application, in process:
   auth, rate limit, the simulated provider, the usage buffer), then the buffer is drained into the
   events table - usage the dashboard shows that no one typed in.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from catalog import selectors as catalog_selectors
from deployments import selectors as deployment_selectors
from deployments import services as deployment_services
from gateway import buffer
from gateway.models import ApiKey
from gateway.services import api_key_create, api_key_revoke, ensure_simulated_credentials
from modelhub import upstreams

DEMO_KEY_NAME = "demo key (scripts/run)"
PROMPTS = [
    "Summarise this support ticket in two sentences.",
    "Classify the sentiment of: the delivery was late but the staff were lovely.",
    "Extract the invoice number and total from the attached text.",
    "Write a friendly reply to a customer asking about refunds.",
    "Translate 'good morning, how can I help?' into French.",
]


class Command(BaseCommand):
    help = "Simulated provider credentials, demo deployments, a demo API key, and live calls through the gateway."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--deployments", type=int, default=3, help="Demo models to deploy (0-10).")
        parser.add_argument("--calls", type=int, default=60, help="Calls to send through the gateway (0-5000).")
        parser.add_argument("--concurrency", type=int, default=16)
        parser.add_argument("--seed", type=int, default=7)

    def handle(self, *args: Any, **opts: Any) -> None:
        if not 0 <= opts["deployments"] <= 10 or not 0 <= opts["calls"] <= 5000:
            raise CommandError("--deployments must be 0-10 and --calls 0-5000")
        created = ensure_simulated_credentials()
        developer = get_user_model().objects.filter(username="developer").first()
        if developer is None:
            raise CommandError("Run `manage.py seed_demo` first (no developer demo user).")
        deployments = self._deployments(developer, opts["deployments"])
        for old in ApiKey.objects.filter(owner=developer, name=DEMO_KEY_NAME, revoked_at__isnull=True):
            api_key_revoke(old)
        _, secret = api_key_create(owner=developer, name=DEMO_KEY_NAME)
        self.stdout.write(f"gateway_demo: {created} simulated provider credential(s) added")
        for deployment in deployments:
            self.stdout.write(f"  deployment {deployment_selectors.deployment_endpoint(deployment)}")
        self.stdout.write(f"  API key (developer, shown once): {secret}")
        if deployments and opts["calls"]:
            statuses = asyncio.run(self._traffic(deployments, secret, opts))
            totals = buffer.drain()
            self.stdout.write(
                f"  {opts['calls']} call(s) through the gateway: "
                + ", ".join(f"{status}: {count}" for status, count in sorted(statuses.items()))
                + f"; usage stored: {totals['accepted']}"
            )

    def _deployments(self, developer: Any, count: int) -> list[Any]:
        out = []
        for model in catalog_selectors.deployable_models(limit=count * 3):
            if len(out) >= count:
                break
            if model.model_type == "embedding":
                continue
            live = deployment_selectors.live_deployments_by_model([model.pk]).get(model.pk)
            if live:
                out.append(live[0])
                continue
            deployment = deployment_services.deployment_create(
                actor=developer,
                model_id=model.pk,
                version=model.version,
                environment="production",
                configuration={"replicas": 1, "resources": {"cpu": "1", "memory": "2Gi"}, "temperature": 0.7},
            )
            ready = deployment_services.deployment_check_readiness(
                deployment_id=deployment.pk, expected_status="creating"
            )
            out.append(ready or deployment)
        return out

    async def _traffic(self, deployments: list[Any], secret: str, opts: dict[str, Any]) -> dict[int, int]:
        from gateway.app import application

        rng = random.Random(opts["seed"])  # noqa: S311 - demo traffic
        limit = asyncio.Semaphore(max(1, opts["concurrency"]))
        statuses: dict[int, int] = {}
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.local", timeout=60) as client:

            async def one(index: int) -> None:
                deployment = rng.choice(deployments)
                body = {
                    "messages": [{"role": "user", "content": rng.choice(PROMPTS)}],
                    "user": f"user-{rng.randrange(50):03d}",
                }
                async with limit:
                    response = await client.post(
                        f"/api/v1/modelhub/deployments/{deployment.pk}/v1/chat/completions",
                        json=body,
                        headers={"Authorization": f"Bearer {secret}", "X-Modelhub-Use-Case": "demo"},
                    )
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

            await asyncio.gather(*(one(i) for i in range(opts["calls"])))
        await upstreams.close_session()
        return statuses
