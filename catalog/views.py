"""The Model Catalog endpoints (spec section 1)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework.request import Request

from catalog import listing, selectors, services
from catalog.filters import ModelFilterSet
from catalog.serializers import (
    CatalogResponseSerializer,
    ModelDetailResponseSerializer,
    ModelEnvelopeSerializer,
    ModelRegistrySerializer,
    ModelUpdateSerializer,
    ModelWriteSerializer,
)
from modelhub.api.exceptions import ErrorCode
from modelhub.api.filters import StrictFilterBackend, cleaned_applied
from modelhub.api.viewsets import BaseViewSet


@extend_schema_view(
    list=extend_schema(summary="List and search the catalog", responses=CatalogResponseSerializer, tags=["catalog"]),
    retrieve=extend_schema(
        summary="A model with deployments, performance and usage",
        responses=ModelDetailResponseSerializer,
        tags=["catalog"],
    ),
    create=extend_schema(
        summary="Register a model (admin)",
        request=ModelWriteSerializer,
        responses={201: ModelEnvelopeSerializer},
        tags=["catalog"],
        examples=[
            OpenApiExample(
                "A self-hosted model",
                request_only=True,
                value={
                    "name": "support-llama",
                    "version": "1.0.0",
                    "provider": "custom",
                    "modelType": "text",
                    "capabilities": ["chat"],
                    "supportedTasks": ["customer_support"],
                    "maxTokens": 4096,
                    "contextWindow": 32768,
                    "description": "Fine-tuned on our tickets.",
                    "tags": ["self-hosted"],
                    "category": "support",
                    "baselineMetrics": {"avgLatencyMs": 350, "costPer1kTokens": 0.0005, "successRate": 0.99},
                },
            )
        ],
    ),
    update=extend_schema(
        summary="Replace a model's fields (admin, manager)",
        request=ModelUpdateSerializer,
        responses=ModelEnvelopeSerializer,
        tags=["catalog"],
    ),
    partial_update=extend_schema(
        summary="Change some of a model's fields (admin, manager)",
        request=ModelUpdateSerializer,
        responses=ModelEnvelopeSerializer,
        tags=["catalog"],
    ),
    destroy=extend_schema(
        summary="Delete a model (admin; 409 while in use)",
        responses={204: OpenApiResponse(description="Deleted.")},
        tags=["catalog"],
    ),
)
class ModelViewSet(BaseViewSet):
    """The model registry: list/search, detail, register, update, delete."""

    queryset = selectors.model_queryset()
    filterset_class = ModelFilterSet
    serializer_class = ModelRegistrySerializer
    input_serializer_classes = {
        "create": ModelWriteSerializer,
        "update": ModelUpdateSerializer,
        "partial_update": ModelUpdateSerializer,
    }
    create_service = services.model_register
    update_service = services.model_update
    destroy_service = services.model_delete
    instance_kwarg = "model"
    not_found_code = ErrorCode.MODEL_NOT_FOUND
    resource_name = "Model"
    envelope_key = "model"
    results_key = "models"
    permission_map = {
        "list": "models.read",
        "retrieve": "models.read",
        "create": "models.create",
        "update": "models.update",
        "partial_update": "models.update",
        "destroy": "models.delete",
    }

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Any:
        """A page of the catalog, from the whole-answer cache when this query was answered in the
        catalog's current generation (see ``catalog.selectors.cached_list``); roles, rate limits and
        the request id still apply (they run before the view)."""
        if settings.CATALOG_LIST_CACHE_SECONDS <= 0:
            return HttpResponse(self._page(request, None), content_type="application/json")
        key = selectors.list_cache_key(request.query_params)
        generation, content = selectors.cached_list(key)
        if content is not None:
            return HttpResponse(content, content_type="application/json", headers={"X-Catalog-Cache": "hit"})
        content = self._page(request, generation)  # raises the API's 400 for bad parameters
        selectors.store_list(key, generation, content)
        return HttpResponse(content, content_type="application/json", headers={"X-Catalog-Cache": "miss"})

    def _page(self, request: Request, generation: int | None) -> bytes:
        """A page's JSON from the compiled page statement and the rendered rows (``catalog.listing``)."""
        filterset = StrictFilterBackend().validated_filterset(request, self.get_queryset(), self)
        offset = self.paginator.read_params(request)
        ids, self.paginator.total = listing.page_ids(
            filterset.form.cleaned_data, offset=offset, limit=self.paginator.limit, generation=generation
        )
        rows = listing.RENDERED.get(ids, generation)
        return listing.page_body(self.results_key, rows, self.paginator.pagination_data(), self.list_extra(rows))

    def list_extra(self, page: list[Any]) -> dict[str, Any]:
        """``filters``: the effective CatalogQuery (given values plus defaults) and the facets."""
        applied = cleaned_applied(getattr(self, "filterset", None))
        if "search" not in applied or "sortBy" in applied:  # (a search without sortBy orders by relevance)
            applied["sortBy"], applied["sortOrder"] = ModelFilterSet.effective_sort(
                applied.get("sortBy"), applied.get("sortOrder")
            )
        applied.update(page=self.paginator.page, limit=self.paginator.limit)
        return {"filters": {"applied": applied, "available": selectors.catalog_facets()}}

    def retrieve_extra(self, instance: Any) -> dict[str, Any]:
        """The detail sections: ``deployments``, ``performance``, ``usage``."""
        return selectors.model_detail(instance)
