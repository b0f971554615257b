"""The gateway as its users meet it: the official ``openai`` SDK, streams cut short, several server
processes sharing one rate limit, a usage drain killed mid-way, the Anthropic adapter."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest
from django.db import connection

from analytics.models import UsageEvent
from gateway import buffer as usage_buffer
from gateway.models import ProviderCredential
from tests.conftest import needs_redis

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]


def test_official_openai_sdk_plain_streaming_and_embeddings(gw):
    deployment = gw.deployment()
    client = openai.OpenAI(base_url=f"{gw.server.url}/api/v1/modelhub/deployments/{deployment.pk}/v1", api_key=gw.key())
    completion = client.chat.completions.create(model="stub-model", messages=[{"role": "user", "content": "ping"}])
    assert completion.choices[0].message.content == "stub reply to: ping"
    assert completion.usage.total_tokens > 0
    chunks = list(
        client.chat.completions.create(
            model="stub-model",
            messages=[{"role": "user", "content": "a streamed answer"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.split() == ["stub", "reply", "to:", "a", "streamed", "answer"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == len(text.split())
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="x", messages=[{"role": "user", "content": "x"}], temperature=5)
    assert refused.value.code == "invalid_value"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=client.base_url, api_key="mh_wrong_key", max_retries=0).models.list()
    embedder = gw.deployment(model=gw.model(model_type="embedding"))
    embedding_client = openai.OpenAI(
        base_url=f"{gw.server.url}/api/v1/modelhub/deployments/{embedder.pk}/v1", api_key=gw.key()
    )
    assert len(embedding_client.embeddings.create(model="e", input="hello").data[0].embedding) == 8
    assert [m.id for m in client.models.list()] == ["stub-model"]
    assert gw.drain()["accepted"] == 3


def test_a_client_that_disconnects_mid_stream_is_billed_for_what_was_relayed(gw):
    deployment = gw.deployment()
    gw.stub.chunk_delay_ms = 100
    try:
        words = " ".join(f"w{i}" for i in range(40))
        body = {"messages": [{"role": "user", "content": words}], "stream": True}
        received = 0
        with gw.http.stream(
            "POST", gw.url(deployment), json=body, headers={"Authorization": f"Bearer {gw.key()}"}
        ) as r:
            for line in r.iter_lines():
                if line.startswith("data:") and '"content"' in line:
                    received += 1
                if received >= 4:
                    break
        deadline = time.monotonic() + 10
        result = {"accepted": 0}
        while not result["accepted"] and time.monotonic() < deadline:
            time.sleep(0.2)
            result = gw.drain()
    finally:
        gw.stub.chunk_delay_ms = 0
    event = UsageEvent.objects.get()
    full = len(f"stub reply to: {words}"[:200].split())
    assert 3 <= event.completion_tokens < full  # what was relayed, not the whole answer
    assert event.prompt_tokens > 0 and event.cost > 0


def test_anthropic_adapter_translates_both_ways(gw):
    ProviderCredential.objects.create(provider="anthropic", adapter="anthropic", base_url=gw.stub.url)
    deployment = gw.deployment(model=gw.model(provider="anthropic"), host=None, upstreamModel="claude-stub")
    key = gw.key()
    body = {
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "bonjour"}],
        "stop": "END",
    }
    response = gw.post(deployment, body, key=key)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (
        answer["object"] == "chat.completion" and answer["choices"][0]["message"]["content"] == "stub reply to: bonjour"
    )
    sent = gw.stub.requests[-1]
    assert sent["path"] == "/v1/messages" and sent["json"]["system"] == "be brief"
    assert sent["json"]["stop_sequences"] == ["END"] and sent["json"]["max_tokens"] > 0
    assert sent["headers"]["anthropic-version"]
    streamed = []
    with gw.http.stream(
        "POST", gw.url(deployment), json={**body, "stream": True}, headers={"Authorization": f"Bearer {key}"}
    ) as r:
        streamed = [line for line in r.iter_lines() if line.startswith("data:")]
    assert streamed[-1] == "data: [DONE]" and any("bonjour" in line for line in streamed)
    gw.drain()
    assert UsageEvent.objects.filter(success=True).count() == 2
    assert all(e.prompt_tokens > 0 and e.completion_tokens > 0 for e in UsageEvent.objects.all())


def _subprocess_env() -> dict[str, str]:
    from django.conf import settings

    name = connection.settings_dict["NAME"]
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{name}",
        "REDIS_URL": settings.REDIS_URL,
        "PYTHONPATH": str(ROOT),
    }


def _needs_postgres_and_redis():
    needs_redis()
    if connection.vendor != "postgresql":
        pytest.skip("another process must share the database: PostgreSQL only")


@pytest.mark.slow
def test_a_killed_drain_loses_nothing_and_stores_nothing_twice(gw):
    """Kill the worker between claiming and ingesting, and between ingesting and acknowledging."""
    _needs_postgres_and_redis()
    deployment = gw.deployment()
    key = gw.key()
    ids = [gw.post(deployment, key=key).headers["x-request-id"] for _ in range(6)]
    assert usage_buffer.get_buffer().pending() == 6
    for stage in ("claimed", "ingested"):
        script = (
            "import django, os, signal; django.setup()\n"
            "from gateway import buffer\n"
            "claim, items = buffer.get_buffer().claim(3)\n"
            f"if {stage!r} == 'ingested': buffer._ingest(items)\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n"
        )
        done = subprocess.run([sys.executable, "-c", script], env=_subprocess_env(), cwd=ROOT, timeout=60)
        assert done.returncode == -signal.SIGKILL
    assert usage_buffer.get_buffer().pending() == 0  # both batches sit in dead claims
    assert UsageEvent.objects.count() == 3  # the second worker stored its batch, then died unacknowledged
    totals = usage_buffer.drain(claim_timeout=0)  # the restarted worker takes the stale claims over
    assert totals["recovered"] == 6 and totals["accepted"] == 3 and totals["duplicates"] == 3
    assert sorted(UsageEvent.objects.values_list("request_id", flat=True)) == sorted(ids)
    assert usage_buffer.drain(claim_timeout=0)["recovered"] == 0


def _start_hub(port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "modelhub.asgi:application", "--port", str(port), "--lifespan", "off"]
        + ["--no-access-log", "--log-level", "warning"],
        env=_subprocess_env(),
        cwd=ROOT,
    )


@pytest.mark.slow
def test_the_deployment_rate_limit_holds_across_two_server_processes(gw):
    _needs_postgres_and_redis()
    from tests.gateway.conftest import _free_port

    deployment = gw.deployment(rateLimiting={"requestsPerMinute": 10, "burstLimit": 100})
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

        async def fire() -> list[int]:
            async with httpx.AsyncClient(timeout=30) as client:
                body = {"messages": [{"role": "user", "content": "x"}]}
                calls = [
                    client.post(
                        f"http://127.0.0.1:{ports[i % 2]}{gw.url(deployment)}",
                        json=body,
                        headers={"Authorization": f"Bearer {key}"},
                    )
                    for i in range(30)
                ]
                return [r.status_code for r in await asyncio.gather(*calls)]

        while time.time() % 60 > 55:  # the minute window is aligned: do not straddle its end
            time.sleep(0.5)
        statuses = asyncio.run(fire())
    finally:
        for server in servers:
            server.terminate()
            server.wait(10)
    assert statuses.count(200) == 10 and statuses.count(429) == 20


def test_concurrent_async_limiter_checks_admit_exactly_the_limit(db):
    """200 concurrent checks against a limit of 100 in one process: they are coalesced into a few batched
    script calls on the one pipelined Redis connection, and exactly 100 are admitted, each seeing its own
    place in the window, the rest refused with Retry-After information; 10 more admit none."""
    needs_redis()
    from modelhub.api.ratelimit import AsyncRedisLimiter, Window, reset_limiter

    reset_limiter()
    limiter = AsyncRedisLimiter()
    windows = [Window("burst", 1000, 1000, "rl:{t:concurrent}:s"), Window("minute", 100, 60_000, "rl:{t:concurrent}:m")]

    async def run():
        many = await asyncio.gather(*(limiter.hit(windows) for _ in range(200)))
        return many, await asyncio.gather(*(limiter.hit(windows) for _ in range(10)))

    while time.time() % 60 > 55:
        time.sleep(0.5)
    decisions, batch = asyncio.run(run())
    assert sum(d.allowed for d in decisions) == 100
    refused = [d for d in decisions if not d.allowed]
    assert all(d.retry_after_seconds >= 1 and d.tightest.window.name == "minute" for d in refused)
    remaining = sorted(d.tightest.remaining for d in decisions if d.allowed)
    assert remaining == list(range(100))  # each admitted request saw its own place in the window
    assert not any(d.allowed for d in batch)
