"""What both socket transports share: who the client is, where it may connect from, how fast
it may talk, and the error envelope they send.

Authentication is the API's own (:class:`modelhub.api.authentication.JWTAuthentication`):
simplejwt's ``AccessToken`` checks signature, type (a refresh token is refused) and expiry;
the user is loaded and must exist and be active. On top of that, a token whose ``jti`` is
on simplejwt's blacklist is refused, as ``POST auth/token/verify`` does.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlparse

from channels.security.websocket import OriginValidator
from django.conf import settings
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.settings import api_settings as jwt_settings

from modelhub import realtime
from modelhub.api.exceptions import ErrorCode, TokenExpired, error_body

MAX_TOKEN_LENGTH = 4096

# Close codes (private-use range 4000-4999, plus RFC 6455's 1009); the README lists them.
CLOSE_UNAUTHORIZED = 4401  # missing, invalid, expired, revoked token; unknown or inactive user; auth timeout
CLOSE_TOO_MANY_MESSAGES = 4429
CLOSE_MESSAGE_TOO_BIG = 1009
CLOSE_TOO_SLOW = 1013  # "try again later": the client did not read its events


class AuthFailure(Exception):
    """Why a socket is not (or no longer) authenticated; ``code`` is the spec's error code."""

    def __init__(self, code: ErrorCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Session:
    """An authenticated socket's identity: what it may receive and until when."""

    user_id: str
    username: str
    role: str
    expires_at: float  # the access token's ``exp`` (epoch seconds)

    @property
    def groups(self) -> list[str]:
        return [*realtime.groups_for_role(self.role), realtime.user_group_name(self.user_id)]

    @property
    def events(self) -> list[str]:
        return realtime.events_for_role(self.role)

    def seconds_left(self) -> float:
        return self.expires_at - time.time()

    def describe(self) -> dict[str, Any]:
        """The ``auth:ok`` payload."""
        expires = datetime.fromtimestamp(self.expires_at, UTC).isoformat().replace("+00:00", "Z")
        return {
            "userId": self.user_id,
            "username": self.username,
            "role": self.role,
            "events": self.events,
            "expiresAt": expires,
        }


def authenticate(raw_token: str) -> Session:
    """Validate an access token the way the API does (runs queries: call through database_sync_to_async)."""
    from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

    from modelhub.api.authentication import JWTAuthentication

    if not isinstance(raw_token, str) or not raw_token or len(raw_token) > MAX_TOKEN_LENGTH:
        raise AuthFailure(ErrorCode.UNAUTHORIZED, "A valid access token is required.")
    backend = JWTAuthentication()
    try:
        token = backend.get_validated_token(raw_token.encode())
    except TokenExpired:
        raise AuthFailure(ErrorCode.TOKEN_EXPIRED, "The access token has expired.") from None
    except AuthenticationFailed:
        raise AuthFailure(ErrorCode.UNAUTHORIZED, "The access token is invalid.") from None
    if BlacklistedToken.objects.filter(token__jti=token.get(jwt_settings.JTI_CLAIM)).exists():
        raise AuthFailure(ErrorCode.UNAUTHORIZED, "The token has been revoked.")
    try:
        user = backend.get_user(token)  # unknown or inactive users are refused here
    except AuthenticationFailed:
        raise AuthFailure(ErrorCode.UNAUTHORIZED, "The user is unknown or inactive.") from None
    return Session(user_id=str(user.pk), username=user.username, role=user.role, expires_at=float(token["exp"]))


def revalidate(session: Session) -> Session:
    """Re-read the session's user (after a change to it): still active? which role now?"""
    from django.contrib.auth import get_user_model

    row = get_user_model().objects.filter(pk=session.user_id).values("is_active", "role", "username").first()
    if row is None or not row["is_active"]:
        raise AuthFailure(ErrorCode.UNAUTHORIZED, "The user is unknown or inactive.")
    return Session(user_id=session.user_id, username=row["username"], role=row["role"], expires_at=session.expires_at)


def error_envelope(code: ErrorCode, message: str, request_id: str, details: Any = None) -> dict[str, Any]:
    """The spec's ``ErrorResponse``; ``requestId`` is the connection's id."""
    body = error_body(code, message, details)
    body["error"]["requestId"] = request_id
    return body


# --- Where the token comes from ---------------------------------------------------------------


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def query_token(query_string: str) -> str | None:
    values = parse_qs(query_string, keep_blank_values=False).get("token")
    return values[0] if values else None


def token_from_scope(scope: dict[str, Any]) -> str | None:
    """An ASGI websocket scope's token: ``Authorization: Bearer`` header first, then ``?token=``."""
    authorization = header(scope.get("headers", ()), b"authorization")
    return bearer_token(authorization) or query_token(scope.get("query_string", b"").decode("latin1"))


def header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin1")
    return None


# --- Origin -----------------------------------------------------------------------------------


def _allowed_hosts() -> list[str]:
    # As channels' AllowedHostsOriginValidator, but read per call (settings can change in tests).
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:
        hosts = ["localhost", "127.0.0.1", "[::1]"]
    return hosts


def origin_allowed(origin: str | None) -> bool:
    """A browser's ``Origin`` must name one of ALLOWED_HOSTS (any port, channels' matching rules);
    clients that send no Origin (servers, CLIs) are not browsers and are let through - they
    still need a token."""
    if origin is None:
        return True
    try:
        parsed = urlparse(origin)
    except ValueError:
        return False
    return OriginValidator(None, _allowed_hosts()).validate_origin(parsed)


class NonBrowserAwareOriginValidator(OriginValidator):
    """channels' OriginValidator against ALLOWED_HOSTS; refuses the handshake (HTTP 403) for a
    foreign Origin, admits a missing one."""

    def __init__(self, application: Any):
        super().__init__(application, [])

    def valid_origin(self, parsed_origin: Any) -> bool:
        if parsed_origin is None:
            return True
        return OriginValidator(None, _allowed_hosts()).validate_origin(parsed_origin)


# --- Inbound limits ---------------------------------------------------------------------------


class TokenBucket:
    """Inbound messages per socket: ``burst`` at once, refilled at ``rate`` per second."""

    def __init__(self, burst: int, rate: float):
        self.burst = burst
        self.rate = rate
        self.tokens = float(burst)
        self.updated = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    @classmethod
    def from_settings(cls) -> TokenBucket:
        return cls(settings.REALTIME_INBOUND_BURST, settings.REALTIME_INBOUND_PER_SECOND)
