"""The Model Catalog endpoints (spec section 1)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from catalog import selectors, services
from catalog.filters import ModelFilterSet
from catalog.serializers import (
    CatalogResponseSerializer,
    ModelDetailResponseSerializer,
    ModelRegistrySerializer,
    ModelUpdateSerializer,
    ModelWriteSerializer,
)
from modelhub.api.exceptions import ErrorCode
from modelhub.api.filters import cleaned_applied
from modelhub.api.viewsets import BaseViewSet


class ModelEnvelopeSerializer(serializers.Serializer):
    """``{"model": ModelRegistry}``: what create and update answer."""

    model = ModelRegistrySerializer()

    class Meta:
        ref_name = "ModelResponse"


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
    lookup_url_kwarg = "pk"
    not_found_code = ErrorCode.MODEL_NOT_FOUND
    resource_name = "Model"
    results_key = "models"
    permission_map = {
        "list": "models.read",
        "retrieve": "models.read",
        "create": "models.create",
        "update": "models.update",
        "partial_update": "models.update",
        "destroy": "models.delete",
    }

    def get_serializer_class(self):
        if self.action == "create":
            return ModelWriteSerializer
        if self.action in ("update", "partial_update"):
            return ModelUpdateSerializer
        return ModelRegistrySerializer

    def count_in_window(self) -> bool:
        """Relevance-ordered searches visit every match anyway: count them in the same query."""
        return bool(self.request.query_params.get("search", "").strip())

    def list(self, request: Request) -> Response:
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        data = ModelRegistrySerializer(page, many=True).data
        applied = cleaned_applied(getattr(self, "filterset", None))
        if "search" not in applied or "sortBy" in applied:  # (a search without sortBy orders by relevance)
            applied.setdefault("sortBy", "name")
            descending_by_default = applied["sortBy"] in ("createdAt", "updatedAt", "popularity")
            applied.setdefault("sortOrder", "desc" if descending_by_default else "asc")
        applied.update(page=self.paginator.page, limit=self.paginator.limit)
        return self.paginator.get_paginated_response(
            data, filters={"applied": applied, "available": selectors.catalog_facets()}
        )

    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        model = self.get_object()
        return Response({"model": ModelRegistrySerializer(model).data, **selectors.model_detail(model)})

    def create(self, request: Request) -> Response:
        serializer = ModelWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        model = services.model_register(actor=request.user, **serializer.validated_data)
        return Response({"model": ModelRegistrySerializer(self._reload(model)).data}, status=status.HTTP_201_CREATED)

    def update(self, request: Request, pk: str | None = None, partial: bool = False) -> Response:
        model = self.get_object()
        serializer = ModelUpdateSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        model = services.model_update(model=model, actor=request.user, **serializer.validated_data)
        return Response({"model": ModelRegistrySerializer(self._reload(model)).data})

    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        return self.update(request, pk, partial=True)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        services.model_delete(model=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @staticmethod
    def _reload(model: Any) -> Any:
        return selectors.model_queryset().get(pk=model.pk)
