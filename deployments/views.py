"""The Deployments endpoints (spec section 2)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from deployments import selectors, services
from deployments.filters import DeploymentFilterSet
from deployments.serializers import (
    CreateDeploymentRequestSerializer,
    DeploymentListItemSerializer,
    DeploymentListResponseSerializer,
    DeploymentResponseSerializer,
    DeploymentSerializer,
    PatchDeploymentRequestSerializer,
    ScaleRequestSerializer,
    UpdateDeploymentRequestSerializer,
)
from modelhub.api.exceptions import ErrorCode
from modelhub.api.schema import ErrorResponseSerializer
from modelhub.api.viewsets import BaseViewSet

_CREATE_EXAMPLE = OpenApiExample(
    "A self-hosted model behind a readiness probe",
    request_only=True,
    value={
        "modelId": "00000000-0000-0000-0000-000000000000",
        "version": "1.0.0",
        "environment": "staging",
        "configuration": {
            "replicas": 2,
            "resources": {"cpu": "500m", "memory": "2Gi"},
            "scaling": {"minReplicas": 1, "maxReplicas": 6, "targetCPUUtilization": 70, "targetMemoryUtilization": 80},
            "temperature": 0.2,
            "maxTokens": 1024,
            "port": 8080,
            "host": "llm.internal.example.com",
            "path": "/healthz",
            "timeout": 10,
            "retries": 2,
            "logLevel": "info",
            "rateLimiting": {"requestsPerMinute": 600, "burstLimit": 60},
        },
    },
)


@extend_schema_view(
    list=extend_schema(summary="List deployments", responses=DeploymentListResponseSerializer, tags=["deployments"]),
    retrieve=extend_schema(
        summary="A deployment with its whole configuration",
        responses=DeploymentResponseSerializer,
        tags=["deployments"],
    ),
    create=extend_schema(
        summary="Deploy a model version (starts as creating; a readiness check makes it running or failed)",
        request=CreateDeploymentRequestSerializer,
        responses={
            201: DeploymentResponseSerializer,
            404: OpenApiResponse(ErrorResponseSerializer, description="MODEL_NOT_FOUND: modelId names no model."),
            409: OpenApiResponse(
                ErrorResponseSerializer, description="DEPLOYMENT_LIMIT_EXCEEDED: a live-deployment limit is reached."
            ),
        },
        tags=["deployments"],
        examples=[_CREATE_EXAMPLE],
    ),
    update=extend_schema(
        summary="Replace a deployment's configuration (replicas change only by scaling)",
        request=UpdateDeploymentRequestSerializer,
        responses=DeploymentResponseSerializer,
        tags=["deployments"],
    ),
    partial_update=extend_schema(
        summary="Change part of a deployment's configuration (merged; null unsets an optional field)",
        request=PatchDeploymentRequestSerializer,
        responses=DeploymentResponseSerializer,
        tags=["deployments"],
    ),
    destroy=extend_schema(
        summary="Stop a deployment (kept for history; stopping a stopped or failed one succeeds too)",
        responses={204: OpenApiResponse(description="Stopped (or already not running).")},
        tags=["deployments"],
    ),
    scale=extend_schema(
        summary="Scale a running deployment (running -> scaling; a task finishes it)",
        request=ScaleRequestSerializer,
        responses={202: DeploymentResponseSerializer, 200: DeploymentResponseSerializer},
        tags=["deployments"],
    ),
)
class DeploymentViewSet(BaseViewSet):
    """Deployments: list, detail, create, reconfigure, stop, scale. Developers change only their own."""

    queryset = selectors.deployment_queryset()
    filterset_class = DeploymentFilterSet
    serializer_class = DeploymentSerializer
    not_found_code = ErrorCode.DEPLOYMENT_NOT_FOUND
    resource_name = "Deployment"
    results_key = "deployments"
    owner_field = "owner"
    permission_map = {
        "list": "deployments.read",
        "retrieve": "deployments.read",
        "create": "deployments.create",
        "update": "deployments.update",
        "partial_update": "deployments.update",
        "destroy": "deployments.delete",
        "scale": "deployments.scale",
    }

    def get_serializer_class(self):
        return {
            "create": CreateDeploymentRequestSerializer,
            "update": UpdateDeploymentRequestSerializer,
            "partial_update": PatchDeploymentRequestSerializer,
            "scale": ScaleRequestSerializer,
            "list": DeploymentListItemSerializer,
        }.get(self.action, DeploymentSerializer)

    def list(self, request: Request) -> Response:
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        return self.paginator.get_paginated_response(DeploymentListItemSerializer(page, many=True).data)

    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        return self._answer(self.get_object())

    def create(self, request: Request) -> Response:
        body = CreateDeploymentRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        deployment = services.deployment_create(
            actor=request.user,
            model_id=data["modelId"],
            version=data["version"],
            environment=data["environment"],
            configuration=data["configuration"],
        )
        return self._answer(deployment, status.HTTP_201_CREATED)

    def update(self, request: Request, pk: str | None = None, partial: bool = False) -> Response:
        deployment = self.get_object()
        body = (PatchDeploymentRequestSerializer if partial else UpdateDeploymentRequestSerializer)(data=request.data)
        body.is_valid(raise_exception=True)
        # PATCH: validated_data holds exactly the keys sent (explicit nulls included), which the service merges.
        configuration = body.validated_data.get("configuration", {})
        deployment = services.deployment_update(
            deployment=deployment, actor=request.user, configuration=configuration, partial=partial
        )
        return self._answer(deployment)

    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        return self.update(request, pk, partial=True)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        services.deployment_stop(deployment=self.get_object(), actor=request.user, reason="Stopped through the API.")
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["post"])
    def scale(self, request: Request, pk: str | None = None) -> Response:
        deployment = self.get_object()
        body = ScaleRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        before = deployment.status
        deployment = services.deployment_scale(
            deployment=deployment,
            actor=request.user,
            replicas=body.validated_data["replicas"],
            reason=body.validated_data.get("reason", ""),
        )
        changed = deployment.status != before
        return self._answer(deployment, status.HTTP_202_ACCEPTED if changed else status.HTTP_200_OK)

    def _answer(self, deployment: Any, code: int = status.HTTP_200_OK) -> Response:
        fresh = selectors.deployment_queryset().get(pk=deployment.pk)
        return Response({"deployment": DeploymentSerializer(fresh).data}, status=code)
