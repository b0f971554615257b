"""The Deployments endpoints (spec section 2)."""

from __future__ import annotations

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
    list_item_serializer_class = DeploymentListItemSerializer
    input_serializer_classes = {
        "create": CreateDeploymentRequestSerializer,
        "update": UpdateDeploymentRequestSerializer,
        "partial_update": PatchDeploymentRequestSerializer,
        "scale": ScaleRequestSerializer,
    }
    create_service = services.deployment_create
    update_service = services.deployment_update
    destroy_service = services.deployment_stop
    instance_kwarg = "deployment"
    partial_input = False  # PatchDeploymentRequest declares every field optional itself
    not_found_code = ErrorCode.DEPLOYMENT_NOT_FOUND
    resource_name = "Deployment"
    envelope_key = "deployment"
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

    def update_kwargs(self, data: dict, *, partial: bool) -> dict:
        # PATCH: validated_data holds exactly the keys sent (explicit nulls included), which the service merges.
        return {"configuration": data.get("configuration", {}), "partial": partial}

    def destroy_kwargs(self) -> dict:
        return {"reason": "Stopped through the API."}

    @action(detail=True, methods=["post"])
    def scale(self, request: Request, pk: str | None = None) -> Response:
        deployment = self.get_object()
        body = self.validated_input()
        before = deployment.status
        deployment = services.deployment_scale(
            deployment=deployment, actor=request.user, replicas=body["replicas"], reason=body.get("reason", "")
        )
        changed = deployment.status != before
        return self.respond(self.reread(deployment), status.HTTP_202_ACCEPTED if changed else status.HTTP_200_OK)
