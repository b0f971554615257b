"""The catalog's query parameters (the spec's ``CatalogQuery``), camelCase as written."""

from __future__ import annotations

from decimal import Decimal

import django_filters
from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db.models import F, QuerySet

from catalog.models import ModelRegistry, ModelStatus, ModelType, Provider
from catalog.selectors import filter_json_list_contains_all, search_models
from modelhub.api.filters import FastFilterSet, ListFilter

SORT_FIELDS = {"name": "name", "createdAt": "created_at", "updatedAt": "updated_at", "popularity": "popularity"}


class ModelFilterSet(FastFilterSet):
    """Filters AND together; within ``provider``/``modelType``/``category``/``status`` any value
    matches, while ``capabilities`` requires every listed capability (you filter for what you need).
    """

    search = django_filters.CharFilter(method="filter_search", max_length=settings.API_SEARCH_MAX_LENGTH)
    provider = ListFilter(field_name="provider", choices=Provider.values)
    modelType = ListFilter(field_name="model_type", choices=ModelType.values)
    capabilities = ListFilter(field_name="capabilities", method="filter_capabilities")
    category = ListFilter(field_name="category")
    status = ListFilter(field_name="status", choices=ModelStatus.values)
    minRating = django_filters.NumberFilter(
        field_name="avg_rating", lookup_expr="gte", validators=[MinValueValidator(0), MaxValueValidator(5)]
    )
    maxCost = django_filters.NumberFilter(
        field_name="baseline_cost_per_1k_tokens",
        lookup_expr="lte",
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(Decimal(1_000_000))],
    )
    maxLatency = django_filters.NumberFilter(
        field_name="baseline_avg_latency_ms",
        lookup_expr="lte",
        validators=[MinValueValidator(0), MaxValueValidator(10_000_000)],
    )
    sortBy = django_filters.ChoiceFilter(choices=[(k, k) for k in SORT_FIELDS], method="noop")
    sortOrder = django_filters.ChoiceFilter(choices=[("asc", "asc"), ("desc", "desc")], method="noop")

    class Meta:
        model = ModelRegistry
        fields: list[str] = []

    def noop(self, qs: QuerySet, name: str, value: str) -> QuerySet:
        return qs  # applied in filter_queryset, after every filter

    def filter_search(self, qs: QuerySet, name: str, value: str) -> QuerySet:
        return search_models(qs, value)

    def filter_capabilities(self, qs: QuerySet, name: str, value: list[str] | None) -> QuerySet:
        return filter_json_list_contains_all(qs, "capabilities", value) if value else qs

    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        qs = super().filter_queryset(queryset)
        data = self.form.cleaned_data
        sort_by, sort_order = data.get("sortBy"), data.get("sortOrder") or ""
        if not sort_by and data.get("search"):
            # Relevance first; ties broken by name so pages are stable.
            return qs.order_by(F("rank").desc(nulls_last=True), "name", "version", "id")
        column = SORT_FIELDS[sort_by or "name"]
        descending = sort_order == "desc" if sort_order else (sort_by in ("createdAt", "updatedAt", "popularity"))
        primary = F(column).desc() if descending else F(column).asc()
        return qs.order_by(primary, "name", "version", "id")
