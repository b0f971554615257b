"""Reads of users."""

from __future__ import annotations

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
    user = User.objects.filter(pk=user_id, is_active=True).select_related("rate_limit_override").only(
        "id", "role", *(f"rate_limit_override__{f}" for f in (
            "requests_per_minute", "requests_per_hour", "requests_per_day", "burst_limit", "endpoints"))
    ).first()
    if user is None:
        return None
    try:
        override = user.rate_limit_override
    except RateLimitOverride.DoesNotExist:
        override = None
    return merge(role_limits(user.role), override)
