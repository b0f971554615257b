"""DRF permission classes derived from the role matrix (``modelhub.roles``)."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from modelhub.roles import Grant, grant_for


def required_permission(view: Any, request: Request) -> str | None:
    """The matrix permission an action needs: ``view.permission_map[action or method]``."""
    mapping: dict[str, str] = getattr(view, "permission_map", {})
    key = getattr(view, "action", None) or request.method.lower()
    if key == "metadata":  # OPTIONS needs nothing beyond a valid token
        return "__any__"
    return mapping.get(key)


class RolePermission(BasePermission):
    """Allows an action when the caller's role grants the permission it maps to.

    Actions missing from ``permission_map`` are refused: a new endpoint is closed
    until someone decides who may use it. For ``OWN`` grants the object-level
    check compares ``getattr(obj, view.owner_field)`` with the caller.
    """

    message = "Your role does not allow this action."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if getattr(view, "action_map", None) is not None and getattr(view, "action", None) is None:
            return True  # the method is not routed: DRF answers 405, which is more useful than 403
        perm = required_permission(view, request)
        if perm == "__any__":
            return True
        return perm is not None and grant_for(user.role, perm) is not Grant.NONE

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        perm = required_permission(view, request)
        if perm == "__any__":
            return True
        grant = grant_for(request.user.role, perm) if perm else Grant.NONE
        if grant is Grant.OWN:
            return is_owner(request.user, obj, getattr(view, "owner_field", "owner"))
        return grant is not Grant.NONE


def is_owner(user: Any, obj: Any, owner_field: str = "owner") -> bool:
    """The object-level ownership check that ``own only`` grants rely on."""
    owner_id = getattr(obj, f"{owner_field}_id", None)
    if owner_id is None:
        owner = getattr(obj, owner_field, None)
        owner_id = getattr(owner, "pk", owner)
    return owner_id is not None and str(owner_id) == str(user.pk)
