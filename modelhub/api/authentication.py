"""simplejwt's authentication, telling an expired token apart from a bad one; hub API keys (through a slot)."""

from __future__ import annotations

import contextlib
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.exceptions import ValidationError
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt import authentication
from rest_framework_simplejwt.exceptions import ExpiredTokenError, InvalidToken, TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import AccessToken
from rest_framework_simplejwt.utils import get_md5_hash_password

from modelhub.api.exceptions import TokenExpired
from modelhub.registry import Slot


class JWTAuthentication(authentication.JWTAuthentication):
    """Bearer access tokens only.

    An expired token answers ``TOKEN_EXPIRED`` so clients know to refresh; a
    forged, malformed, ``alg: none`` or refresh-typed token answers
    ``UNAUTHORIZED``. The user is looked up on every request (from the cache while it is unchanged:
    :func:`request_user`), so deactivation takes effect at once.
    """

    def authenticate(self, request):
        # The rate-limit middleware already verified this very token; don't decode it twice.
        cached = getattr(request._request, "validated_access_token", None)
        if cached is not None:
            header = self.get_header(request)
            raw = self.get_raw_token(header) if header is not None else None
            if raw is not None and raw.decode() == str(cached.token):
                return self.get_user(cached), cached
        return super().authenticate(request)

    def get_user(self, validated_token):
        """simplejwt's checks (the user exists, is active, and - if configured - the token predates no
        password change), on the user from ``request_user``: cached while the user is unchanged."""
        try:
            user_id = validated_token[api_settings.USER_ID_CLAIM]
        except KeyError as exc:
            raise InvalidToken("Token contained no recognizable user identification") from exc
        try:
            user = request_user(user_id)
        except (ValueError, ValidationError):  # not an id at all (the signing key made it, so: never)
            user = None
        if user is None:
            raise AuthenticationFailed("User not found", code="user_not_found")
        if api_settings.CHECK_USER_IS_ACTIVE and not user.is_active:
            raise AuthenticationFailed("User is inactive", code="user_inactive")
        if api_settings.CHECK_REVOKE_TOKEN and validated_token.get(
            api_settings.REVOKE_TOKEN_CLAIM
        ) != get_md5_hash_password(user.password):
            raise AuthenticationFailed("The user's password has been changed.", code="password_changed")
        return user

    def get_validated_token(self, raw_token: bytes) -> AccessToken:
        try:
            return AccessToken(raw_token)
        except ExpiredTokenError as exc:
            raise TokenExpired() from exc
        except TokenError as exc:
            raise InvalidToken(str(exc.args[0]) if exc.args else "Token is invalid.") from exc


# --- the user of an authenticated request --------------------------------------------------------------
# Every request with an access token loads its user (so a deactivation, a role change or a deletion counts
# from the next request); from the cache, under a per-user version that every save or delete of the user
# moves on (``AccountsConfig.ready``: at once and again at commit). The version is read with the entry in
# one round trip and before the database, so an entry read before a change is never served after it.


def _user_keys(user_id: Any) -> tuple[str, str]:
    return f"accounts:user-version:{user_id}", f"accounts:user:{user_id}"


def request_user(user_id: Any) -> Any:
    """The user an access token names (None: no such user), from the cache while the user is unchanged.

    With the cache unreachable it reads the database (requests keep working, as reads do without the rate
    limiter); a user changed during an outage is seen when Redis is back empty or the entry expires."""
    version_key, key = _user_keys(user_id)
    seconds = settings.AUTH_USER_CACHE_SECONDS
    version = None
    if seconds > 0:
        try:
            found = cache.get_many([version_key, key])
            version = found.get(version_key)
            entry = found.get(key)
            if version is not None and entry is not None and entry[0] == version:
                return entry[1]
            if version is None:
                # Never set, or evicted: a fresh random one (it cannot meet an old entry's), set before the
                # database is read, so a change committed after that read moves it on.
                cache.add(version_key, secrets.randbits(62), None)
                version = cache.get(version_key)
        except Exception:  # any cache failure: the database answers, uncached
            version = None
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is not None and version is not None:
        with contextlib.suppress(Exception):
            cache.set(key, (version, user), seconds)
    return user


def user_changed(user_id: Any) -> None:
    """Called when a user is saved or deleted: no request is served the cached user of before."""
    version_key, _ = _user_keys(user_id)
    # No version yet: then no entry can be served either. The cache unreachable: the save goes on (see above).
    with contextlib.suppress(Exception):
        cache.incr(version_key)


API_KEYS = Slot(
    "api-keys",
    "Providers ``(secret: str) -> (user, key) | None`` that resolve a hub API key (the gateway registers one); "
    "a provider raises AuthenticationFailed for a key it knows but refuses (revoked, expired).",
)
API_KEY_PREFIX = "mh_"


class ApiKeyAuthentication(authentication.JWTAuthentication):
    """``Authorization: Bearer mh_...`` hub API keys, for the routes that accept them (events ingestion).

    A Bearer value that is not an API key is left to :class:`JWTAuthentication`; an API key that no
    provider knows is refused outright.
    """

    def authenticate(self, request):
        header = self.get_header(request)
        raw = self.get_raw_token(header) if header is not None else None
        if raw is None or not raw.startswith(API_KEY_PREFIX.encode()):
            return None
        secret = raw.decode(errors="replace")
        for found in API_KEYS.collect(secret):
            if found is not None:
                return found
        raise InvalidToken("Unknown API key.")
