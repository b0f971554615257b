"""The deployments list's query parameters (the spec's ``DeploymentQuery``), camelCase as written."""

from __future__ import annotations

import django_filters
from django.db.models import F, QuerySet

from deployments.models import Deployment, DeploymentStatus, Environment
from modelhub.api.filters import FastFilterSet, ListFilter

# sortBy -> column; ``name`` is the deployed model's name.
SORT_FIELDS = {"createdAt": "created_at", "updatedAt": "updated_at", "name": "model__name"}


class DeploymentFilterSet(FastFilterSet):
    """Filters AND together; within ``environment`` and ``status`` any listed value matches.

    Default order: newest first (``sortBy=createdAt``, ``sortOrder=desc``); ``sortBy=name``
    defaults to ascending. Ties are broken by creation time and id so pages are stable.
    """

    modelId = django_filters.UUIDFilter(field_name="model_id")
    environment = ListFilter(field_name="environment", choices=Environment.values)
    status = ListFilter(field_name="status", choices=DeploymentStatus.values)
    sortBy = django_filters.ChoiceFilter(choices=[(k, k) for k in SORT_FIELDS], method="noop")
    sortOrder = django_filters.ChoiceFilter(choices=[("asc", "asc"), ("desc", "desc")], method="noop")

    class Meta:
        model = Deployment
        fields: list[str] = []

    def noop(self, qs: QuerySet, name: str, value: str) -> QuerySet:
        return qs  # applied in filter_queryset, after every filter

    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        qs = super().filter_queryset(queryset)
        data = self.form.cleaned_data
        sort_by = data.get("sortBy") or "createdAt"
        sort_order = data.get("sortOrder") or ("asc" if sort_by == "name" else "desc")
        column = F(SORT_FIELDS[sort_by])
        primary = column.desc() if sort_order == "desc" else column.asc()
        return qs.order_by(primary, "-created_at", "-id")
