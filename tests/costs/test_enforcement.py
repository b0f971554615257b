"""Budgets enforced in the gateway: reserve the worst case before every attempt, settle the actual cost.

The stub upstream counts whitespace-separated words as tokens: the prompt "abc abc abc" is 3 tokens (11
characters: the gateway's estimate is ceil(11 / 4) = 3 too) and the reply "stub reply to: abc abc abc" 6, so
with the output cap at 6 a call's worst case is exactly its cost: 9 tokens at 1 USD per 1k = 0.009 USD.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from decimal import Decimal

import httpx
import pytest
from django.db.models import Sum

from analytics.models import UsageEvent
from costs.constants import to_units
from costs.enforcement import period_of
from costs.ledger import counter_key, get_ledger
from tests.costs.helpers import budget

BODY = {"model": "x", "messages": [{"role": "user", "content": "abc abc abc"}]}
WORST = Decimal("0.009")


def _model(gw, **kwargs):
    kwargs.setdefault("baseline_cost_per_1k_tokens", Decimal("1"))
    kwargs.setdefault("max_tokens", 6)
    return gw.model(**kwargs)


async def _fire(urls: list[str], key: str, body=BODY) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=30) as client:
        calls = [client.post(url, json=body, headers={"Authorization": f"Bearer {key}"}) for url in urls]
        return await asyncio.gather(*calls)


def _spend() -> Decimal:
    return UsageEvent.objects.aggregate(s=Sum("cost"))["s"] or Decimal(0)


def test_fifty_concurrent_calls_against_room_for_ten(gw):
    deployment = gw.deployment(model=_model(gw), rateLimiting={"requestsPerMinute": 1000, "burstLimit": 1000})
    budget(gw.personas["admin"], WORST * 10)
    key = gw.key()
    responses = asyncio.run(_fire([gw.server.url + gw.url(deployment)] * 50, key))
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 10 and statuses.count(429) == 40, statuses
    refused = next(r for r in responses if r.status_code == 429).json()["error"]
    assert refused["code"] == "budget_exceeded" and refused["type"] == "insufficient_quota"
    assert gw.stub.requests[-1]["json"]["max_tokens"] == 6  # the cap the reservation assumed is enforced
    gw.drain()
    assert UsageEvent.objects.count() == 10
    spend = _spend()
    assert spend == WORST * 10  # never past the budget (overshoot 0: actual = reserved here)
    counter = get_ledger().values([counter_key(period_of(), "all")])[0]
    assert counter == to_units(spend)  # settled to the events' exact cost, no hold left
    assert set(UsageEvent.objects.values_list("reservation_id", flat=True)) != {""}


def test_a_free_model_with_a_paid_fallback_does_not_bypass_the_budget(gw):
    paid = gw.deployment(model=_model(gw))
    free = gw.deployment(
        model=_model(gw, baseline_cost_per_1k_tokens=Decimal("0")),
        upstreamModel="stub-fail-503",
        fallbacks=[str(paid.pk)],
        rateLimiting={"requestsPerMinute": 1000, "burstLimit": 1000},
    )
    budget(gw.personas["admin"], WORST * 10)
    key = gw.key()
    responses = asyncio.run(_fire([gw.server.url + gw.url(free)] * 50, key))
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 10, statuses
    assert all(r.headers["x-modelhub-fallback"] == str(paid.pk) for r in responses if r.status_code == 200)
    gw.drain()
    assert _spend() == WORST * 10  # the paid fallback's cost, exactly the budget: overshoot 0
    assert UsageEvent.objects.filter(deployment=paid, success=True).count() == 10


def test_streams_are_reserved_and_settled_at_their_cost(gw):
    deployment = gw.deployment(model=_model(gw))
    budget(gw.personas["admin"], WORST * 2)
    key = gw.key()
    for _ in range(2):
        with gw.http.stream(
            "POST", gw.url(deployment), json={**BODY, "stream": True}, headers={"Authorization": f"Bearer {key}"}
        ) as r:
            assert r.status_code == 200
            list(r.iter_lines())
    third = gw.post(deployment, {**BODY, "stream": True}, key=key)
    assert third.status_code == 429 and third.json()["error"]["code"] == "budget_exceeded"
    gw.drain()
    assert _spend() == WORST * 2
    assert get_ledger().values([counter_key(period_of(), "all")])[0] == to_units(WORST * 2)


def test_failed_attempts_release_their_hold(gw):
    deployment = gw.deployment(model=_model(gw), upstreamModel="stub-fail-503", retries=2)
    budget(gw.personas["admin"], WORST)  # room for one worst case: each retry must get it back
    key = gw.key()
    assert gw.post(deployment, BODY, key=key).status_code == 502
    assert len([r for r in gw.stub.requests if r["path"] == "/v1/chat/completions"]) == 3
    assert get_ledger().values([counter_key(period_of(), "all")])[0] == 0


def test_per_model_category_and_other_models_unaffected(gw):
    limited_model = _model(gw)
    limited = gw.deployment(model=limited_model)
    other = gw.deployment(model=_model(gw))
    budget(gw.personas["admin"], 1000, categories={"models": {str(limited_model.pk): str(WORST)}})
    key = gw.key()
    assert gw.post(limited, BODY, key=key).status_code == 200
    assert gw.post(limited, BODY, key=key).status_code == 429
    assert gw.post(other, BODY, key=key).status_code == 200


def test_throttle_scales_the_rate_limit_and_reroute_sends_to_the_cheaper_deployment(gw):
    cheap = gw.deployment(model=_model(gw, baseline_cost_per_1k_tokens=Decimal("0.1")))
    deployment = gw.deployment(model=_model(gw), rateLimiting={"requestsPerMinute": 1000, "burstLimit": 10})
    budget(
        gw.personas["admin"],
        WORST * 10,
        alerts=[
            {"threshold": 10, "action": "throttle", "channels": [], "throttleFactor": 0.2},
            {"threshold": 20, "action": "reroute", "channels": [], "rerouteTo": str(cheap.pk)},
        ],
    )
    key = gw.key()
    first = gw.post(deployment, BODY, key=key)
    assert first.status_code == 200 and first.headers["x-ratelimit-limit"] == "10"
    second = gw.post(deployment, BODY, key=key)  # spend seen: 10 % of the budget -> limit x 0.2
    assert second.status_code == 200 and second.headers["x-ratelimit-limit"] == "2"
    assert "x-modelhub-fallback" not in second.headers
    time.sleep(1.05)  # the throttled burst window (2 a second) is spent
    third = gw.post(deployment, BODY, key=key)  # 20 % seen: rerouted
    assert third.status_code == 200 and third.headers["x-modelhub-fallback"] == str(cheap.pk)


def test_a_blocking_budget_fails_closed_when_neither_redis_nor_the_database_answer(gw, settings, monkeypatch):
    from costs import enforcement

    deployment = gw.deployment(model=_model(gw))
    budget(gw.personas["admin"], 10)
    key = gw.key()
    assert gw.post(deployment, BODY, key=key).status_code == 200

    def broken(*args, **kwargs):
        raise ConnectionError("down")

    monkeypatch.setattr(enforcement, "get_ledger", lambda: type("L", (), {"areserve": broken})())
    monkeypatch.setattr(enforcement, "db_spend_units", broken)
    refused = gw.post(deployment, BODY, key=key)
    assert refused.status_code == 429 and "cannot be checked" in refused.json()["error"]["message"]


@pytest.mark.slow
def test_fifty_concurrent_calls_across_two_server_processes(gw):
    from tests.gateway.conftest import _free_port
    from tests.gateway.test_clients import _needs_postgres_and_redis, _start_hub

    _needs_postgres_and_redis()
    deployment = gw.deployment(model=_model(gw), rateLimiting={"requestsPerMinute": 1000, "burstLimit": 1000})
    budget(gw.personas["admin"], WORST * 10)
    key = gw.key()
    ports = [_free_port(), _free_port()]
    servers = [_start_hub(port) for port in ports]
    try:
        for port in ports:
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(f"http://127.0.0.1:{port}/api/v1/modelhub/health", timeout=1)
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
        urls = [f"http://127.0.0.1:{ports[i % 2]}{gw.url(deployment)}" for i in range(50)]
        statuses = [r.status_code for r in asyncio.run(_fire(urls, key))]
    finally:
        for server in servers:
            server.terminate()
            server.wait(10)
    assert statuses.count(200) == 10 and statuses.count(429) == 40, statuses
    gw.drain()
    assert _spend() == WORST * 10


def test_a_client_that_gives_up_leaves_no_hold(gw):
    """The client disconnects while the upstream is still working: the call finishes, is recorded and settled."""
    deployment = gw.deployment(model=_model(gw), upstreamModel="stub-slow-800")
    budget(gw.personas["admin"], WORST * 10)
    key = gw.key()
    with pytest.raises(httpx.TimeoutException):
        gw.post(deployment, BODY, key=key, timeout=0.2)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not gw.drain().get("accepted"):
        time.sleep(0.1)
    key_all = counter_key(period_of(), "all")
    assert get_ledger().values([key_all])[0] == to_units(_spend())
    assert get_ledger().held([key_all])[0] == 0


def test_stale_holds_lapse(db):
    """A hold whose process died is never settled: its expiry gives the amount back on the next reservation."""
    from costs.ledger import get_ledger

    ledger = get_ledger()
    keys = [counter_key(period_of(), "all")]
    ledger.seed(keys, [0])
    assert ledger.reserve(keys, "dead", 500, 50, period_of(), [1000]).status == 1
    assert ledger.reserve(keys, "other", 600, 60_000, period_of(), [1000]).status == 0  # 500 held: no room
    time.sleep(0.1)
    assert ledger.reserve(keys, "other", 600, 60_000, period_of(), [1000]).status == 1  # lapsed
    assert ledger.values(keys) == [600] and ledger.held(keys) == [600]
    assert ledger.settle(keys, "dead", 0, period_of()) is False  # settling a lapsed hold adds its actual (0)
    assert ledger.values(keys) == [600]


def test_a_stream_cancelled_while_closing_is_still_recorded_and_settled(gw, monkeypatch):
    """The handler task is cancelled during ``stream.aclose()`` in ``_stream``'s finally (a shutdown, a
    cancelled client): the relayed usage is still recorded and the hold settled, not left to lapse."""
    from gateway import adapters
    from gateway import app as gateway_app

    deployment = gw.deployment(model=_model(gw))
    budget(gw.personas["admin"], WORST * 10)
    key = gw.key()
    handler: dict = {}
    original_stream, original_close = gateway_app._stream, adapters.Stream.aclose

    async def stream(*args, **kwargs):
        handler["task"] = asyncio.current_task()
        return await original_stream(*args, **kwargs)

    async def aclose(self):
        handler["task"].cancel()
        await asyncio.sleep(0.05)
        await original_close(self)

    monkeypatch.setattr(gateway_app, "_stream", stream)
    monkeypatch.setattr(adapters.Stream, "aclose", aclose)
    auth = {"Authorization": f"Bearer {key}"}
    with (
        contextlib.suppress(httpx.HTTPError),
        gw.http.stream("POST", gw.url(deployment), json={**BODY, "stream": True}, headers=auth) as r,
    ):
        list(r.iter_lines())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not UsageEvent.objects.exists():
        gw.drain()
        time.sleep(0.05)
    key_all = counter_key(period_of(), "all")
    assert UsageEvent.objects.count() == 1 and _spend() > 0
    assert get_ledger().held([key_all])[0] == 0  # settled, no hold left to lapse
    assert get_ledger().values([key_all])[0] == to_units(_spend())


def test_a_stream_past_its_total_limit_ends_with_an_error_and_its_hold_outlives_it(gw, settings, monkeypatch):
    """GATEWAY_STREAM_MAX_SECONDS: a stream still going past it ends with an error event, is billed for what
    was relayed and settled; its hold was taken for that long (plus the attempt's margin), so the hold cannot
    lapse while the stream runs and its room cannot be handed to other calls meanwhile."""
    from costs import services as cost_services

    settings.GATEWAY_STREAM_MAX_SECONDS = 1
    ttls = []
    original = cost_services.gate_reserve

    async def spy(*args, **kwargs):
        ttls.append(kwargs["ttl_seconds"])
        return await original(*args, **kwargs)

    monkeypatch.setattr(cost_services, "gate_reserve", spy)
    deployment = gw.deployment(model=_model(gw, max_tokens=40), timeout=5)
    budget(gw.personas["admin"], 10)
    words = " ".join(f"w{i}" for i in range(30))
    body = {"messages": [{"role": "user", "content": words}], "stream": True}
    gw.stub.chunk_delay_ms = 200
    started = time.monotonic()
    try:
        with gw.http.stream(
            "POST", gw.url(deployment), json=body, headers={"Authorization": f"Bearer {gw.key()}"}
        ) as r:
            lines = [line for line in r.iter_lines() if line.startswith("data:")]
    finally:
        gw.stub.chunk_delay_ms = 0
    assert time.monotonic() - started < 3
    assert '"upstream_timeout"' in lines[-1] and "limit of 1 s" in lines[-1]
    assert ttls == [1 + 5 * 2 + 60]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not UsageEvent.objects.exists():
        gw.drain()
        time.sleep(0.05)
    event = UsageEvent.objects.get()
    assert event.success is False and 0 < event.completion_tokens < 30
    key_all = counter_key(period_of(), "all")
    assert get_ledger().held([key_all])[0] == 0
    assert get_ledger().values([key_all])[0] == to_units(event.cost)


def test_a_malformed_alert_does_not_break_gateway_calls(gw):
    """A budget row written around the API's checks (alerts [{"threshold": "80"}], "abc"): the gateway
    still answers, and the usable block alert of the same budget still applies."""
    from costs.models import Budget

    deployment = gw.deployment(model=_model(gw))
    Budget.objects.create(
        monthly_budget=WORST,
        owner=gw.personas["admin"],
        alerts=[{"threshold": "80"}, {"threshold": "abc", "action": "block"}, {"threshold": 100, "action": "block"}],
        categories={},
    )
    key = gw.key()
    assert gw.post(deployment, BODY, key=key).status_code == 200
    refused = gw.post(deployment, BODY, key=key)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "budget_exceeded"
