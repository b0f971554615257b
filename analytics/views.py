"""Analytics endpoints (spec section 3, plus ingestion and alerts)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics import selectors, services
from analytics.filters import AlertFilterSet
from analytics.ingest import ingest_events
from analytics.models import GRANULARITY_SECONDS, Environment, Granularity
from analytics.serializers import (
    AlertListResponseSerializer,
    AlertResponseSerializer,
    AlertSerializer,
    DashboardResponseSerializer,
    IngestRequestSerializer,
    IngestResponseSerializer,
    PerformanceResponseSerializer,
)
from modelhub.api.exceptions import ErrorCode, InvalidParameter, InvalidRequest, NotFound
from modelhub.api.params import parse_iso_datetime
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
    """``POST /analytics/events``: a batch of usage events."""

    permission_classes = [RolePermission]
    permission_map = {"post": "analytics.ingest"}

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
        if not isinstance(data, dict):
            raise InvalidRequest('The body must be a JSON object {"events": [...]}.')
        unknown = sorted(set(data) - {"events"})
        if unknown:
            raise InvalidParameter(
                "Unknown fields.", details={"fields": {name[:100]: ["Unknown field."] for name in unknown[:20]}}
            )
        events = data.get("events")
        if events is None:
            raise InvalidRequest(
                "events is required.",
                details={"fields": {"events": ["This field is required."]}},
                code=ErrorCode.MISSING_REQUIRED_FIELD,
            )
        if not isinstance(events, list) or not 1 <= len(events) <= settings.ANALYTICS_INGEST_MAX_EVENTS:
            raise InvalidParameter(
                f"events must be a list of 1 to {settings.ANALYTICS_INGEST_MAX_EVENTS} events.",
                details={
                    "fields": {
                        "events": [f"Send between 1 and {settings.ANALYTICS_INGEST_MAX_EVENTS} events per request."]
                    }
                },
            )
        result = ingest_events(events)
        body = result.as_response()
        if result.accepted == 0 and result.duplicates == 0:
            raise InvalidRequest("Every event was rejected.", details=body)
        return Response(body)


_PERFORMANCE_PARAMS = [
    OpenApiParameter(
        "from",
        OpenApiTypes.DATETIME,
        description="Start (ISO 8601; floored to the granularity). Default: `to` minus 24 hours.",
    ),
    OpenApiParameter(
        "to", OpenApiTypes.DATETIME, description="End (ISO 8601; ceiled to the granularity). Default: now."
    ),
    OpenApiParameter("granularity", OpenApiTypes.STR, enum=Granularity.values, description="Bucket size. Default: 1h."),
    OpenApiParameter("deploymentId", OpenApiTypes.UUID, description="Only this deployment (of this model)."),
    OpenApiParameter("environment", OpenApiTypes.STR, enum=Environment.values),
]


class PerformanceView(APIView):
    """``GET /analytics/models/{modelId}/performance``."""

    permission_classes = [RolePermission]
    permission_map = {"get": "analytics.read"}
    allowed_params = frozenset({"from", "to", "granularity", "deploymentId", "environment"})

    @extend_schema(
        summary="Performance of a model over a time range",
        parameters=_PERFORMANCE_PARAMS,
        responses={200: PerformanceResponseSerializer},
        tags=["analytics"],
    )
    def get(self, request: Request, model_id: str) -> Response:
        from catalog.models import ModelRegistry

        params = self._params(request)
        model = _model_or_404(ModelRegistry, model_id)
        deployment_id = params.get("deploymentId")
        if deployment_id is not None:
            from deployments.selectors import deployment_homes

            home = deployment_homes([deployment_id]).get(uuid.UUID(deployment_id))
            if home is None or home[0] != model.pk:
                raise InvalidParameter(
                    "deploymentId is not a deployment of this model.",
                    details={"fields": {"deploymentId": ["No deployment of this model has this id."]}},
                )
        body = selectors.performance(
            model,
            start=params["from"],
            end=params["to"],
            granularity=params["granularity"],
            deployment_id=deployment_id,
            environment=params.get("environment"),
        )
        return Response(body)

    def _params(self, request: Request) -> dict[str, Any]:
        query = request.query_params
        problems: dict[str, list[str]] = {}
        for name in query:
            if name not in self.allowed_params:
                problems[name[:100]] = ["Unknown parameter."]
            elif len(query.getlist(name)) > 1:
                problems[name] = ["Give this parameter once."]
        if problems:
            raise InvalidParameter("Invalid query parameters.", details={"fields": problems})
        granularity = query.get("granularity", "1h")
        if granularity not in GRANULARITY_SECONDS:
            raise InvalidParameter(
                "granularity is invalid.",
                details={"fields": {"granularity": ["Invalid value."]}, "allowedValues": list(GRANULARITY_SECONDS)},
            )
        now = timezone.now()
        end = parse_iso_datetime(query["to"], "to") if "to" in query else now
        start = parse_iso_datetime(query["from"], "from") if "from" in query else end - timedelta(hours=24)
        if start >= end:
            raise InvalidParameter("from must be before to.", details={"fields": {"from": ["Must be before to."]}})
        window = selectors.Window.aligned(start, end, granularity)
        if window.points > settings.ANALYTICS_MAX_POINTS:
            raise InvalidParameter(
                f"The range spans {window.points} {granularity} buckets; the most is {settings.ANALYTICS_MAX_POINTS}.",
                details={
                    "fields": {"granularity": ["Use a coarser granularity or a shorter range."]},
                    "points": window.points,
                },
            )
        kept = settings.ANALYTICS_RETENTION_DAYS[granularity]
        if window.start < now - timedelta(days=kept + 1):
            raise InvalidParameter(
                f"{granularity} buckets are kept for {kept} days; this range starts earlier.",
                details={"fields": {"from": [f"Use a coarser granularity for ranges older than {kept} days."]}},
            )
        out: dict[str, Any] = {"from": start, "to": end, "granularity": granularity}
        if "deploymentId" in query:
            try:
                out["deploymentId"] = str(uuid.UUID(query["deploymentId"]))
            except ValueError:
                raise InvalidParameter(
                    "deploymentId must be a UUID.", details={"fields": {"deploymentId": ["Must be a UUID."]}}
                ) from None
        if "environment" in query:
            if query["environment"] not in Environment.values:
                raise InvalidParameter(
                    "environment is invalid.",
                    details={"fields": {"environment": ["Invalid value."]}, "allowedValues": Environment.values},
                )
            out["environment"] = query["environment"]
        return out


def _model_or_404(model_cls: Any, model_id: str) -> Any:
    try:
        return model_cls.objects.get(pk=uuid.UUID(model_id))
    except (ValueError, model_cls.DoesNotExist):
        raise NotFound("Model not found.", code=ErrorCode.MODEL_NOT_FOUND) from None


class DashboardView(APIView):
    """``GET /analytics/dashboard``."""

    permission_classes = [RolePermission]
    permission_map = {"get": "analytics.read"}

    @extend_schema(
        summary="Dashboard overview (last 24 hours)", responses={200: DashboardResponseSerializer}, tags=["analytics"]
    )
    def get(self, request: Request) -> Response:
        if request.query_params:
            raise InvalidParameter(
                "The dashboard takes no parameters.",
                details={"fields": {k[:100]: ["Unknown parameter."] for k in list(request.query_params)[:20]}},
            )
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

    serializer_class = AlertSerializer
    filterset_class = AlertFilterSet
    not_found_code = ErrorCode.INVALID_REQUEST
    resource_name = "Alert"
    results_key = "alerts"
    permission_map = {"list": "analytics.read", "retrieve": "analytics.read", "acknowledge": "alerts.acknowledge"}

    def get_queryset(self):
        return selectors.alert_queryset()

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.paginator.get_paginated_response(AlertSerializer(page, many=True).data)

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response({"alert": AlertSerializer(self.get_object()).data})

    @action(detail=True, methods=["post"])
    def acknowledge(self, request: Request, pk: str) -> Response:
        if request.data:
            raise InvalidParameter("acknowledge takes no body.")
        alert = services.alert_acknowledge(alert=self.get_object(), actor=request.user)
        return Response({"alert": AlertSerializer(alert).data})
