"""What the marketplace viewsets share."""

from __future__ import annotations

import re
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.request import Request

from modelhub.api.pagination import PagePagination
from modelhub.api.schema import ErrorResponseSerializer
from modelhub.api.viewsets import BaseViewSet

TAG = ["marketplace"]
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
REPLAY_HEADER = "Idempotent-Replayed"


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorResponseSerializer, description=description)


class _MarketplaceViewSet(BaseViewSet):
    """The marketplace's lists parse their parameters with query serializers and page with
    :class:`PagePagination` themselves (answers are built by the selectors), so the schema takes the
    declared response shapes as they are."""

    pagination_class = None
    filter_backends: list = []
    serializer_class = serializers.Serializer  # (OPTIONS' metadata; the actions name their own bodies)


def _paginate(view: BaseViewSet, qs: QuerySet) -> tuple[PagePagination, list[Any]]:
    paginator = PagePagination()
    return paginator, paginator.paginate_queryset(qs, view.request, view=None)


def request_data(request: Request) -> Any:
    """An empty body counts as ``{}`` for the bodies whose fields are all optional."""
    return request.data if request.data not in (None, "") else {}
