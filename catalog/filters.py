"""The catalog's query parameters (the spec's ``CatalogQuery``), camelCase as written."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db.models import F, QuerySet

from catalog.models import ModelRegistry, ModelStatus, ModelType, Provider
from catalog.selectors import filter_json_list_contains_all, search_models
from catalog.serializers import ModelRegistrySerializer
from modelhub.api.filters import BoundedNumberFilter, FastFilterSet, ListFilter, SearchFilter, SortFilterMixin


class ModelFilterSet(SortFilterMixin, FastFilterSet):
    """Filters AND together; within ``provider``/``modelType``/``category``/``status`` any value
    matches, while ``capabilities`` requires every listed capability (you filter for what you need).

    Order: ``sortBy`` (default ``name``; dates and popularity descending by default), then name,
    version and id; a search without ``sortBy`` orders by relevance.
    """

    sort_serializer = ModelRegistrySerializer
    sort_by = ("name", "createdAt", "updatedAt", "popularity")  # popularity: a column, not shown
    sort_default = "name"
    sort_descending = frozenset({"createdAt", "updatedAt", "popularity"})
    sort_tiebreak = ("name", "version", "id")

    search = SearchFilter(method="filter_search", max_length=settings.API_SEARCH_MAX_LENGTH)
    provider = ListFilter(field_name="provider", choices=Provider.values)
    modelType = ListFilter(field_name="model_type", choices=ModelType.values)
    capabilities = ListFilter(field_name="capabilities", method="filter_capabilities")
    category = ListFilter(field_name="category")
    status = ListFilter(field_name="status", choices=ModelStatus.values)
    minRating = BoundedNumberFilter(field_name="avg_rating", lookup_expr="gte", minimum=0, maximum=5)
    maxCost = BoundedNumberFilter(
        field_name="baseline_cost_per_1k_tokens", lookup_expr="lte", minimum=Decimal(0), maximum=Decimal(1_000_000)
    )
    maxLatency = BoundedNumberFilter(
        field_name="baseline_avg_latency_ms", lookup_expr="lte", minimum=0, maximum=10_000_000
    )

    class Meta:
        model = ModelRegistry
        fields: list[str] = []

    def filter_search(self, qs: QuerySet, name: str, value: str) -> QuerySet:
        return search_models(qs, value)

    def filter_capabilities(self, qs: QuerySet, name: str, value: list[str] | None) -> QuerySet:
        return filter_json_list_contains_all(qs, "capabilities", value) if value else qs

    def order_without_sort_by(self, qs: QuerySet, cleaned: dict) -> QuerySet | None:
        if cleaned.get("search"):  # relevance first; ties broken by name so pages are stable
            return qs.order_by(F("rank").desc(nulls_last=True), "name", "version", "id")
        return None
