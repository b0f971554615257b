"""Calling deployments through the gateway: the OpenAI surface, errors in OpenAI's shape, usage recorded.

Real TCP both ways: the hub on uvicorn in a thread, the upstream a stub server (tests/gateway/conftest.py).
"""

from __future__ import annotations

import pytest

from analytics.models import UsageEvent

pytestmark = pytest.mark.django_db(transaction=True)


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, (response.status_code, response.text[:500])
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    assert body["error"]["code"] == code, body
    return body["error"]


def test_chat_completion_through_the_stub_is_relayed_and_recorded(gw):
    deployment = gw.deployment(temperature=0.3, maxTokens=50)
    key = gw.key()
    response = gw.post(deployment, key=key, headers={"X-Request-Id": "client-1", "X-Modelhub-Use-Case": "support"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == "stub reply to: hello there"
    request_id = response.headers["x-request-id"]
    # the stub received the deployment's defaults and the upstream model name
    sent = gw.stub.requests[-1]["json"]
    assert sent["model"] == "stub-model" and sent["temperature"] == 0.3 and sent["max_tokens"] == 50
    # nothing is written on the request path; the drain stores the event exactly once
    assert not UsageEvent.objects.exists()
    assert gw.drain()["accepted"] == 1
    assert gw.drain()["accepted"] == 0
    event = UsageEvent.objects.get()
    assert event.request_id == request_id and event.client_request_id == "client-1"
    assert event.success and event.deployment_id == deployment.pk and event.model_id == deployment.model_id
    assert (event.prompt_tokens, event.completion_tokens) == (
        body["usage"]["prompt_tokens"],
        body["usage"]["completion_tokens"],
    )
    assert event.use_case == "support" and event.prompt_hash and event.attempt == 1
    # cost from the model's price per 1k tokens, exactly
    assert event.cost == (
        deployment.model.baseline_cost_per_1k_tokens * (event.prompt_tokens + event.completion_tokens) / 1000
    ).quantize(event.cost)


def test_request_overrides_defaults_and_unknown_parameters_are_refused(gw):
    deployment = gw.deployment(temperature=0.3)
    key = gw.key()
    body = {"messages": [{"role": "user", "content": "hi"}], "temperature": 0.9, "top_p": 0.5}
    assert gw.post(deployment, body, key=key).status_code == 200
    assert gw.stub.requests[-1]["json"]["temperature"] == 0.9
    error = _error(gw.post(deployment, {**body, "frobnicate": 1}, key=key), 400, "unknown_parameter")
    assert error["param"] == "frobnicate" and error["type"] == "invalid_request_error"
    _error(gw.post(deployment, {**body, "temperature": 3}, key=key), 400, "invalid_value")
    _error(gw.post(deployment, {**body, "max_tokens": 10**9}, key=key), 400, "invalid_value")
    _error(gw.post(deployment, {"messages": []}, key=key), 400, "invalid_request")
    bad = gw.http.post(gw.url(deployment), content=b"{not json", headers={"Authorization": f"Bearer {key}"})
    _error(bad, 400, "invalid_json")


def test_supported_parameters_limit_what_a_request_may_set(gw):
    model = gw.model(supported_parameters={"temperature": {"min": 0, "max": 1}, "maxTokens": {}})
    deployment = gw.deployment(model=model)
    key = gw.key()
    ok = {"messages": [{"role": "user", "content": "hi"}], "temperature": 0.5, "max_tokens": 5}
    assert gw.post(deployment, ok, key=key).status_code == 200
    _error(gw.post(deployment, {**ok, "temperature": 1.5}, key=key), 400, "invalid_value")
    assert _error(gw.post(deployment, {**ok, "top_p": 0.5}, key=key), 400, "unsupported_parameter")["param"] == "top_p"


def test_keys_and_roles(gw, personas):
    deployment = gw.deployment()
    _error(gw.post(deployment), 401, "missing_api_key")
    _error(gw.post(deployment, key="mh_nope_nope"), 401, "invalid_api_key")
    _error(gw.post(deployment, key="not-a-jwt"), 401, "invalid_api_key")
    # a viewer's key acts with the viewer's role: deployments.invoke is not granted
    _error(gw.post(deployment, key=gw.key("viewer")), 403, "forbidden")
    # a key limited to other deployments
    other = gw.deployment()
    _error(gw.post(deployment, key=gw.key(deployment_ids=[other.pk])), 403, "forbidden")
    assert gw.post(other, key=gw.key(deployment_ids=[other.pk])).status_code == 200
    # a JWT works too
    from tests.conftest import bearer

    response = gw.http.post(
        gw.url(deployment),
        json={"messages": [{"role": "user", "content": "x"}]},
        headers={"Authorization": bearer(personas["manager"])},
    )
    assert response.status_code == 200


def test_security_authorization_and_open_deployments(gw):
    listed = gw.deployment(authorization=["viewer"])
    assert gw.post(listed, key=gw.key("viewer")).status_code == 200
    _error(gw.post(listed, key=gw.key("developer")), 403, "forbidden")
    open_deployment = gw.deployment(authentication=False)
    assert gw.post(open_deployment).status_code == 200


def test_revoked_key_is_refused(gw, personas):
    from gateway.models import ApiKey
    from gateway.services import api_key_revoke

    deployment = gw.deployment()
    key = gw.key()
    assert gw.post(deployment, key=key).status_code == 200
    api_key_revoke(ApiKey.objects.get(owner=personas["developer"]))
    _error(gw.post(deployment, key=key), 401, "invalid_api_key")


def test_unknown_and_stopped_deployments(gw):
    import uuid

    key = gw.key()
    missing = gw.http.post(
        f"/api/v1/modelhub/deployments/{uuid.uuid4()}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "x"}]},
        headers={"Authorization": f"Bearer {key}"},
    )
    _error(missing, 404, "deployment_not_found")
    stopped = gw.deployment(status="stopped")
    error = _error(gw.post(stopped, key=key), 409, "deployment_not_running")
    assert "stopped" in error["message"]
    assert gw.drain()["accepted"] == 0  # no call was attempted


def test_oversized_body_is_413(gw, settings):
    deployment = gw.deployment()
    key = gw.key()
    big = {"messages": [{"role": "user", "content": "x" * (settings.GATEWAY_MAX_BODY_BYTES + 10)}]}
    _error(gw.post(deployment, big, key=key), 413, "request_too_large")


def test_upstream_5xx_and_timeout_are_errors_and_still_usage(gw):
    failing = gw.deployment(upstreamModel="stub-fail-503", retries=1)
    key = gw.key()
    error = _error(gw.post(failing, key=key, headers={"X-Request-Id": "c-503"}), 502, "upstream_error")
    assert "503" in error["message"]
    slow = gw.deployment(upstreamModel="stub-slow-3000", timeout=0.3)
    _error(gw.post(slow, key=key), 504, "upstream_timeout")
    assert gw.drain()["accepted"] == 3  # two attempts (one retry) + the timeout
    attempts = list(UsageEvent.objects.filter(client_request_id="c-503").order_by("attempt"))
    assert [(e.attempt, e.success, e.error_code) for e in attempts] == [
        (1, False, "upstream_error"),
        (2, False, "upstream_error"),
    ]
    assert UsageEvent.objects.filter(error_code="upstream_timeout").count() == 1


def test_fallback_takes_over_and_each_attempt_is_recorded(gw):
    backup = gw.deployment()
    primary = gw.deployment(upstreamModel="stub-fail-429", fallbacks=[str(backup.pk)])
    response = gw.post(primary, key=gw.key(), headers={"X-Request-Id": "c-fb"})
    assert response.status_code == 200, response.text
    assert response.headers["x-modelhub-fallback"] == str(backup.pk)
    gw.drain()
    events = list(UsageEvent.objects.filter(client_request_id="c-fb").order_by("attempt"))
    assert [(e.deployment_id, e.success) for e in events] == [(primary.pk, False), (backup.pk, True)]
    assert events[0].error_code == "upstream_rate_limited"


def test_flaky_upstream_is_retried(gw):
    deployment = gw.deployment(upstreamModel="stub-flaky-2", retries=2)
    response = gw.post(deployment, key=gw.key(), headers={"X-Request-Id": "c-flaky"})
    assert response.status_code == 200
    gw.drain()
    assert list(
        UsageEvent.objects.filter(client_request_id="c-flaky").order_by("attempt").values_list("success", flat=True)
    ) == [False, False, True]


def test_response_cache_hits_are_free_and_flagged(gw):
    deployment = gw.deployment(temperature=0, responseCache={"enabled": True, "ttlSeconds": 60})
    key = gw.key()
    first = gw.post(deployment, key=key)
    second = gw.post(deployment, key=key)
    assert first.headers["x-modelhub-cache"] == "miss" and second.headers["x-modelhub-cache"] == "hit"
    assert first.json() == second.json()
    assert len([r for r in gw.stub.requests if r["path"] == "/v1/chat/completions"]) == 1
    gw.drain()
    hit = UsageEvent.objects.get(cached=True)
    assert hit.cost == 0 and hit.completion_tokens > 0
    # a non-deterministic call is never cached
    warm = {"messages": [{"role": "user", "content": "hello there"}], "temperature": 0.7}
    assert "x-modelhub-cache" not in gw.post(deployment, warm, key=key).headers


def test_streaming_relays_chunks_and_is_priced(gw):
    deployment = gw.deployment()
    key = gw.key()
    body = {"messages": [{"role": "user", "content": "tell me a story"}], "stream": True}
    with gw.http.stream("POST", gw.url(deployment), json=body, headers={"Authorization": f"Bearer {key}"}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line.startswith("data:")]
    assert lines[-1] == "data: [DONE]"
    # the upstream was asked for usage; the client did not ask, so no usage-only chunk reached it
    assert gw.stub.requests[-1]["json"]["stream_options"] == {"include_usage": True}
    assert all('"usage"' not in line for line in lines)
    gw.drain()
    event = UsageEvent.objects.get()
    assert event.success and event.completion_tokens == len(["stub", "reply", "to:", "tell", "me", "a", "story"])
    assert event.cost > 0


def test_embeddings_and_models(gw):
    embedding = gw.deployment(model=gw.model(model_type="embedding"))
    key = gw.key()
    response = gw.post(embedding, {"input": ["a b", "c"]}, key=key, op="embeddings")
    assert response.status_code == 200, response.text
    assert len(response.json()["data"]) == 2
    _error(gw.post(embedding, key=key), 400, "model_not_supported")
    chat = gw.deployment()
    _error(gw.post(chat, {"input": "x"}, key=key, op="embeddings"), 400, "model_not_supported")
    listed = gw.http.get(gw.url(chat, "models"), headers={"Authorization": f"Bearer {key}"})
    assert listed.json()["data"][0]["id"] == "stub-model"
    _error(gw.http.get(gw.url(chat)), 405, "method_not_allowed")


def test_feedback_attaches_to_an_earlier_call(gw):
    deployment = gw.deployment()
    key = gw.key()
    request_id = gw.post(deployment, key=key).headers["x-request-id"]
    # the event is still in the buffer: feedback drains it first
    response = gw.post(deployment, {"requestId": request_id, "userRating": 4, "accepted": True}, key=key, op="feedback")
    assert response.status_code == 200, response.text
    event = UsageEvent.objects.get(request_id=request_id)
    assert (event.user_rating, event.accepted) == (4, True)
    _error(
        gw.post(deployment, {"requestId": "nope", "userRating": 4}, key=key, op="feedback"), 404, "request_not_found"
    )
    _error(
        gw.post(deployment, {"requestId": request_id, "userRating": 9}, key=key, op="feedback"), 400, "invalid_value"
    )


def test_private_upstreams_are_refused_unless_allowed(gw, settings):
    settings.GATEWAY_UPSTREAM_ALLOWLIST = ["*"]
    deployment = gw.deployment()
    error = _error(gw.post(deployment, key=gw.key()), 502, "upstream_not_allowed")
    assert "127.0.0.1" in error["message"]
    internal = gw.deployment(host="10.1.2.3", port=80)
    _error(gw.post(internal, key=gw.key()), 502, "upstream_not_allowed")
    gw.drain()
    assert not UsageEvent.objects.filter(success=True).exists()


def test_simulated_provider_answers_without_network(gw):
    gw.simulated("openai")
    model = gw.model(name="gpt-sim", provider="openai", baseline_success_rate=1.0)
    deployment = gw.deployment(model=model, host=None)
    key = gw.key()
    first = gw.post(deployment, key=key).json()
    second = gw.post(deployment, key=key).json()
    assert first["choices"][0]["message"]["content"] == second["choices"][0]["message"]["content"]
    assert first["system_fingerprint"] == "modelhub-simulated"
    failing = gw.deployment(model=gw.model(name="gpt-down", provider="openai", baseline_success_rate=0.0), host=None)
    _error(gw.post(failing, key=key), 502, "upstream_error")


def test_provider_without_credentials_is_a_clear_503(gw):
    deployment = gw.deployment(model=gw.model(name="claude-x", provider="anthropic"), host=None)
    error = _error(gw.post(deployment, key=gw.key()), 503, "provider_not_configured")
    assert "anthropic" in error["message"]


def test_deployment_rate_limit_is_429_with_headers(gw):
    deployment = gw.deployment(rateLimiting={"requestsPerMinute": 2, "burstLimit": 10})
    key = gw.key()
    assert [gw.post(deployment, key=key).status_code for _ in range(2)] == [200, 200]
    refused = gw.post(deployment, key=key)
    _error(refused, 429, "rate_limit_exceeded")
    assert int(refused.headers["retry-after"]) >= 1 and refused.headers["x-ratelimit-limit"] == "2"


def test_gateway_rate_limits_switched_off_lift_the_deployment_limit(gw, settings):
    deployment = gw.deployment(rateLimiting={"requestsPerMinute": 1, "burstLimit": 1})
    key = gw.key()
    settings.GATEWAY_RATE_LIMITS_ENABLED = False
    answers = [gw.post(deployment, key=key) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert "x-ratelimit-limit" not in answers[0].headers
    settings.GATEWAY_RATE_LIMITS_ENABLED = True
    assert gw.post(deployment, key=key).status_code == 200  # the switched-off calls counted in no window
    _error(gw.post(deployment, key=key), 429, "rate_limit_exceeded")


def test_calls_show_up_in_the_model_detail_and_the_dashboard_after_a_rollup(gw, client_for):
    from analytics.rollup import rollup

    deployment = gw.deployment()
    key = gw.key()
    for _ in range(3):
        assert gw.post(deployment, key=key, headers={"X-Modelhub-User": "end-user-1"}).status_code == 200
    _error(
        gw.post(deployment, {"messages": [{"role": "user", "content": "x"}], "temperature": 9}, key=key),
        400,
        "invalid_value",
    )
    gw.drain()
    rollup()
    admin = client_for("admin")
    detail = admin.get(f"/api/v1/modelhub/models/{deployment.model_id}").json()
    assert detail["usage"]["totalRequests"] == 3 and detail["usage"]["uniqueUsers"] == 1
    assert [d["lastUsed"] is not None for d in detail["deployments"]] == [True]
    summary = admin.get("/api/v1/modelhub/analytics/dashboard").json()["summary"]
    assert summary["totalRequests"] == 3 and float(summary["totalCost"]) > 0


def test_a_key_used_on_event_ingestion_gets_its_last_used_time(gw, personas):
    from gateway.models import ApiKey

    deployment = gw.deployment()
    key = gw.key("developer")
    event = {
        "requestId": "via-key-1",
        "timestamp": "2026-01-01T00:00:00Z",
        "modelId": str(deployment.model_id),
        "latencyMs": 10,
        "promptTokens": 1,
        "completionTokens": 1,
        "success": True,
    }
    from django.utils import timezone

    event["timestamp"] = timezone.now().isoformat()
    response = gw.http.post(
        "/api/v1/modelhub/analytics/events", json={"events": [event]}, headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 200, response.text
    assert ApiKey.objects.get(owner=personas["developer"]).last_used_at is not None


@pytest.mark.parametrize(
    ("role", "expected"),
    [("admin", 200), ("manager", 200), ("developer", 200), ("analyst", 403), ("viewer", 403), ("outsider", 200)],
)
def test_every_role_against_the_gateway_routes(gw, role, expected):
    """deployments.invoke from the role matrix, with a key of each role (the outsider is a developer who owns
    nothing: calling is not acting on the deployment, so ownership does not matter)."""
    deployment = gw.deployment()
    key = gw.key(role)
    assert gw.post(deployment, key=key).status_code == expected
    listed = gw.http.get(gw.url(deployment, "models"), headers={"Authorization": f"Bearer {key}"})
    assert listed.status_code == expected
    embedder = gw.deployment(model=gw.model(model_type="embedding"))
    assert gw.post(embedder, {"input": "x"}, key=key, op="embeddings").status_code == expected
    # feedback: allowed roles get past authorization to the lookup (no such call here: 404)
    feedback = gw.post(deployment, {"requestId": "nope", "userRating": 5}, key=key, op="feedback")
    assert feedback.status_code == (404 if expected == 200 else 403)
