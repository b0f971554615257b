"""Applies the rate limits to every API request, before the view - and says so in headers.

Running as middleware (not a DRF throttle) means refused, unauthenticated and
unknown-URL requests are limited and carry ``X-RateLimit-*`` too. Identity is the
user of a valid Bearer access token, otherwise the client address
(``REMOTE_ADDR``; behind a proxy, uvicorn's ``--proxy-headers`` with
``--forwarded-allow-ips`` sets it from ``X-Forwarded-For``).

If Redis is unreachable, reads are served without limiting (fail open, so a cache
outage does not take the API down) while writes - logins included, where
unlimited attempts would mean unlimited password guesses - answer 503 until it
recovers. The error is logged at most every 30 s and ``/health`` reports the
cache ``down``.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve
from rest_framework_simplejwt.tokens import AccessToken

from modelhub.accounts.limits import RateLimits, anonymous_limits
from modelhub.api.exceptions import ErrorCode, error_response
from modelhub.api.ratelimit import get_limiter

logger = logging.getLogger("modelhub.ratelimit")

API_PREFIX = "/api/v1/modelhub"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class _UserLimitsCache:
    """Effective limits per user id, kept ``RATE_LIMITS_CACHE_SECONDS`` in this process."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._entries: dict[str, tuple[float, RateLimits | None]] = {}
        self._lock = threading.Lock()
        self.max_entries = max_entries

    def get(self, user_id: str) -> RateLimits | None:
        now = time.monotonic()
        entry = self._entries.get(user_id)
        if entry and entry[0] > now:
            return entry[1]
        from modelhub.accounts.selectors import rate_limits_for_user_id

        limits = rate_limits_for_user_id(user_id)
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[user_id] = (now + settings.RATE_LIMITS_CACHE_SECONDS, limits)
        return limits

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


user_limits = _UserLimitsCache()
_last_outage_log = 0.0


def endpoint_key(request: HttpRequest) -> str | None:
    """``"GET /models/{id}"`` for ``GET /api/v1/modelhub/models/<uuid>``; None off the API."""
    try:
        match = resolve(request.path_info)
    except Resolver404:
        return None
    path = request.path_info[len(API_PREFIX) :] or "/"
    values = {str(v): ("{id}" if k == "pk" else "{" + k + "}") for k, v in match.kwargs.items()}
    path = "/".join(values.get(segment, segment) for segment in path.split("/"))
    return f"{request.method} {path}"


def identify(request: HttpRequest) -> tuple[str, RateLimits]:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header.startswith("Bearer "):
        try:
            token = AccessToken(header[7:].strip())
            user_id = str(token["user_id"])
            request.validated_access_token = token  # type: ignore[attr-defined]  # DRF's auth reuses it
        except Exception:
            user_id = None
        if user_id:
            limits = user_limits.get(user_id)
            if limits is not None:
                return f"u:{user_id}", limits
    return f"ip:{request.META.get('REMOTE_ADDR') or 'unknown'}", anonymous_limits()


class RateLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not settings.RATE_LIMITS_ENABLED or not request.path_info.startswith(API_PREFIX):
            return self.get_response(request)
        identity, limits = identify(request)
        # Resolving the route costs a URL match; only limits with endpoint overrides need it.
        endpoint = endpoint_key(request) if limits.endpoints else None
        windows = limits.windows(identity, endpoint)
        try:
            decision = get_limiter().hit(windows)
        except Exception:
            self._log_outage()
            if request.method in SAFE_METHODS:
                return self.get_response(request)  # fail open for reads
            response = error_response(
                503,
                ErrorCode.SERVICE_UNAVAILABLE,
                "Rate limiting is unavailable, so changes are refused until it recovers; reads still work.",
            )
            response["Retry-After"] = "5"
            return response
        request.rate_limit = (identity, limits, decision)  # type: ignore[attr-defined]
        if decision.allowed:
            response = self.get_response(request)
        else:
            retry = decision.retry_after_seconds
            response = error_response(
                429,
                ErrorCode.RATE_LIMIT_EXCEEDED,
                f"Rate limit exceeded; retry in {retry} s.",
                details={
                    "retryAfter": retry,
                    "window": decision.tightest.window.name,
                    "endpoint": endpoint or endpoint_key(request),
                },
            )
            response["Retry-After"] = str(retry)
        for name, value in decision.headers().items():
            response[name] = value
        return response

    @staticmethod
    def _log_outage() -> None:
        global _last_outage_log
        now = time.monotonic()
        if now - _last_outage_log > 30:
            _last_outage_log = now
            logger.exception("rate limiter unavailable; serving without limits (fail open)")
