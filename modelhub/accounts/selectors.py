"""Reads of users."""

from __future__ import annotations

import contextlib
import math
import secrets
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import QuerySet

from modelhub.accounts.limits import RateLimits, merge, role_limits
from modelhub.accounts.models import RateLimitOverride, User


def user_queryset() -> QuerySet[User]:
    return User.objects.all().order_by("username", "id")


# --- the user of an authenticated request --------------------------------------------------------------
# Every request with an access token loads its user (so a deactivation, a role change or a deletion counts
# from the next request); from the cache, under a per-user version that every save or delete of the user
# moves on (``AccountsConfig.ready``: at once and again at commit). The version is read with the entry in
# one round trip and before the database, so an entry read before a change is never served after it.


def _user_keys(user_id: Any) -> tuple[str, str]:
    return f"accounts:user-version:{user_id}", f"accounts:user:{user_id}"


def request_user(user_id: Any) -> User | None:
    """The user an access token names (None: no such user), from the cache while the user is unchanged."""
    version_key, key = _user_keys(user_id)
    seconds = settings.AUTH_USER_CACHE_SECONDS
    found = cache.get_many([version_key, key]) if seconds > 0 else {}
    version = found.get(version_key)
    entry = found.get(key)
    if version is not None and entry is not None and entry[0] == version:
        return entry[1]
    user = User.objects.filter(pk=user_id).first()
    if seconds > 0 and user is not None:
        if version is None:  # never set, or evicted: a fresh random one cannot meet an old entry's
            cache.add(version_key, secrets.randbits(62), None)
            version = cache.get(version_key)
        if version is not None:
            cache.set(key, (version, user), seconds)
    return user


def user_changed(user_id: Any) -> None:
    """Called when a user is saved or deleted: no request is served the cached user of before."""
    version_key, _ = _user_keys(user_id)
    with contextlib.suppress(ValueError):  # no version yet: then no entry can be served either
        cache.incr(version_key)


def rate_limits_for(user: User) -> RateLimits:
    """The user's effective limits: the role's defaults, with the admin's override on top."""
    override = RateLimitOverride.objects.filter(user=user).first()
    return merge(role_limits(user.role), override)


def rate_limits_for_user_id(user_id: str) -> RateLimits | None:
    """Effective limits by id in one query; None for unknown or inactive users."""
    user = (
        User.objects.filter(pk=user_id, is_active=True)
        .select_related("rate_limit_override")
        .only(
            "id",
            "role",
            *(
                f"rate_limit_override__{f}"
                for f in ("requests_per_minute", "requests_per_hour", "requests_per_day", "burst_limit", "endpoints")
            ),
        )
        .first()
    )
    if user is None:
        return None
    try:
        override = user.rate_limit_override
    except RateLimitOverride.DoesNotExist:
        override = None
    return merge(role_limits(user.role), override)


def rate_limit_status(user: User) -> dict[str, Any]:
    """``GET /rate-limits``: effective limits and, per window, how much of it is used right now."""
    from django.conf import settings

    from modelhub.api.ratelimit import get_limiter

    limits = rate_limits_for(user)
    windows = limits.windows(f"u:{user.pk}")
    enforced = settings.RATE_LIMITS_ENABLED
    try:
        states = get_limiter().peek(windows).states
        usage = {
            s.window.name: {
                "limit": s.window.limit,
                "used": s.used,
                "remaining": s.remaining,
                "resetSeconds": max(1, math.ceil(s.reset_ms / 1000)),
            }
            for s in states
        }
    except Exception:
        enforced = False
        usage = {w.name: {"limit": w.limit, "used": 0, "remaining": w.limit, "resetSeconds": 0} for w in windows}
    return {"limits": limits.as_spec(), "usage": usage, "enforced": enforced}
