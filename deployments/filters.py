"""The deployments list's query parameters (the spec's ``DeploymentQuery``), camelCase as written."""

from __future__ import annotations

import django_filters

from deployments.models import Deployment, DeploymentStatus, Environment
from deployments.serializers.outputs import DeploymentListItemSerializer
from modelhub.api.filters import FastFilterSet, ListFilter, SortFilterMixin


class DeploymentFilterSet(SortFilterMixin, FastFilterSet):
    """Filters AND together; within ``environment`` and ``status`` any listed value matches.

    Default order: newest first (``sortBy=createdAt``, ``sortOrder=desc``); ``sortBy=name``
    (the deployed model's name) defaults to ascending. Ties are broken by creation time and id
    so pages are stable.
    """

    sort_serializer = DeploymentListItemSerializer
    sort_by = ("createdAt", "updatedAt", "name")
    sort_aliases = {"name": "modelName"}  # sortBy=name is the model name
    sort_default = "createdAt"
    sort_descending = frozenset({"createdAt", "updatedAt"})
    sort_tiebreak = ("-created_at", "-id")

    modelId = django_filters.UUIDFilter(field_name="model_id")
    environment = ListFilter(field_name="environment", choices=Environment.values)
    status = ListFilter(field_name="status", choices=DeploymentStatus.values)

    class Meta:
        model = Deployment
        fields: list[str] = []
