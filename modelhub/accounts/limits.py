"""Effective rate limits: the spec's ``RateLimits`` for a user (role default + admin override)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from modelhub.api.ratelimit import Window

ENDPOINT_KEY = re.compile(r"^(GET|POST|PUT|PATCH|DELETE|OPTIONS|HEAD) /[A-Za-z0-9_/{}.\-]*$")
MAX_LIMIT = 10_000_000
MAX_ENDPOINTS = 50

MINUTE_MS, HOUR_MS, DAY_MS, SECOND_MS = 60_000, 3_600_000, 86_400_000, 1_000


@dataclass(frozen=True)
class RateLimits:
    requests_per_minute: int
    requests_per_hour: int
    requests_per_day: int
    burst_limit: int
    endpoints: dict[str, dict[str, int]] = field(default_factory=dict)

    @classmethod
    def from_spec(cls, data: dict[str, Any]) -> RateLimits:
        return cls(
            requests_per_minute=int(data["requestsPerMinute"]),
            requests_per_hour=int(data["requestsPerHour"]),
            requests_per_day=int(data["requestsPerDay"]),
            burst_limit=int(data["burstLimit"]),
            endpoints={k: dict(v) for k, v in data.get("endpoints", {}).items()},
        )

    def as_spec(self) -> dict[str, Any]:
        return {
            "requestsPerMinute": self.requests_per_minute,
            "requestsPerHour": self.requests_per_hour,
            "requestsPerDay": self.requests_per_day,
            "burstLimit": self.burst_limit,
            "endpoints": self.endpoints,
        }

    def windows(self, identity: str, endpoint: str | None = None) -> list[Window]:
        """The windows a request to ``endpoint`` counts in.

        An endpoint override replaces the per-minute and burst limits for that
        endpoint (with counters of its own); hour and day always count every request.
        """
        base = f"rl:{{{identity}}}"
        override = self.endpoints.get(endpoint) if endpoint else None
        if override:
            minute = Window("minute", override["requestsPerMinute"], MINUTE_MS, f"{base}:ep:{endpoint}:m")
            burst = Window("burst", override["burstLimit"], SECOND_MS, f"{base}:ep:{endpoint}:s")
        else:
            minute = Window("minute", self.requests_per_minute, MINUTE_MS, f"{base}:m")
            burst = Window("burst", self.burst_limit, SECOND_MS, f"{base}:s")
        return [
            burst,
            minute,
            Window("hour", self.requests_per_hour, HOUR_MS, f"{base}:h"),
            Window("day", self.requests_per_day, DAY_MS, f"{base}:d"),
        ]


def role_limits(role: str) -> RateLimits:
    defaults = settings.RATE_LIMITS_BY_ROLE.get(role) or settings.RATE_LIMITS_BY_ROLE["viewer"]
    return RateLimits.from_spec(defaults)


def anonymous_limits() -> RateLimits:
    return RateLimits.from_spec(settings.RATE_LIMITS_ANONYMOUS)


def merge(base: RateLimits, override: Any | None) -> RateLimits:
    """``override`` is a ``RateLimitOverride`` (or None): its non-NULL fields win."""
    if override is None:
        return base
    return RateLimits(
        requests_per_minute=override.requests_per_minute or base.requests_per_minute,
        requests_per_hour=override.requests_per_hour or base.requests_per_hour,
        requests_per_day=override.requests_per_day or base.requests_per_day,
        burst_limit=override.burst_limit or base.burst_limit,
        endpoints={**base.endpoints, **(override.endpoints or {})},
    )


def endpoint_errors(value: Any) -> list[str]:
    """What is wrong with an ``endpoints`` object (empty when it is fine)."""
    if not isinstance(value, dict):
        return ["Must be an object mapping 'METHOD /path' to limits."]
    if len(value) > MAX_ENDPOINTS:
        return [f"At most {MAX_ENDPOINTS} endpoints."]
    errors = []
    for key, limits in value.items():
        if not isinstance(key, str) or not ENDPOINT_KEY.fullmatch(key):  # fullmatch: "$" alone lets "\n" through
            errors.append(f"{key!r}: keys look like 'GET /models' or 'POST /auth/token'.")
            continue
        if not isinstance(limits, dict) or set(limits) != {"requestsPerMinute", "burstLimit"}:
            errors.append(f"{key!r}: needs exactly requestsPerMinute and burstLimit.")
            continue
        for name, number in limits.items():
            if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= MAX_LIMIT:
                errors.append(f"{key!r}: {name} must be an integer from 1 to {MAX_LIMIT}.")
    return errors
