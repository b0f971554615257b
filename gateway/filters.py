"""Query parameters of ``GET /api-keys``."""

from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet
from django.utils import timezone

from gateway.models import ApiKey
from gateway.serializers import ApiKeySerializer, ApiKeyStatus
from modelhub.api.filters import FastFilterSet, ListFilter, SortFilterMixin


def status_condition(status: str) -> Q:
    """The rows :func:`gateway.serializers.key_status` calls ``status`` (revoked wins over expired)."""
    now = timezone.now()
    if status == ApiKeyStatus.REVOKED:
        return Q(revoked_at__isnull=False)
    if status == ApiKeyStatus.EXPIRED:
        return Q(revoked_at__isnull=True, expires_at__lte=now)
    return Q(revoked_at__isnull=True) & (Q(expires_at__isnull=True) | Q(expires_at__gt=now))


class ApiKeyFilterSet(SortFilterMixin, FastFilterSet):
    """``ownerId`` (only useful to admins: everyone else sees only their own keys anyway) and ``status``
    (any of the listed values). Default order: newest first; ``sortBy=name`` defaults to ascending."""

    sort_serializer = ApiKeySerializer
    sort_by = ("createdAt", "name")
    sort_default = "createdAt"
    sort_descending = frozenset({"createdAt"})
    sort_tiebreak = ("-created_at", "-id")

    ownerId = django_filters.UUIDFilter(
        field_name="owner_id", label="Only this user's keys (for admins: everyone else sees only their own)."
    )
    status = ListFilter(
        method="filter_status", choices=ApiKeyStatus.values, label="active, expired or revoked (any of those listed)."
    )

    class Meta:
        model = ApiKey
        fields: list[str] = []

    def filter_status(self, qs: QuerySet, name: str, value: list[str] | None) -> QuerySet:
        if not value or set(value) >= set(ApiKeyStatus.values):
            return qs
        condition = Q()
        for status in value:
            condition |= status_condition(status)
        return qs.filter(condition)
