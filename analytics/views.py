"""Analytics endpoints (spec section 3, plus ingestion and alerts)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics import selectors, services
from analytics.filters import AlertFilterSet
from analytics.ingest import ingest_decoded, ingest_events
from analytics.ingest.decode import DecodedBatch
from analytics.parsers import IngestJSONParser
from analytics.serializers import (
    AlertListResponseSerializer,
    AlertResponseSerializer,
    AlertSerializer,
    DashboardResponseSerializer,
    IngestRequestSerializer,
    IngestResponseSerializer,
    PerformanceQuerySerializer,
    PerformanceResponseSerializer,
)
from catalog import selectors as catalog_selectors
from modelhub.api.authentication import ApiKeyAuthentication, JWTAuthentication
from modelhub.api.exceptions import ErrorCode, InvalidParameter, InvalidRequest, NotFound, validation_details
from modelhub.api.params import QuerySerializer
from modelhub.api.permissions import RolePermission
from modelhub.api.viewsets import BaseViewSet

_EXAMPLE_EVENT = {
    "requestId": "req-7f3a9c",
    "timestamp": "2026-11-26T09:30:00Z",
    "modelId": "3f1e2d4c-5b6a-4789-8abc-def012345678",
    "environment": "production",
    "userId": "customer-42",
    "latencyMs": 412.5,
    "promptTokens": 850,
    "completionTokens": 210,
    "success": True,
    "userRating": 5,
    "accepted": True,
    "useCase": "customer_support",
}


class EventIngestView(APIView):
    """``POST /analytics/events``: a batch of usage events.

    Also takes hub API keys (``Bearer mh_...``), acting with the key owner's role; a key's deployment
    restriction is not applied here (it limits what the key may invoke through the gateway). The key
    authenticator comes first: it passes on every Bearer value that is not an API key, whereas the JWT
    one would refuse an API key as a malformed token.
    """

    authentication_classes = [ApiKeyAuthentication, JWTAuthentication]
    permission_classes = [RolePermission]
    permission_map = {"post": "analytics.ingest"}
    parser_classes = [IngestJSONParser]

    @extend_schema(
        summary="Ingest usage events (a batch of up to 1,000)",
        description=(
            "Valid events are stored and invalid ones rejected item by item (`errors` lists each by index); "
            "nothing valid is dropped. An event whose `requestId` is already stored is accepted and counted once "
            "(`duplicates`). 200 when at least one event was stored or was a duplicate; 400 INVALID_REQUEST "
            "(the same report in `details`) when every event was rejected."
        ),
        request=IngestRequestSerializer,
        responses={200: IngestResponseSerializer},
        examples=[OpenApiExample("One event", request_only=True, value={"events": [_EXAMPLE_EVENT]})],
        tags=["analytics"],
    )
    def post(self, request: Request) -> Response:
        data = request.data
        if isinstance(data, DecodedBatch):  # every event typed and bounded already (the fast path)
            result = ingest_decoded(data.events)
        else:
            body = IngestRequestSerializer(data=data)
            if not body.is_valid():
                code, message, details = validation_details(body.errors)
                if code == ErrorCode.INVALID_REQUEST and isinstance(data, dict):
                    code = ErrorCode.INVALID_PARAMETER  # a JSON object with a wrong field, not a malformed body
                raise InvalidRequest(message, details=details, code=code)
            result = ingest_events(body.validated_data["events"])
        body = result.as_response()
        if result.accepted == 0 and result.duplicates == 0:
            raise InvalidRequest("Every event was rejected.", details=body)
        return Response(body)


class PerformanceView(APIView):
    """``GET /analytics/models/{modelId}/performance``."""

    permission_classes = [RolePermission]
    permission_map = {"get": "analytics.read"}

    @extend_schema(
        summary="Performance of a model over a time range",
        parameters=[
            OpenApiParameter("model_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The model's id."),
            PerformanceQuerySerializer,
        ],
        responses={200: PerformanceResponseSerializer},
        tags=["analytics"],
    )
    def get(self, request: Request, model_id: str) -> Response:
        params = PerformanceQuerySerializer.parse(request.query_params)
        model = catalog_selectors.model_for_figures(model_id)
        if model is None:
            raise NotFound("Model not found.", code=ErrorCode.MODEL_NOT_FOUND)
        end = params.get("to") or timezone.now()
        body = selectors.performance(
            model,
            start=params.get("from") or end - timedelta(hours=24),
            end=end,
            granularity=params["granularity"],
            deployment_id=str(params["deploymentId"]) if "deploymentId" in params else None,
            environment=params.get("environment"),
        )
        return Response(body)


class DashboardView(APIView):
    """``GET /analytics/dashboard``."""

    permission_classes = [RolePermission]
    permission_map = {"get": "analytics.read"}

    @extend_schema(
        summary="Dashboard overview (last 24 hours)", responses={200: DashboardResponseSerializer}, tags=["analytics"]
    )
    def get(self, request: Request) -> Response:
        QuerySerializer.parse(request.query_params)  # it takes none: any parameter is INVALID_PARAMETER
        return Response(selectors.dashboard())


@extend_schema_view(
    list=extend_schema(
        summary="Performance alerts (newest first)", responses=AlertListResponseSerializer, tags=["analytics"]
    ),
    retrieve=extend_schema(summary="One alert", responses=AlertResponseSerializer, tags=["analytics"]),
    acknowledge=extend_schema(
        summary="Acknowledge an alert (idempotent; 409 once resolved)",
        request=None,
        responses={200: AlertResponseSerializer, 409: OpenApiResponse(description="Already resolved.")},
        tags=["analytics"],
    ),
)
class AlertViewSet(BaseViewSet):
    """Alerts opened by the periodic check; newest first."""

    queryset = selectors.alert_queryset()
    serializer_class = AlertSerializer
    filterset_class = AlertFilterSet
    not_found_code = ErrorCode.INVALID_REQUEST
    resource_name = "Alert"
    envelope_key = "alert"
    results_key = "alerts"
    permission_map = {"list": "analytics.read", "retrieve": "analytics.read", "acknowledge": "alerts.acknowledge"}

    @action(detail=True, methods=["post"])
    def acknowledge(self, request: Request, pk: str) -> Response:
        if request.data:
            raise InvalidParameter("acknowledge takes no body.")
        alert = services.alert_acknowledge(alert=self.get_object(), actor=request.user)
        return self.respond(self.reread(alert))
