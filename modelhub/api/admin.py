"""Django admin access derived from the role matrix, not from Django's per-model permissions."""

from __future__ import annotations

from typing import Any

from django import forms
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


class ListTextField(forms.CharField):
    """A JSON list of strings edited as text, one item per line (capabilities, tags, formats...).

    Blank lines and surrounding spaces are dropped and duplicates removed (first one kept); the model's
    own validation (the services') still applies to the list it produces.
    """

    widget = forms.Textarea(attrs={"rows": 4, "cols": 40})

    def __init__(self, **kwargs: Any) -> None:
        kwargs.pop("encoder", None)
        kwargs.pop("decoder", None)
        kwargs.setdefault("required", False)
        kwargs.setdefault("help_text", "One per line.")
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> str:
        if isinstance(value, list):
            return "\n".join(str(item) for item in value)
        if isinstance(value, str) and value.startswith("["):  # a JSON text (an invalid form re-shown)
            try:
                import json

                return "\n".join(str(item) for item in json.loads(value))
            except (ValueError, TypeError):
                return value
        return "" if value is None else str(value)

    def to_python(self, value: Any) -> list[str]:
        items = [str(v) for v in value] if isinstance(value, list) else str(value or "").splitlines()
        out: list[str] = []
        for item in (i.strip() for i in items):
            if item and item not in out:
                out.append(item)
        return out

    def has_changed(self, initial: Any, data: Any) -> bool:
        return self.to_python(initial or []) != self.to_python(data)


class ListFieldsAdminMixin:
    """``list_fields``: the model's JSON list fields, edited with :class:`ListTextField`."""

    list_fields: tuple[str, ...] = ()

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name in self.list_fields:
            return ListTextField(label=db_field.verbose_name.capitalize(), help_text="One per line.")
        return super().formfield_for_dbfield(db_field, request, **kwargs)
