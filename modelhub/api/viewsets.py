"""The base every API viewset stands on, so policy is written once (NetBox's BaseViewSet idea)."""

from __future__ import annotations

import uuid
from typing import Any

from django.http import Http404
from rest_framework import viewsets

from modelhub.api.exceptions import ErrorCode
from modelhub.api.filters import StrictFilterBackend
from modelhub.api.pagination import PagePagination
from modelhub.api.permissions import RolePermission


class BaseViewSet(viewsets.GenericViewSet):
    """Role-matrix permissions, strict filters, spec pagination and resource-specific 404 codes.

    Subclasses set ``permission_map`` (action -> matrix permission),
    ``not_found_code``/``resource_name`` and ``results_key``.
    """

    permission_classes = [RolePermission]
    filter_backends = [StrictFilterBackend]
    pagination_class = PagePagination
    permission_map: dict[str, str] = {}
    not_found_code: ErrorCode = ErrorCode.INVALID_REQUEST
    resource_name = "Resource"
    results_key = "results"
    owner_field = "owner"
    lookup_url_kwarg = "pk"

    def get_object(self) -> Any:
        raw = self.kwargs.get(self.lookup_url_kwarg or self.lookup_field)
        try:
            uuid.UUID(str(raw))
        except ValueError:
            raise Http404 from None
        return super().get_object()
