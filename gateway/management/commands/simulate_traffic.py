"""``python manage.py simulate_traffic``: simulated traffic *through the gateway* - a steady trickle of
calls to the demo deployments over HTTP, as a client would send them.

``./scripts/run`` starts it next to the server (``DEMO_TRAFFIC_PER_MINUTE``, default 30; 0 switches it
off) so a newcomer who opens the console sees live data move: each call goes through the running hub
like any client's (its own API key, the gateway, the simulated provider, the usage buffer, the
rollup), and about one in four gets a rating through ``/v1/feedback``. Nothing is typed in.
"""

from __future__ import annotations

import random
import time
from typing import Any

import httpx
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from gateway.management.commands.gateway_demo import PROMPTS
from gateway.management.commands.gateway_demo import Command as GatewayDemo
from gateway.models import ApiKey
from gateway.services import api_key_create, api_key_revoke

KEY_NAME = "demo live traffic (scripts/run)"


class Command(BaseCommand):
    help = "Send demo calls to the demo deployments through the running hub, steadily (Ctrl-C stops)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--per-minute", type=float, default=30.0, help="Calls per minute (0.1-6000).")
        parser.add_argument("--count", type=int, default=0, help="Stop after this many calls (0: run until stopped).")
        parser.add_argument("--base-url", default="", help="Where the hub serves (default PUBLIC_BASE_URL).")
        parser.add_argument("--seed", type=int, default=11)

    def handle(self, *args: Any, **opts: Any) -> None:
        if not 0.1 <= opts["per_minute"] <= 6000 or opts["count"] < 0:
            raise CommandError("--per-minute must be 0.1-6000 and --count >= 0")
        developer = get_user_model().objects.filter(username="developer").first()
        if developer is None:
            raise CommandError("Run `manage.py seed_demo` first (no developer demo user).")
        deployments = GatewayDemo()._deployments(developer, 3)
        if not deployments:
            raise CommandError("No demo deployment: run `manage.py gateway_demo` first.")
        for old in ApiKey.objects.filter(owner=developer, name=KEY_NAME, revoked_at__isnull=True):
            api_key_revoke(old)
        _, secret = api_key_create(owner=developer, name=KEY_NAME)
        base = (opts["base_url"] or settings.PUBLIC_BASE_URL).rstrip("/")
        rng = random.Random(opts["seed"])  # noqa: S311 - demo traffic
        gap = 60.0 / opts["per_minute"]
        sent = 0
        self.stdout.write(
            f"simulate_traffic: {opts['per_minute']:g} call(s)/minute to {len(deployments)} deployment(s)"
        )
        with httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {secret}"}) as client:
            while not opts["count"] or sent < opts["count"]:
                deployment = rng.choice(deployments)
                path = f"/api/v1/modelhub/deployments/{deployment.pk}/v1"
                body = {
                    "messages": [{"role": "user", "content": rng.choice(PROMPTS)}],
                    "user": f"user-{rng.randrange(50):03d}",
                }
                try:
                    answer = client.post(f"{path}/chat/completions", json=body, headers={"X-Modelhub-Use-Case": "demo"})
                    if answer.status_code == 200 and rng.random() < 0.25:
                        feedback = {
                            "requestId": answer.headers["x-request-id"],
                            "userRating": rng.choice([3, 4, 4, 5, 5]),
                        }
                        client.post(f"{path}/feedback", json=feedback)
                except httpx.HTTPError:  # the server is starting or restarting: try again later
                    time.sleep(min(5.0, gap))
                    continue
                sent += 1
                if not opts["count"] or sent < opts["count"]:
                    time.sleep(gap * rng.uniform(0.5, 1.5))
        self.stdout.write(f"simulate_traffic: {sent} call(s) sent")
