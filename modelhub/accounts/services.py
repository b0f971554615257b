"""Writes to users and their tokens: the API, the admin and commands all come through here."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from modelhub import realtime
from modelhub.accounts.limits import MAX_LIMIT, endpoint_errors
from modelhub.accounts.models import RateLimitOverride, User
from modelhub.api.exceptions import AppError, ErrorCode, Forbidden, InvalidRequest
from modelhub.roles import STAFF_ROLES, Grant, Role, grant_for


class UserAlreadyExists(AppError):
    status_code = 409
    code = ErrorCode.USER_ALREADY_EXISTS
    default_message = "A user with this username already exists."


def _check_may_manage(actor: Any, *, target_role: str | None = None, target: User | None = None) -> None:
    """``users.manage`` from the matrix; ``NON_ADMIN`` grants never touch admins."""
    grant = grant_for(getattr(actor, "role", None), "users.manage")
    if grant is Grant.NONE:
        raise Forbidden("Your role does not allow managing users.")
    if grant is Grant.NON_ADMIN and (target_role == Role.ADMIN or (target is not None and target.role == Role.ADMIN)):
        raise Forbidden("Managers cannot create, promote to, change or deactivate admins.")


def check_user_change(*, actor: Any, target: User | None, role: str | None, is_active: bool | None) -> None:
    """Every rule on who may create or change whom, in one place (API and admin forms)."""
    _check_may_manage(actor, target_role=role, target=target)
    changes_access = (
        (role is not None and role != target.role) or (is_active is not None and is_active != target.is_active)
        if target
        else False
    )
    if target is not None and actor.pk == target.pk and changes_access:
        raise Forbidden("You cannot change your own role or deactivate yourself.")


def _password_errors(password: str, user: User) -> None:
    try:
        validate_password(password, user)
    except DjangoValidationError as exc:
        raise InvalidRequest("The password is too weak.", details={"fields": {"password": exc.messages}}) from None


@transaction.atomic
def user_create(
    *,
    actor: Any,
    username: str,
    password: str,
    role: str = Role.VIEWER,
    email: str = "",
    first_name: str = "",
    last_name: str = "",
) -> User:
    """Create a user with a role; staff access (the Django admin) follows the role."""
    if actor is not None:
        _check_may_manage(actor, target_role=role)
    if role not in Role.values:
        raise InvalidRequest("Unknown role.", details={"allowedValues": {"role": Role.values}})
    if User.objects.filter(username__iexact=username).exists():
        raise UserAlreadyExists(details={"username": username})
    user = User(username=username, email=email, first_name=first_name, last_name=last_name, role=role)
    user.is_staff = role in STAFF_ROLES
    _password_errors(password, user)
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:
        raise UserAlreadyExists(details={"username": username}) from None
    return user


@transaction.atomic
def user_update(*, actor: Any, user: User, **fields: Any) -> User:
    """Change a user's profile, role or active flag.

    Nobody changes their own role or deactivates themselves (no accidental
    lock-out of the last admin); deactivation revokes every refresh token.
    """
    allowed = {"email", "first_name", "last_name", "role", "is_active", "password"}
    unknown = set(fields) - allowed
    if unknown:
        raise InvalidRequest(f"Unknown field(s): {', '.join(sorted(unknown))}.")
    locked = User.objects.select_for_update().get(pk=user.pk)
    access_before = (locked.role, locked.is_active)
    if actor is not None:
        check_user_change(actor=actor, target=locked, role=fields.get("role"), is_active=fields.get("is_active"))
    if "role" in fields:
        if fields["role"] not in Role.values:
            raise InvalidRequest("Unknown role.", details={"allowedValues": {"role": Role.values}})
        locked.role = fields["role"]
        locked.is_staff = locked.role in STAFF_ROLES
    for name in ("email", "first_name", "last_name", "is_active"):
        if name in fields:
            setattr(locked, name, fields[name])
    if fields.get("password"):
        _password_errors(fields["password"], locked)
        locked.set_password(fields["password"])
    locked.save()
    if "is_active" in fields and not locked.is_active:
        transaction.on_commit(lambda: tokens_revoke_for_user(user=locked))
    if access_before != (locked.role, locked.is_active):
        # Open sockets re-check the user: closed when deactivated, new events for a new role.
        transaction.on_commit(lambda: realtime.user_changed(locked.pk))
    return locked


def user_deactivate(*, actor: Any, user: User) -> User:
    return user_update(actor=actor, user=user, is_active=False)


def tokens_revoke_for_user(*, user: User) -> int:
    """Blacklist every outstanding, unexpired refresh token of ``user``. Idempotent."""
    outstanding = OutstandingToken.objects.filter(user=user, expires_at__gt=timezone.now()).exclude(
        blacklistedtoken__isnull=False
    )
    count = 0
    for token in outstanding:
        _, created = BlacklistedToken.objects.get_or_create(token=token)
        count += int(created)
    return count


def logout(*, user: User, refresh: str, everywhere: bool = False) -> None:
    """Blacklist the given refresh token (idempotent: an already revoked one is fine).

    The token must belong to the caller; ``everywhere`` revokes all their sessions.
    """
    try:
        token = RefreshToken(refresh)
    except TokenError as exc:
        if "blacklisted" in str(exc).lower():
            token = None
        else:
            raise InvalidRequest(
                "The refresh token is invalid or expired.", details={"fields": {"refresh": [str(exc)]}}
            ) from None
    if token is not None:
        if str(token.get("user_id")) != str(user.pk):
            raise Forbidden("That refresh token belongs to another user.")
        token.blacklist()
    if everywhere:
        tokens_revoke_for_user(user=user)


_OVERRIDE_FIELDS = ("requests_per_minute", "requests_per_hour", "requests_per_day", "burst_limit", "endpoints")


@transaction.atomic
def rate_limit_override_set(*, actor: Any, user: User, replace: bool = False, **fields: Any) -> RateLimitOverride:
    """Set (PATCH) or replace (PUT) a user's rate-limit override. ``None`` restores the role default.

    Processes pick the change up within ``RATE_LIMITS_CACHE_SECONDS``.
    """
    if grant_for(getattr(actor, "role", None), "ratelimits.manage") is Grant.NONE:
        raise Forbidden("Only admins change rate limits.")
    unknown = set(fields) - set(_OVERRIDE_FIELDS)
    if unknown:
        raise InvalidRequest(f"Unknown field(s): {', '.join(sorted(unknown))}.")
    errors: dict[str, list[str]] = {}
    for name in _OVERRIDE_FIELDS[:4]:
        value = fields.get(name)
        if value is not None and (not isinstance(value, int) or not 1 <= value <= MAX_LIMIT):
            errors[name] = [f"Must be an integer from 1 to {MAX_LIMIT}."]
    if "endpoints" in fields and fields["endpoints"] is not None:
        problems = endpoint_errors(fields["endpoints"])
        if problems:
            errors["endpoints"] = problems
    if errors:
        camel = {
            "requests_per_minute": "requestsPerMinute",
            "requests_per_hour": "requestsPerHour",
            "requests_per_day": "requestsPerDay",
            "burst_limit": "burstLimit",
            "endpoints": "endpoints",
        }
        raise InvalidRequest(
            "The rate limits are invalid.", details={"fields": {camel[k]: v for k, v in errors.items()}}
        )
    override, _ = RateLimitOverride.objects.select_for_update().get_or_create(user=user)
    for name in _OVERRIDE_FIELDS:
        if name in fields or replace:
            value = fields.get(name)
            setattr(override, name, ({} if value is None else value) if name == "endpoints" else value)
    override.updated_by = actor if getattr(actor, "pk", None) else None
    override.save()
    return override


def rate_limit_override_clear(*, actor: Any, user: User) -> None:
    """Back to the role's defaults. Idempotent."""
    if grant_for(getattr(actor, "role", None), "ratelimits.manage") is Grant.NONE:
        raise Forbidden("Only admins change rate limits.")
    RateLimitOverride.objects.filter(user=user).delete()
