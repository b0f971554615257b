"""The gateway's calls in /metrics: upstream latency, tokens and cost by provider and model, the
response cache's hits, the deployment rate limit's refusals."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from django.test import Client

from tests.api.test_metrics import samples, value

pytestmark = pytest.mark.django_db(transaction=True)


def scrape() -> dict:
    response = Client().get("/metrics")
    assert response.status_code == 200
    return samples(response.content.decode())


def test_an_upstream_call_is_counted_with_its_tokens_and_cost(gw):
    model = gw.model(name="metered", baseline_cost_per_1k_tokens=Decimal("2.0"))
    deployment = gw.deployment(model=model)
    key = gw.key()
    before = scrape()
    response = gw.post(deployment, key=key)
    assert response.status_code == 200, response.text
    usage = response.json()["usage"]
    after = scrape()
    labels = {"provider": model.provider, "model": "metered"}

    def delta(name, **extra):
        return value(after, name, **labels, **extra) - value(before, name, **labels, **extra)

    assert delta("modelhub_gateway_upstream_duration_seconds_count", outcome="ok") == 1
    assert delta("modelhub_gateway_tokens_total", kind="prompt") == usage["prompt_tokens"]
    assert delta("modelhub_gateway_tokens_total", kind="completion") == usage["completion_tokens"]
    expected_cost = 2.0 * (usage["prompt_tokens"] + usage["completion_tokens"]) / 1000
    assert delta("modelhub_gateway_cost_usd_total") == pytest.approx(expected_cost)


def test_cache_hits_and_rate_limit_refusals_are_counted(gw):
    deployment = gw.deployment(
        responseCache={"enabled": True, "ttlSeconds": 60}, rateLimiting={"requestsPerMinute": 2, "burstLimit": 10}
    )
    key = gw.key()
    body = {"messages": [{"role": "user", "content": "same"}], "temperature": 0}
    while time.time() % 60 > 45:  # the minute window is aligned: the three calls must share one (a CI run crossed it)
        time.sleep(0.5)
    before = scrape()
    assert gw.post(deployment, body, key=key).status_code == 200
    assert gw.post(deployment, body, key=key).headers.get("x-modelhub-cache") == "hit"
    after = scrape()
    hits = "modelhub_cache_lookups_total"
    assert (
        value(after, hits, cache="gateway_response", result="hit")
        - value(before, hits, cache="gateway_response", result="hit")
        == 1
    )
    assert (
        value(after, hits, cache="gateway_response", result="miss")
        - value(before, hits, cache="gateway_response", result="miss")
        == 1
    )
    refused = gw.post(deployment, {**body, "temperature": 0.5}, key=key)  # the third call of the minute
    assert refused.status_code == 429
    rejected = "modelhub_rate_limit_rejections_total"
    assert value(scrape(), rejected, scope="gateway") - value(before, rejected, scope="gateway") == 1


def test_gateway_answers_are_counted_with_the_apis_http_series(gw):
    deployment = gw.deployment()
    key = gw.key()
    route = "/api/v1/modelhub/deployments/{id}/v1/chat/completions"
    before = scrape()
    assert gw.post(deployment, key=key).status_code == 200
    assert gw.post(deployment).status_code == 401  # no key
    after = scrape()
    total = "modelhub_http_requests_total"
    for status in ("200", "401"):
        assert (
            value(after, total, route=route, method="POST", status=status)
            - value(before, total, route=route, method="POST", status=status)
            == 1
        )
    errors = "modelhub_http_errors_total"
    assert (
        value(after, errors, route=route, code="missing_api_key")
        - value(before, errors, route=route, code="missing_api_key")
        == 1
    )
    assert not any(str(deployment.pk) in str(labels) for _, labels in after)  # ids never become labels
