"""``manage.py gateway_demo`` (what ``./scripts/run`` runs): simulated credentials, demo deployments, a key, and
calls that go through the gateway into the events table."""

from __future__ import annotations

import time

import pytest
from django.core.management import call_command

from analytics.models import UsageEvent
from gateway.models import ApiKey, ProviderCredential
from tests.factories import ModelRegistryFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_gateway_demo_calls_through_the_gateway_and_is_idempotent(personas, capsys):
    for i in range(3):
        ModelRegistryFactory(name=f"demo-{i}", provider="openai", baseline_success_rate=1.0)
    call_command("gateway_demo", "--calls", "20", "--deployments", "2")
    out = capsys.readouterr().out
    assert "20 call(s) through the gateway: 200: 20; usage stored: 20" in out
    assert ProviderCredential.objects.filter(adapter="simulated").count() == 5
    events = UsageEvent.objects.all()
    assert events.count() == 20 and all(e.request_id.startswith("gw-") and e.deployment_id for e in events)
    assert {e.use_case for e in events} == {"demo"}
    first_key = ApiKey.objects.get(revoked_at__isnull=True)
    assert first_key.last_used_at is not None  # set by the drain
    secret = out.split("API key (developer, shown once): ")[1].split()[0]
    assert secret.startswith("mh_")
    call_command("gateway_demo", "--calls", "0", "--deployments", "2")
    # the same two deployments, a new key, the old one revoked
    assert ApiKey.objects.filter(revoked_at__isnull=True).count() == 1
    assert ApiKey.objects.get(pk=first_key.pk).revoked_at is not None
    assert len({e.deployment_id for e in events}) <= 2


def test_simulate_traffic_calls_the_running_hub_through_the_gateway_and_rates_some(personas, capsys, hub_server):
    """What ./scripts/run starts next to the server, so the console's figures move."""
    from gateway import buffer

    for i in range(2):
        ModelRegistryFactory(name=f"live-{i}", provider="openai", baseline_success_rate=1.0)
    call_command("gateway_demo", "--calls", "0", "--deployments", "2")
    started = time.monotonic()
    call_command("simulate_traffic", "--count", "12", "--per-minute", "600", "--base-url", hub_server.url)
    assert time.monotonic() - started >= 0.5  # paced (~0.1 s apart), not a burst
    assert "12 call(s) sent" in capsys.readouterr().out
    buffer.drain()
    events = UsageEvent.objects.filter(use_case="demo")
    assert events.count() == 12 and events.filter(success=True).count() == 12
    assert events.exclude(user_rating=None).exists()  # some calls were rated through /v1/feedback
    assert ApiKey.objects.filter(name="demo live traffic (scripts/run)", revoked_at__isnull=True).count() == 1
