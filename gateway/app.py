"""The gateway: each deployment's OpenAI-compatible surface, as native async ASGI code.

Routes (under a deployment's ``endpoint``, i.e. ``/api/v1/modelhub/deployments/{id}``):

* ``POST {endpoint}/v1/chat/completions`` (``stream: true`` answers server-sent events),
* ``POST {endpoint}/v1/embeddings`` (embedding models),
* ``GET {endpoint}/v1/models``,
* ``POST {endpoint}/v1/feedback`` (``{"requestId", "userRating", "accepted"}`` for an earlier call).

:mod:`modelhub.asgi` hands these paths here before Django: a call spends its time waiting for the
upstream, so it must not hold one of the WSGI pool's threads. The database is reached only through
``sync_to_async`` on a cache miss (routes, keys, credentials are cached for seconds).

One call, in order: route (404 unknown deployment) -> authentication (API key or JWT; none if the
deployment's ``security.authentication`` is false) -> authorization (the role matrix's
``deployments.invoke``, or the deployment's ``security.authorization`` list of roles and key ids) ->
the deployment's rate limit (``security.rateLimiting``; one Redis script, exact across processes) ->
running? (409 naming the status) -> body (bounded, checked: :mod:`gateway.openai`) -> response cache
-> attempts: the deployment, retried ``networking.retries`` times on 429/5xx/timeouts, then each
fallback deployment in order -> the answer. Every attempt becomes a usage event (its own
``requestId``, the call's ``clientRequestId``, ``attempt`` 1, 2, ...) handed to the usage buffer
before the answer's last byte is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import re
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from django.conf import settings

from analytics.services import token_cost
from costs import services as cost_services
from experiments import selectors as experiment_selectors
from gateway import buffer as usage_buffer
from gateway import cache as response_cache
from gateway import routes as route_store
from gateway.adapters import Outcome, Stream, get_adapter, upstream_for
from gateway.openai import GatewayError, chat_request, embedding_request, estimate_tokens, parse_json
from gateway.routes import Route
from gateway.services import find_api_key, hash_secret, key_cache, key_problem
from modelhub import metrics
from modelhub.accounts.limits import MINUTE_MS, SECOND_MS
from modelhub.api.authentication import API_KEY_PREFIX
from modelhub.api.ratelimit import Window, async_hit
from modelhub.db import db_in_thread
from modelhub.roles import has_permission

logger = logging.getLogger("modelhub.gateway")

PATH = re.compile(
    r"^/api/v1/modelhub/deployments/(?P<id>[0-9a-fA-F-]{32,36})/v1/(?P<op>chat/completions|embeddings|models|feedback)/?$"
)
PREFIX = re.compile(r"^/api/v1/modelhub/deployments/[^/]+/v1(/|$)")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")
METHODS = {"chat/completions": b"POST", "embeddings": b"POST", "models": b"GET", "feedback": b"POST"}
BACKOFF_SECONDS = (0.05, 0.2, 0.5, 1.0)
# Calls in flight in this process.
_in_flight = 0


_last_warning: dict[str, float] = {}


def _warn(what: str, exc: BaseException) -> None:
    """Log a degraded dependency at most every 30 s per kind (a burst of failures is one line, not thousands)."""
    now = time.monotonic()
    if now - _last_warning.get(what, 0.0) > 30:
        _last_warning[what] = now
        logger.warning(
            "%s (%s: %s); further occurrences in the next 30 s are not logged", what, type(exc).__name__, exc
        )


def handles(path: str) -> bool:
    """Whether ``path`` is a gateway route (asked by :mod:`modelhub.asgi`)."""
    return PREFIX.match(path) is not None


class Principal:
    __slots__ = ("key_id", "role", "user_id")

    def __init__(self, user_id: str | None, role: str | None, key_id: str | None) -> None:
        self.user_id, self.role, self.key_id = user_id, role, key_id


# --- ASGI plumbing ---------------------------------------------------------------------------


def _headers(scope: dict[str, Any]) -> dict[bytes, bytes]:
    return {k.lower(): v for k, v in scope.get("headers") or ()}


async def _send_json(send, status: int, body: bytes, headers: dict[str, str]) -> None:
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw.extend((k.encode(), v.encode()) for k, v in headers.items())
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive, headers: dict[bytes, bytes]) -> bytes:
    limit = settings.GATEWAY_MAX_BODY_BYTES
    declared = headers.get(b"content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise GatewayError("request_too_large", f"The request body is larger than {limit} bytes.")
        except ValueError:
            raise GatewayError("invalid_request", "Content-Length is not a number.") from None
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionAbortedError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise GatewayError("request_too_large", f"The request body is larger than {limit} bytes.")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


# --- who is calling --------------------------------------------------------------------------


async def _key_principal(secret: str, route: Route) -> Principal:
    hit, key = key_cache.get(hash_secret(secret))
    if not hit:
        key = await db_in_thread(find_api_key)(secret)
    if key is None:
        raise GatewayError("invalid_api_key", "Incorrect API key provided.")
    problem = key_problem(key)
    if problem:
        raise GatewayError("invalid_api_key", problem)
    if key.deployment_ids and str(route.deployment_id) not in key.deployment_ids:
        raise GatewayError("forbidden", "This API key is not allowed to call this deployment.")
    return Principal(str(key.owner_id), key.owner.role, str(key.pk))


_users: dict[str, tuple[float, tuple[str, bool] | None]] = {}


def _user_role(user_id: str) -> tuple[str, bool] | None:
    from django.contrib.auth import get_user_model

    row = get_user_model().objects.filter(pk=user_id).values_list("role", "is_active").first()
    return (row[0], row[1]) if row else None


async def _jwt_principal(token: str) -> Principal:
    from rest_framework_simplejwt.exceptions import TokenError
    from rest_framework_simplejwt.tokens import AccessToken

    try:
        user_id = str(AccessToken(token)["user_id"])
    except (TokenError, KeyError):
        raise GatewayError(
            "invalid_api_key", "Incorrect API key provided (neither a hub key nor a valid token)."
        ) from None
    entry = _users.get(user_id)
    if entry is None or entry[0] < time.monotonic():
        found = await db_in_thread(_user_role)(user_id)
        if len(_users) > 10_000:
            _users.clear()
        entry = (time.monotonic() + 5.0, found)
        _users[user_id] = entry
    if entry[1] is None or not entry[1][1]:
        raise GatewayError("invalid_api_key", "The token's user does not exist or is deactivated.")
    return Principal(user_id, entry[1][0], None)


async def _principal(route: Route, headers: dict[bytes, bytes]) -> Principal | None:
    raw = headers.get(b"authorization")
    if raw is None:
        if not route.authentication:
            return None
        raise GatewayError(
            "missing_api_key", "This deployment needs an API key: send Authorization: Bearer <hub API key>."
        )
    value = raw.decode("latin-1")
    if not value.startswith("Bearer ") or not value[7:].strip():
        raise GatewayError("invalid_api_key", "Authorization must be 'Bearer <hub API key>'.")
    token = value[7:].strip()
    principal = await (_key_principal(token, route) if token.startswith(API_KEY_PREFIX) else _jwt_principal(token))
    if route.authentication:
        allowed = route.authorization
        permitted = (
            (principal.role in allowed or (principal.key_id or "") in allowed)
            if allowed
            else has_permission(principal.role, "deployments.invoke")
        )
        if not permitted:
            raise GatewayError(
                "forbidden", f"Role {principal.role!r} may not call this deployment (security.authorization)."
            )
    return principal


async def _rate_limit(route: Route) -> dict[str, str]:
    if (
        not settings.GATEWAY_RATE_LIMITS_ENABLED
    ):  # the operator's switch (README "Gateway"), e.g. for bench/ratelimit.py
        return {}
    per_minute, burst = route.rate_limit
    factor = _budget_throttle(route)
    if factor < 1:  # a throttle budget threshold is crossed: the deployment's limit scaled down
        per_minute, burst = max(1, int(per_minute * factor)), max(1, int(burst * factor))
    base = f"rl:{{d:{route.deployment_id}}}"
    windows = [Window("burst", burst, SECOND_MS, f"{base}:s"), Window("minute", per_minute, MINUTE_MS, f"{base}:m")]
    try:
        decision = await async_hit(windows)
    except Exception as exc:
        _warn("deployment rate limiter unavailable; serving without its limit", exc)
        return {}
    headers = decision.headers()
    if not decision.allowed:
        retry = decision.retry_after_seconds
        headers["Retry-After"] = str(retry)
        metrics.rate_limited.labels("gateway").inc()
        raise GatewayError(
            "rate_limit_exceeded",
            f"Rate limit of this deployment reached ({decision.tightest.window.name}); retry in {retry} s.",
            headers=headers,
        )
    return headers


async def _route(deployment_id: uuid.UUID) -> Route | None:
    hit, route = route_store.cached_route(deployment_id)
    if hit:
        return route
    found = await db_in_thread(route_store.routes)([deployment_id])
    return found.get(deployment_id)


# --- usage events -----------------------------------------------------------------------------


def _observe(route: Route, event: dict[str, Any], failed: bool) -> None:
    """An upstream attempt in /metrics: its latency, tokens and cost (the catalog's price, as ingestion)."""
    provider, model = route.provider, route.model_name
    metrics.gateway_upstream_duration.labels(provider, model, "error" if failed else "ok").observe(
        event["latencyMs"] / 1000
    )
    prompt, completion = event["promptTokens"], event["completionTokens"]
    if prompt:
        metrics.gateway_tokens.labels(provider, model, "prompt").inc(prompt)
    if completion:
        metrics.gateway_tokens.labels(provider, model, "completion").inc(completion)
    if prompt or completion:
        metrics.gateway_cost.labels(provider, model).inc(float(token_cost(prompt + completion, route.price_per_1k)))


class Call:
    """One client call: its ids, who and what it is for, and the usage events of its attempts."""

    def __init__(self, route: Route, principal: Principal | None, headers: dict[bytes, bytes], user: str) -> None:
        client_id = headers.get(b"x-request-id", b"").decode("latin-1")
        self.client_request_id = client_id if REQUEST_ID.match(client_id) else os.urandom(16).hex()
        self.route = route
        self.principal = principal
        header_user = headers.get(b"x-modelhub-user", b"").decode("utf-8", "replace")[:255]
        self.user = header_user or user
        self.use_case = headers.get(b"x-modelhub-use-case", b"").decode("utf-8", "replace")[:100]
        self.items: list[dict[str, Any]] = []
        self.prompt_hash = ""
        self.experiment: tuple[str, str] | None = None  # (experimentId, variant) when the call is in one

    def record(
        self,
        route: Route,
        *,
        latency_ms: float,
        prompt_tokens: int,
        completion_tokens: int,
        error: GatewayError | None = None,
        cached: bool = False,
    ) -> str:
        request_id = f"gw-{os.urandom(16).hex()}"
        event: dict[str, Any] = {
            "requestId": request_id,
            "timestamp": _now_iso(),
            "modelId": str(route.model_id),
            "deploymentId": str(route.deployment_id),
            "environment": route.environment,
            "userId": self.user,
            "latencyMs": round(max(0.0, latency_ms), 3),
            "promptTokens": max(0, int(prompt_tokens)),
            "completionTokens": max(0, int(completion_tokens)),
            "success": error is None,
            "useCase": self.use_case,
            "promptHash": self.prompt_hash,
            "clientRequestId": self.client_request_id,
            "attempt": len(self.items) + 1,
            "cached": cached,
        }
        if self.experiment is not None:
            event["experimentId"], event["variant"] = self.experiment
        if cached:
            event["cost"] = 0.0
        if error is not None:
            event["errorCode"] = error.situation[:64]
            event["errorMessage"] = error.message[:1000]
        self.items.append({"event": event, "apiKeyId": self.principal.key_id if self.principal else None})
        if not cached:
            _observe(route, event, error is not None)
        return request_id

    async def flush(self) -> None:
        """Hand the events to the buffer (before the answer completes); never lose them."""
        if not self.items:
            return
        items, self.items = self.items, []
        try:
            await usage_buffer.get_buffer().push(items)
        except Exception as exc:
            _warn("usage buffer unavailable; storing events directly", exc)
            await db_in_thread(usage_buffer._ingest)(items)


# --- budgets (costs, issue #12): reserve before every attempt, settle after -----------------------


def _budget_target(route: Route) -> tuple[str, str, str]:
    return (str(route.model_id), route.provider, route.environment)


def _budget_throttle(route: Route) -> float:
    """The throttle factor the last reservations saw (no round trip; 1.0 when no threshold is crossed)."""
    plan = cost_services.gate_plan_cached(route.model_id, route.provider, route.environment)
    if plan is None or not plan.throttles:
        return 1.0
    return cost_services.gate_throttle_factor(plan, _budget_target(route))


async def _budget_plan(route: Route):
    plan = cost_services.gate_plan_cached(route.model_id, route.provider, route.environment)
    if plan is not None:
        return plan
    try:
        return await db_in_thread(cost_services.gate_plan)(route.model_id, route.provider, route.environment)
    except Exception as exc:
        _warn("budgets cannot be read; calls are refused until they can", exc)
        raise GatewayError("service_unavailable", "Budgets cannot be read right now; retry shortly.") from None


async def _reserve(call: Call, route: Route, payload: dict[str, Any], kind: str, stream: bool = False):
    """Hold the attempt's worst-case cost (prompt estimate + the output cap, which is set when absent)
    against every budget that applies; ``budget_exceeded`` when a blocking one cannot hold it. The hold
    outlives the attempt: 2 x the timeout + 60 s, and a stream's hold its whole allowed duration on top
    (``GATEWAY_STREAM_MAX_SECONDS``, which ``_stream`` enforces), so it never lapses while in use."""
    plan = await _budget_plan(route)
    if not plan.active:
        return None
    cap = 0
    if kind != "embeddings":
        if payload.get("max_tokens") is None and payload.get("max_completion_tokens") is None:
            payload["max_tokens"] = route.max_tokens
        cap = int(payload.get("max_tokens") or payload.get("max_completion_tokens") or route.max_tokens)
    amount = token_cost(estimate_tokens(getattr(call, "prompt_chars", 0)) + cap, route.price_per_1k)
    try:
        return await cost_services.gate_reserve(
            plan,
            _budget_target(route),
            amount,
            hold_id=cost_services.new_hold_id(),
            ttl_seconds=route.timeout * 2 + 60 + (settings.GATEWAY_STREAM_MAX_SECONDS if stream else 0),
        )
    except cost_services.BudgetExceeded as exc:
        raise GatewayError("budget_exceeded", exc.message) from None


async def _settle(call: Call, hold, route: Route, prompt_tokens: int, completion_tokens: int) -> None:
    """Settle ``hold`` with the cost of the event just recorded (the pricing ingestion applies)."""
    if hold is None:
        return
    call.items[-1]["event"]["reservationId"] = hold.id
    await cost_services.gate_settle(hold, token_cost(prompt_tokens + completion_tokens, route.price_per_1k))


async def _budget_start(route: Route) -> Route:
    """A reroute threshold crossed (as the last reservations saw it): the budget's cheaper deployment."""
    plan = await _budget_plan(route)
    target = cost_services.gate_reroute_target(plan, _budget_target(route)) if plan.reroutes else None
    if target is None or target == route.deployment_id:
        return route
    found = await db_in_thread(route_store.routes)([target])
    other = found.get(target)
    return other if other is not None and other.status == route_store.RUNNING else route


# --- the operations -------------------------------------------------------------------------------


async def _chain(route: Route) -> list[Route]:
    """The deployment, then its running fallbacks in order."""
    if not route.fallbacks:
        return [route]
    found = await db_in_thread(route_store.routes)(list(route.fallbacks))
    return [route] + [found[f] for f in route.fallbacks if f in found and found[f].status == route_store.RUNNING]


async def _attempts(call: Call, kind: str, body: dict[str, Any], stream: bool, include_usage: bool):
    """Try the chain; returns (route, outcome-or-stream, request id) of the attempt that answered, or raises."""
    last: GatewayError | None = None
    for index, route in enumerate(await _chain(await _budget_start(call.route))):
        try:
            upstream = await upstream_for(route)
        except GatewayError as exc:
            last = exc
            if index == 0 and len(call.route.fallbacks) == 0:
                raise
            continue
        adapter = get_adapter(upstream.adapter)
        payload = {**body, "model": route.upstream_model}
        for retry in range(route.retries + 1):
            hold = await _reserve(call, route, payload, kind, stream)
            started = time.perf_counter()
            try:
                if stream:
                    result: Outcome | Stream = await adapter.chat_stream(
                        upstream, route, payload, route.timeout, include_usage
                    )
                elif kind == "embeddings":
                    result = await adapter.embeddings(upstream, route, payload, route.timeout)
                else:
                    result = await adapter.chat(upstream, route, payload, route.timeout)
            except BaseException:  # cancelled (client gone) or a bug: nothing recorded, nothing spent
                await asyncio.shield(cost_services.gate_settle(hold, Decimal(0)))
                raise
            if result.error is None:
                call.hold = hold
                return route, result, started
            latency = (time.perf_counter() - started) * 1000
            call.record(route, latency_ms=latency, prompt_tokens=0, completion_tokens=0, error=result.error)
            await _settle(call, hold, route, 0, 0)
            last = result.error
            if not result.retryable:
                raise result.error
            if retry < route.retries:
                await asyncio.sleep(BACKOFF_SECONDS[min(retry, len(BACKOFF_SECONDS) - 1)])
    raise last or GatewayError("upstream_error", "No deployment could answer.")


async def _complete(call: Call, kind: str, body: dict[str, Any], prompt_chars: int, send, headers) -> None:
    route = call.route
    call.prompt_chars = prompt_chars
    cache_key = None
    if route.cache_ttl_seconds and response_cache.cacheable(kind, body, False):
        cache_key = response_cache.key(route.deployment_id, kind, body)
        started = time.perf_counter()
        hit = await response_cache.get(cache_key)
        metrics.cache_lookups.labels("gateway_response", "miss" if hit is None else "hit").inc()
        if hit is not None:
            entry = orjson.loads(hit)
            request_id = call.record(
                route,
                latency_ms=(time.perf_counter() - started) * 1000,
                prompt_tokens=entry["p"],
                completion_tokens=entry["c"],
                cached=True,
            )
            await call.flush()
            answer = entry["b"].encode()
            await _send_json(send, 200, answer, {**headers, "x-request-id": request_id, "x-modelhub-cache": "hit"})
            return
    try:
        answered_by, outcome, started = await _attempts(call, kind, body, False, False)
    except GatewayError:
        await call.flush()
        raise
    prompt = outcome.prompt_tokens or estimate_tokens(prompt_chars)
    request_id = call.record(
        answered_by,
        latency_ms=(time.perf_counter() - started) * 1000,
        prompt_tokens=prompt,
        completion_tokens=outcome.completion_tokens,
    )
    await _settle(call, call.hold, answered_by, prompt, outcome.completion_tokens)
    await call.flush()
    extra = {"x-request-id": request_id}
    if answered_by is not route:
        extra["x-modelhub-fallback"] = str(answered_by.deployment_id)
    if cache_key is not None:
        extra["x-modelhub-cache"] = "miss"
        value = orjson.dumps({"p": prompt, "c": outcome.completion_tokens, "b": outcome.body.decode()})
        await response_cache.put(cache_key, value, route.cache_ttl_seconds)
    await _send_json(send, 200, outcome.body, {**headers, **extra})


async def _watch_disconnect(receive, gone: asyncio.Event) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            gone.set()
            return


async def _stream(call: Call, body: dict[str, Any], include_usage: bool, prompt_chars: int, receive, send, headers):
    call.prompt_chars = prompt_chars
    try:
        answered_by, stream, started = await _attempts(call, "chat", body, True, include_usage)
    except GatewayError:
        await call.flush()
        raise
    request_id_hint = f"gw-{os.urandom(16).hex()}"  # set as the event's id below, so the header is known up front
    raw = [
        (b"content-type", b"text/event-stream"),
        (b"cache-control", b"no-cache"),
        (b"x-request-id", request_id_hint.encode()),
    ]
    raw.extend((k.encode(), v.encode()) for k, v in headers.items())
    if answered_by is not call.route:
        raw.append((b"x-modelhub-fallback", str(answered_by.deployment_id).encode()))
    gone = asyncio.Event()
    watcher = asyncio.create_task(_watch_disconnect(receive, gone))
    disconnected = False
    limit = settings.GATEWAY_STREAM_MAX_SECONDS  # the hold lives this long (see _reserve): never past it
    try:
        await send({"type": "http.response.start", "status": 200, "headers": raw})
        deadline = asyncio.timeout(max(0.0, limit - (time.perf_counter() - started)))
        try:
            async with deadline:
                async for chunk in stream.chunks():
                    if gone.is_set():
                        disconnected = True
                        break
                    try:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    except OSError:
                        disconnected = True
                        break
        except TimeoutError:
            if not deadline.expired():
                raise
            stream.failure = GatewayError(
                "upstream_timeout", f"The stream passed the gateway's limit of {limit:g} s; it ends here."
            )
        if stream.failure is not None and not disconnected:
            error = b"data: " + stream.failure.body() + b"\n\n"
            try:
                await send({"type": "http.response.body", "body": error, "more_body": True})
            except OSError:
                disconnected = True
    finally:
        watcher.cancel()

        async def finish() -> None:
            try:
                await stream.aclose()
            except Exception as exc:  # the upstream connection is gone anyway; the billing still happens
                _warn("upstream stream could not be closed cleanly", exc)
            # What was relayed is billed: the provider's usage when it came, else the relayed chunks
            # (one token each, as providers stream them) and the prompt's estimate.
            complete = stream.completion_tokens is not None and not disconnected
            prompt = stream.prompt_tokens if stream.prompt_tokens else estimate_tokens(prompt_chars)
            completion = stream.completion_tokens if complete else stream.content_chunks
            call.record(
                answered_by,
                latency_ms=(time.perf_counter() - started) * 1000,
                prompt_tokens=prompt,
                completion_tokens=completion,
                error=stream.failure,
            )
            call.items[-1]["event"]["requestId"] = request_id_hint
            await _settle(call, call.hold, answered_by, prompt, completion)
            await call.flush()

        # Close, record, settle and flush run to their end even when this task is cancelled meanwhile
        # (server shutdown, a cancelled client task): shielded, and waited for until done; then the
        # cancellation goes on. Otherwise the usage is lost and the hold sits until it lapses.
        bookkeeping = asyncio.ensure_future(finish())
        cancelled = False
        while not bookkeeping.done():
            try:
                await asyncio.shield(bookkeeping)
            except asyncio.CancelledError:
                cancelled = True
        if cancelled:
            raise asyncio.CancelledError
        bookkeeping.result()
    if not disconnected:
        with contextlib.suppress(OSError):
            await send({"type": "http.response.body", "body": b"", "more_body": False})


def _models_body(route: Route) -> bytes:
    return orjson.dumps(
        {
            "object": "list",
            "data": [{"id": route.upstream_model, "object": "model", "created": 0, "owned_by": route.provider}],
        }
    )


async def _feedback(route: Route, raw: bytes) -> bytes:
    from analytics import services as analytics_services

    body = parse_json(raw)
    unknown = sorted(body.keys() - {"requestId", "userRating", "accepted"})
    if unknown:
        raise GatewayError("unknown_parameter", f"Unrecognized argument: '{unknown[0]}'.", param=unknown[0])
    request_id = body.get("requestId")
    if type(request_id) is not str or not 1 <= len(request_id) <= 128:
        raise GatewayError(
            "invalid_request", "'requestId' (the x-request-id of the call) is required.", param="requestId"
        )
    rating, accepted = body.get("userRating"), body.get("accepted")
    if rating is not None and (type(rating) is not int or not 1 <= rating <= 5):
        raise GatewayError("invalid_value", "'userRating' must be an integer from 1 to 5.", param="userRating")
    if accepted is not None and type(accepted) is not bool:
        raise GatewayError("invalid_value", "'accepted' must be true or false.", param="accepted")
    if rating is None and accepted is None:
        raise GatewayError("invalid_request", "Give 'userRating' and/or 'accepted'.")

    def record() -> bool:
        kwargs = {
            "request_id": request_id,
            "deployment_id": route.deployment_id,
            "user_rating": rating,
            "accepted": accepted,
        }
        if analytics_services.record_feedback(**kwargs):
            return True
        usage_buffer.drain(max_batches=5)  # the call may still be in the buffer
        return analytics_services.record_feedback(**kwargs)

    if not await db_in_thread(record)():
        raise GatewayError("request_not_found", f"No call {request_id!r} of this deployment was recorded.")
    return orjson.dumps({"requestId": request_id, "recorded": True})


# --- experiments (issue #11): the variant of the call's end user -------------------------------


async def _experiment_route(
    route: Route, headers: dict[bytes, bytes], body: dict[str, Any], principal: Principal | None
) -> tuple[Route, tuple[str, str, str] | None]:
    """For a deployment with a running experiment: the route that serves the unit's variant (another
    model's running deployment in the same environment when the variant names one) with the variant's
    parameter defaults, and ``(experimentId, variant, unit)``. The plan is cached per process
    (``experiments.selectors``); no database write here - assignments are stored from the tagged events."""
    hit, plan, routes = experiment_selectors.cached_plan(route.deployment_id)
    if not hit:
        plan, routes = await db_in_thread(experiment_selectors.load_plan)(route.deployment_id)
    if plan is None:
        return route, None
    unit = headers.get(b"x-modelhub-user", b"").decode("utf-8", "replace")[:255]
    if not unit and isinstance(body.get("user"), str):
        unit = body["user"][:255]
    if not unit and principal is not None and principal.user_id:
        unit = f"account:{principal.user_id}"
    if not unit:
        unit = f"req:{os.urandom(12).hex()}"  # no user at all: the request is the unit
    attributes = _experiment_attributes(headers)
    use_case = headers.get(b"x-modelhub-use-case", b"").decode("utf-8", "replace")[:100]
    variant, _ = plan.assign(unit, attributes, {"environment": route.environment, "useCase": use_case})
    if variant is None:
        return route, None
    target = route
    if variant.name in routes:
        other = await _route(routes[variant.name])
        if other is None or other.status != route_store.RUNNING:
            return route, None
        target = other
    elif variant.model_id != str(route.model_id):
        return route, None  # the variant's model has no running deployment here: served as usual, not counted
    if variant.configuration:
        target = dataclasses.replace(target, parameters={**target.parameters, **variant.configuration})
    return target, (plan.experiment_id, variant.name, unit)


def _experiment_attributes(headers: dict[bytes, bytes]) -> dict[str, Any]:
    """``X-Modelhub-User-Attributes``: a JSON object of the rule context's user attributes (<= 2 KB)."""
    raw = headers.get(b"x-modelhub-user-attributes")
    if not raw or len(raw) > 2048:
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(value, dict):
        return {}
    cap = experiment_selectors.MAX_ATTRIBUTE_CHARS  # rules never see a longer value (ReDoS, README "Experiments")
    return {str(k)[:64]: str(v)[:cap] for k, v in value.items() if isinstance(v, (str, int, float, bool))}


def _expose(call: Call, exposure: tuple[str, str, str] | None) -> None:
    if exposure is None:
        return
    call.experiment = (exposure[0], exposure[1])
    if not call.user and not exposure[2].startswith("req:"):
        call.user = exposure[2]  # the unit the variant was drawn for is the event's user


async def _handle(scope, receive, send) -> None:
    headers = _headers(scope)
    match = PATH.match(scope["path"])
    if match is None:
        raise GatewayError("not_found", f"Unknown gateway route {scope['path']!r}.")
    try:
        deployment_id = uuid.UUID(match["id"])
    except ValueError:
        raise GatewayError("deployment_not_found", "No deployment with this id.") from None
    op = match["op"]
    if scope["method"].encode() != METHODS[op]:
        raise GatewayError("method_not_allowed", f"{op} answers {METHODS[op].decode()} only.")
    route = await _route(deployment_id)
    if route is None:
        raise GatewayError("deployment_not_found", f"No deployment {deployment_id}.")
    principal = await _principal(route, headers)
    limit_headers = await _rate_limit(route)
    if route.status != route_store.RUNNING:
        raise GatewayError(
            "deployment_not_running",
            f"Deployment {deployment_id} is {route.status}; only a running deployment answers.",
            headers=limit_headers,
        )
    if op == "models":
        await _send_json(send, 200, _models_body(route), limit_headers)
        return
    content_type = headers.get(b"content-type", b"application/json").split(b";")[0].strip().lower()
    if content_type not in (b"application/json", b""):
        raise GatewayError("unsupported_media_type", "Send the body as application/json.")
    raw = await _read_body(receive, headers)
    if op == "feedback":
        await _send_json(send, 200, await _feedback(route, raw), limit_headers)
        return
    body = parse_json(raw)
    route, exposure = await _experiment_route(route, headers, body, principal)
    if op == "embeddings":
        if route.model_type != "embedding":
            raise GatewayError("wrong_model_type", f"{route.model_name} is a {route.model_type} model, not embeddings.")
        upstream_body, chars, user = embedding_request(body, max_inputs=settings.GATEWAY_MAX_EMBEDDING_INPUTS)
        call = Call(route, principal, headers, user)
        _expose(call, exposure)
        await _complete(call, "embeddings", upstream_body, chars, send, limit_headers)
        return
    if route.model_type == "embedding":
        raise GatewayError("wrong_model_type", f"{route.model_name} is an embedding model; use /v1/embeddings.")
    request = chat_request(
        body,
        parameters=route.parameters,
        supported=route.supported_parameters,
        model_max_tokens=route.max_tokens,
        max_messages=settings.GATEWAY_MAX_MESSAGES,
    )
    call = Call(route, principal, headers, request.user)
    call.prompt_hash = request.prompt_hash
    _expose(call, exposure)
    if request.stream:
        await _stream(call, request.body, request.include_usage, request.prompt_chars, receive, send, limit_headers)
    else:
        await _complete(call, "chat", request.body, request.prompt_chars, send, limit_headers)


async def application(scope, receive, send) -> None:
    """The ASGI entry point for gateway paths; every failure answers in OpenAI's error shape."""
    started = False
    status = 0
    code = ""
    began = time.perf_counter()

    async def tracking_send(message):
        nonlocal started, status
        if message["type"] == "http.response.start":
            started = True
            status = message["status"]
        await send(message)

    global _in_flight
    _in_flight += 1
    try:
        await _handle(scope, receive, tracking_send)
    except GatewayError as exc:
        code = exc.situation
        if not started:
            await _send_error(tracking_send, exc)
    except ConnectionAbortedError:
        return
    except Exception:
        logger.exception("gateway error on %s", scope.get("path"))
        code = "internal_error"
        if not started:
            error = GatewayError("internal_error", "The gateway failed on this request; it has been logged.")
            await _send_error(tracking_send, error)
    finally:
        _in_flight -= 1
        if status:  # in /metrics with the API's requests: the route pattern, the status, the error code
            route = _ROUTE_LABEL.get(_op(scope.get("path", "")), "/api/v1/modelhub/deployments/{id}/v1/{unknown}")
            metrics.http_requests.labels(route, scope.get("method", ""), str(status)).inc()
            metrics.http_duration.labels(route, scope.get("method", "")).observe(time.perf_counter() - began)
            if status >= 400:
                metrics.http_errors.labels(route, code or f"HTTP_{status}").inc()


_ROUTE_LABEL = {op: f"/api/v1/modelhub/deployments/{{id}}/v1/{op}" for op in METHODS}


def _op(path: str) -> str:
    match = PATH.match(path)
    return match["op"] if match else ""


async def _send_error(send, error: GatewayError) -> None:
    await _send_json(send, error.status, error.body(), error.response_headers())
