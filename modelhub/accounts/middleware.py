"""Applies the rate limits to every API request, before the view - and says so in headers.

Running as middleware (not a DRF throttle) means refused, unauthenticated and
unknown-URL requests are limited and carry ``X-RateLimit-*`` too. Identity is the
user of a valid Bearer access token, or the owner of a valid hub API key (``Bearer mh_...``,
resolved through the ``API_KEYS`` slot and remembered ``RATE_LIMITS_CACHE_SECONDS`` per
process, so a program counts against its owner's limits), otherwise the client address
(``REMOTE_ADDR``; behind a proxy, uvicorn's ``--proxy-headers`` with
``--forwarded-allow-ips`` sets it from ``X-Forwarded-For``).

If Redis is unreachable, reads are served without limiting (fail open, so a cache
outage does not take the API down) while writes - logins included, where
unlimited attempts would mean unlimited password guesses - answer 503 until it
recovers. The error is logged at most every 30 s and ``/health`` reports the
cache ``down``.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.tokens import AccessToken

from modelhub.accounts.limits import RateLimits, anonymous_limits
from modelhub.api.authentication import API_KEY_PREFIX, API_KEYS
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


class _ApiKeyOwnerCache:
    """SHA-256 of an API key -> its owner's id (None: unknown or refused), kept ``RATE_LIMITS_CACHE_SECONDS``.

    Only the rate-limit identity comes from here: whether the key may be used is decided on every
    request by the authentication of the routes that take keys. A revoked key counts as anonymous
    traffic here at most that long after the revocation.
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        self._entries: dict[str, tuple[float, str | None]] = {}
        self._lock = threading.Lock()
        self.max_entries = max_entries

    def owner_id(self, secret: str) -> str | None:
        digest = hashlib.sha256(secret.encode(errors="replace")).hexdigest()
        now = time.monotonic()
        entry = self._entries.get(digest)
        if entry and entry[0] > now:
            return entry[1]
        owner_id: str | None = None
        try:
            for found in API_KEYS.collect(secret):
                if found is not None:
                    owner_id = str(found[0].pk)
                    break
        except AuthenticationFailed:
            owner_id = None  # revoked, expired, deactivated owner: anonymous traffic
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[digest] = (now + settings.RATE_LIMITS_CACHE_SECONDS, owner_id)
        return owner_id

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


api_key_owners = _ApiKeyOwnerCache()
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
    if header.startswith("Bearer " + API_KEY_PREFIX):
        user_id = api_key_owners.owner_id(header[7:].strip())
        limits = user_limits.get(user_id) if user_id else None
        if limits is not None:
            return f"u:{user_id}", limits
    elif header.startswith("Bearer "):
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
