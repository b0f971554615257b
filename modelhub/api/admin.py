"""Django admin access derived from the role matrix, not from Django's per-model permissions."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from modelhub.roles import has_permission


class RoleMatrixAdminMixin:
    """``matrix_permissions`` maps admin operations (view/add/change/delete) to matrix permissions."""

    matrix_permissions: dict[str, str | None] = {}

    def _allowed(self, request: HttpRequest, operation: str) -> bool:
        user = request.user
        perm = self.matrix_permissions.get(operation)
        return bool(user.is_active and user.is_staff and perm and has_permission(getattr(user, "role", None), perm))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._allowed(request, "view")

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request, "view")

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return self._allowed(request, "add")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request, "change")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request, "delete")
