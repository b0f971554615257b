"""The spec's ``pagination`` object: ``page``/``limit`` in, ``{page, limit, total, totalPages, hasNext, hasPrev}`` out."""

from __future__ import annotations

import math
from typing import Any

from django.conf import settings
from django.db.models import Count, Window
from rest_framework.pagination import BasePagination
from rest_framework.response import Response

from modelhub.api.exceptions import InvalidParameter


def _positive_int(raw: str | None, name: str, default: int, maximum: int | None = None) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise InvalidParameter(
            f"{name} must be an integer.", details={"fields": {name: ["Must be an integer."]}}
        ) from None
    if value < 1:
        raise InvalidParameter(f"{name} must be at least 1.", details={"fields": {name: ["Must be at least 1."]}})
    if maximum is not None and value > maximum:
        raise InvalidParameter(
            f"{name} must be at most {maximum}.", details={"fields": {name: [f"Must be at most {maximum}."]}}
        )
    return value


class PagePagination(BasePagination):
    """Page-number pagination; a page past the end is an empty page, not an error.

    The list key follows the resource (``models``, ``users``, ...): views set
    ``results_key``. ``page`` is capped so that OFFSET stays bounded.
    """

    query_params = ("page", "limit")
    max_page = 100_000

    def read_params(self, request) -> int:
        """``page`` and ``limit`` from the request (400 when invalid); returns the offset."""
        self.page = _positive_int(request.query_params.get("page"), "page", 1, self.max_page)
        self.limit = _positive_int(
            request.query_params.get("limit"), "limit", settings.API_PAGE_SIZE_DEFAULT, settings.API_PAGE_SIZE_MAX
        )
        return (self.page - 1) * self.limit

    def paginate_queryset(self, queryset, request, view=None):
        offset = self.read_params(request)
        self.results_key = getattr(view, "results_key", "results")
        if view is not None and getattr(view, "count_in_window", lambda: False)():
            # The database must visit and sort every match anyway (e.g. by relevance), so one
            # query gives page and total: COUNT(*) OVER () is computed before LIMIT. For an
            # index-ordered list this would be much slower than a narrow count plus a LIMIT scan.
            rows = list(queryset.annotate(_total_rows=Window(Count("pk")))[offset : offset + self.limit])
            if rows:
                self.total = rows[0]._total_rows
            else:  # past the end (or nothing matches): the total still has to be right
                self.total = queryset.count() if offset else 0
            return rows
        self.total = queryset.count()
        return list(queryset[offset : offset + self.limit]) if offset < self.total else []

    def pagination_data(self) -> dict[str, Any]:
        total_pages = math.ceil(self.total / self.limit) if self.total else 0
        return {
            "page": self.page,
            "limit": self.limit,
            "total": self.total,
            "totalPages": total_pages,
            "hasNext": self.page < total_pages,
            "hasPrev": self.page > 1,
        }

    def get_paginated_response(self, data: list[Any], **extra: Any) -> Response:
        return Response({self.results_key: data, "pagination": self.pagination_data(), **extra})

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": [self.results_key_for_schema, "pagination"],
            "properties": {
                self.results_key_for_schema: schema,
                "pagination": {"$ref": "#/components/schemas/Pagination"},
            },
        }

    results_key_for_schema = "results"

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": "page",
                "required": False,
                "in": "query",
                "description": "Page number, from 1.",
                "schema": {"type": "integer", "minimum": 1, "maximum": self.max_page, "default": 1},
            },
            {
                "name": "limit",
                "required": False,
                "in": "query",
                "description": f"Page size (default {settings.API_PAGE_SIZE_DEFAULT}, max {settings.API_PAGE_SIZE_MAX}).",
                "schema": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": settings.API_PAGE_SIZE_MAX,
                    "default": settings.API_PAGE_SIZE_DEFAULT,
                },
            },
        ]
