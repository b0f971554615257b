"""Reads of users."""

from __future__ import annotations

import math
from typing import Any

from django.db.models import QuerySet

from modelhub.accounts.limits import RateLimits, merge, role_limits
from modelhub.accounts.models import RateLimitOverride, User


def user_queryset() -> QuerySet[User]:
    return User.objects.all().order_by("username", "id")


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
