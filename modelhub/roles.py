"""The role matrix: the single source for permission classes, ``auth/me``, the admin and the README.

Each permission maps every role to a :class:`Grant`:

* ``ALL`` - on every object;
* ``OWN`` - only on objects the user owns (the object-level check in
  :class:`modelhub.api.permissions.RolePermission`);
* ``NON_ADMIN`` - on every object except those that are, or would become, admin
  (the users row: managers manage users but cannot create, promote to, demote
  from, or deactivate an admin);
* ``NONE``.

``python manage.py roles_table`` prints the README's table from this module.
"""

from __future__ import annotations

from enum import Enum

from django.db import models


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    MANAGER = "manager", "Manager"
    DEVELOPER = "developer", "Developer"
    ANALYST = "analyst", "Analyst"
    VIEWER = "viewer", "Viewer"


class Grant(Enum):
    NONE = "–"
    OWN = "own only"
    NON_ADMIN = "yes, not to or from admin"
    ALL = "yes"


_Y, _O, _N, _NA = Grant.ALL, Grant.OWN, Grant.NONE, Grant.NON_ADMIN
_ROLES = (Role.ADMIN, Role.MANAGER, Role.DEVELOPER, Role.ANALYST, Role.VIEWER)

#                         admin manager developer analyst viewer
_TABLE: dict[str, tuple[Grant, Grant, Grant, Grant, Grant]] = {
    "models.read": (_Y, _Y, _Y, _Y, _Y),
    "models.create": (_Y, _N, _N, _N, _N),
    "models.update": (_Y, _Y, _N, _N, _N),
    "models.delete": (_Y, _N, _N, _N, _N),
    "models.deploy": (_Y, _Y, _Y, _N, _N),
    "deployments.read": (_Y, _Y, _Y, _Y, _Y),
    "deployments.create": (_Y, _Y, _Y, _N, _N),
    "deployments.update": (_Y, _Y, _O, _N, _N),
    "deployments.delete": (_Y, _Y, _O, _N, _N),
    "deployments.scale": (_Y, _Y, _O, _N, _N),
    # Calling a running deployment through the gateway (unless its security.authorization says otherwise).
    "deployments.invoke": (_Y, _Y, _Y, _N, _N),
    "experiments.read": (_Y, _Y, _Y, _Y, _Y),
    "experiments.create": (_Y, _Y, _Y, _N, _N),
    "experiments.update": (_Y, _Y, _O, _N, _N),
    "experiments.delete": (_Y, _Y, _O, _N, _N),
    "analytics.read": (_Y, _Y, _Y, _Y, _N),
    "analytics.ingest": (_Y, _Y, _Y, _N, _N),
    "alerts.acknowledge": (_Y, _Y, _Y, _N, _N),
    "marketplace.read": (_Y, _Y, _Y, _Y, _Y),
    "marketplace.purchase": (_Y, _Y, _Y, _N, _N),
    # Listings, plans and terms: create, update, publish, delist.
    "marketplace.manage": (_Y, _Y, _N, _N, _N),
    # Access requests to approval-required listings: approve or reject.
    "marketplace.approve": (_Y, _Y, _N, _N, _N),
    "marketplace.refund": (_Y, _N, _N, _N, _N),
    "costs.read": (_Y, _Y, _Y, _Y, _N),
    # POST /cost/authorize: a reservation for a client that calls a provider itself.
    "costs.authorize": (_Y, _Y, _Y, _N, _N),
    # Budgets and notification channels.
    "budgets.manage": (_Y, _Y, _N, _N, _N),
    "users.manage": (_Y, _NA, _N, _N, _N),
    "ratelimits.manage": (_Y, _N, _N, _N, _N),
}

MATRIX: dict[str, dict[Role, Grant]] = {perm: dict(zip(_ROLES, grants, strict=True)) for perm, grants in _TABLE.items()}
PERMISSIONS: tuple[str, ...] = tuple(MATRIX)

# Roles that may sign in to the Django admin (is_staff follows the role).
STAFF_ROLES = frozenset({Role.ADMIN, Role.MANAGER})


def grant_for(role: str | None, permission: str) -> Grant:
    """The grant ``role`` has for ``permission``; unknown permissions fail closed."""
    if role is None or permission not in MATRIX:
        return Grant.NONE
    return MATRIX[permission].get(Role(role), Grant.NONE)


def has_permission(role: str | None, permission: str) -> bool:
    return grant_for(role, permission) is not Grant.NONE


def permissions_for(role: str) -> dict[str, dict[str, bool]]:
    """The spec's ``Permissions`` object (plus ``users.manage``) for a role."""
    out: dict[str, dict[str, bool]] = {}
    for perm in PERMISSIONS:
        resource, action = perm.split(".")
        out.setdefault(resource, {})[action] = has_permission(role, perm)
    return out


def own_only_for(role: str) -> list[str]:
    """Permissions this role holds only on objects it owns."""
    return [perm for perm in PERMISSIONS if grant_for(role, perm) is Grant.OWN]


def markdown_table() -> str:
    """The README's role table, generated from the matrix."""
    header = "| permission | " + " | ".join(r.value for r in _ROLES) + " |"
    sep = "|---|" + "---|" * len(_ROLES)
    rows = [f"| {perm} | " + " | ".join(MATRIX[perm][r].value for r in _ROLES) + " |" for perm in PERMISSIONS]
    return "\n".join([header, sep, *rows])
