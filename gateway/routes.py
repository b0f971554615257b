"""A deployment as the gateway calls it: a :class:`Route`, read from the database and cached briefly.

A route holds everything one call needs without another query: the deployment's status, owner,
environment and configuration (default parameters, networking, security, fallbacks, response
cache), and the model's upstream name, provider, type, price, limits and baseline metrics (which
the simulated provider draws from). Routes are kept ``GATEWAY_ROUTE_CACHE_SECONDS`` (2 s) in each
process; a lifecycle transition clears the cache of the process that made it at once (the
``DEPLOYMENT_CHANGED`` slot), and other processes see it within that time.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings

from catalog import selectors as catalog_selectors
from deployments import selectors as deployment_selectors

RUNNING = "running"


@dataclass(frozen=True)
class Route:
    deployment_id: uuid.UUID
    status: str
    environment: str
    owner_id: uuid.UUID | None
    model_id: uuid.UUID
    model_name: str
    model_version: str
    provider: str
    model_type: str
    max_tokens: int
    price_per_1k: Decimal
    supported_parameters: dict[str, Any]
    baseline_latency_ms: float
    baseline_success_rate: float
    baseline_tokens: int
    parameters: dict[str, Any]
    networking: dict[str, Any]
    security: dict[str, Any]
    fallbacks: tuple[uuid.UUID, ...] = ()
    cache_ttl_seconds: int = 0  # 0: the response cache is off
    upstream_model: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def host(self) -> str | None:
        return self.networking.get("host") or None

    @property
    def timeout(self) -> float:
        return float(self.networking.get("timeout", 30))

    @property
    def retries(self) -> int:
        return int(self.networking.get("retries", 0))

    @property
    def authentication(self) -> bool:
        return self.security.get("authentication", True) is not False

    @property
    def authorization(self) -> frozenset[str]:
        return frozenset(str(v) for v in self.security.get("authorization") or ())

    @property
    def rate_limit(self) -> tuple[int, int]:
        limits = self.security.get("rateLimiting") or {}
        return int(limits.get("requestsPerMinute", 600)), int(limits.get("burstLimit", 60))


def _build(deployment_id: uuid.UUID, target: dict[str, Any], model: Any) -> Route:
    config = target["config"]
    networking = dict(config.get("networking") or {})
    cache = networking.get("responseCache") or {}
    fallbacks = []
    for raw in networking.get("fallbacks") or ():
        try:
            fallbacks.append(uuid.UUID(str(raw)))
        except ValueError:
            continue
    return Route(
        deployment_id=deployment_id,
        status=target["status"],
        environment=target["environment"],
        owner_id=target["ownerId"],
        model_id=model.pk,
        model_name=model.name,
        model_version=model.version,
        provider=model.provider,
        model_type=model.model_type,
        max_tokens=model.max_tokens,
        price_per_1k=model.baseline_cost_per_1k_tokens,
        supported_parameters=dict(model.supported_parameters or {}),
        baseline_latency_ms=float(model.baseline_avg_latency_ms),
        baseline_success_rate=float(model.baseline_success_rate),
        baseline_tokens=int(model.baseline_avg_tokens_per_request or 0),
        parameters=dict(config.get("parameters") or {}),
        networking=networking,
        security=dict(config.get("security") or {}),
        fallbacks=tuple(fallbacks[: settings.GATEWAY_MAX_FALLBACKS]),
        cache_ttl_seconds=int(cache.get("ttlSeconds", 300)) if cache.get("enabled") else 0,
        upstream_model=networking.get("upstreamModel") or model.name,
    )


def load_routes(ids: list[uuid.UUID]) -> dict[uuid.UUID, Route]:
    """Routes for those of ``ids`` that are deployments (two queries, whatever the count)."""
    targets = deployment_selectors.invocation_targets(ids)
    models = catalog_selectors.models_in_bulk({t["modelId"] for t in targets.values()})
    return {pk: _build(pk, t, models[t["modelId"]]) for pk, t in targets.items() if t["modelId"] in models}


class RouteCache:
    """deployment id -> (expires, Route or None), per process."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._entries: dict[uuid.UUID, tuple[float, Route | None]] = {}
        self._lock = threading.Lock()
        self.max_entries = max_entries

    def get(self, deployment_id: uuid.UUID) -> tuple[bool, Route | None]:
        entry = self._entries.get(deployment_id)
        if entry is not None and entry[0] > time.monotonic():
            return True, entry[1]
        return False, None

    def put_many(self, wanted: list[uuid.UUID], found: dict[uuid.UUID, Route]) -> None:
        expires = time.monotonic() + settings.GATEWAY_ROUTE_CACHE_SECONDS
        with self._lock:
            if len(self._entries) + len(wanted) > self.max_entries:
                self._entries.clear()
            for pk in wanted:
                self._entries[pk] = (expires, found.get(pk))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


route_cache = RouteCache()


def routes(ids: list[uuid.UUID]) -> dict[uuid.UUID, Route]:
    """Cached :func:`load_routes` (synchronous: the gateway calls it through ``sync_to_async``)."""
    out: dict[uuid.UUID, Route] = {}
    missing = []
    for pk in ids:
        hit, route = route_cache.get(pk)
        if not hit:
            missing.append(pk)
        elif route is not None:
            out[pk] = route
    if missing:
        found = load_routes(missing)
        route_cache.put_many(missing, found)
        out.update(found)
    return out


def cached_route(deployment_id: uuid.UUID) -> tuple[bool, Route | None]:
    """Without touching the database: (hit, route)."""
    return route_cache.get(deployment_id)
