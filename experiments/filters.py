"""The experiments list's query parameters: ``status`` (repeated or comma-separated), ``modelId``,
``search`` (a substring of the name), ``sortBy`` (createdAt | updatedAt | name | startDate) and ``sortOrder``."""

from __future__ import annotations

import django_filters
from django.conf import settings
from rest_framework import serializers

from experiments.constants import ExperimentStatus
from experiments.models import Experiment
from modelhub.api.filters import FastFilterSet, ListFilter, SearchFilter, SortFilterMixin


class _SortColumns(serializers.Serializer):
    createdAt = serializers.DateTimeField(source="created_at")
    updatedAt = serializers.DateTimeField(source="updated_at")
    name = serializers.CharField()
    startDate = serializers.DateTimeField(source="start_date")


class ExperimentFilterSet(SortFilterMixin, FastFilterSet):
    sort_serializer = _SortColumns
    sort_by = ("createdAt", "updatedAt", "name", "startDate")
    sort_default = "createdAt"
    sort_descending = frozenset({"createdAt", "updatedAt", "startDate"})
    sort_tiebreak = ("-created_at", "-id")

    status = ListFilter(field_name="status", choices=[s.value for s in ExperimentStatus])
    modelId = django_filters.UUIDFilter(field_name="model_id")
    search = SearchFilter(field_name="name", lookup_expr="icontains", max_length=settings.API_SEARCH_MAX_LENGTH)

    class Meta:
        model = Experiment
        fields: list[str] = []
