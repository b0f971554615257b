"""The costs endpoints (spec section 5): analysis, budgets, notification channels, the outbox, authorize."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from costs import analysis, selectors, services
from costs.serializers import (
    AuthorizeRequestSerializer,
    BudgetRequestSerializer,
    BudgetSerializer,
    ChannelRequestSerializer,
    ChannelSerializer,
    NotificationSerializer,
)
from modelhub.api.permissions import RolePermission
from modelhub.api.schema import ErrorResponseSerializer
from modelhub.api.viewsets import BaseViewSet

_TAG = ["costs"]
# The bodies are {"budget": ...}, {"budgets": [...], "pagination": ...} etc. (README "Costs").
_OBJ = OpenApiTypes.OBJECT
_BUDGET_WRITE = {
    200: _OBJ,
    201: _OBJ,
    400: OpenApiResponse(ErrorResponseSerializer, description="INVALID_REQUEST: a field, or an unknown channel."),
    404: OpenApiResponse(
        ErrorResponseSerializer, description="MODEL_NOT_FOUND / DEPLOYMENT_NOT_FOUND: categories.models, rerouteTo."
    ),
    409: OpenApiResponse(ErrorResponseSerializer, description="At most 100 budgets."),
}


@extend_schema_view(
    list=extend_schema(summary="List budgets", operation_id="cost_budgets_list", responses=_OBJ, tags=_TAG),
    retrieve=extend_schema(summary="A budget", responses=_OBJ, tags=_TAG),
    create=extend_schema(
        summary="Set a budget (the spec's BudgetRequest)",
        request=BudgetRequestSerializer,
        responses={k: v for k, v in _BUDGET_WRITE.items() if k != 200},
        tags=_TAG,
    ),
    update=extend_schema(
        summary="Replace a budget",
        request=BudgetRequestSerializer,
        responses={k: v for k, v in _BUDGET_WRITE.items() if k != 201},
        tags=_TAG,
    ),
    destroy=extend_schema(
        summary="Delete a budget (its limits stop applying at once)", responses={204: None}, tags=_TAG
    ),
)
class BudgetViewSet(BaseViewSet):
    queryset = selectors.budget_queryset()
    serializer_class = BudgetSerializer
    input_serializer_classes = {"create": BudgetRequestSerializer, "update": BudgetRequestSerializer}
    create_service = services.budget_create
    update_service = services.budget_update
    destroy_service = services.budget_delete
    http_method_names = ["get", "post", "put", "delete", "head", "options"]
    instance_kwarg = "budget"
    resource_name = "Budget"
    envelope_key = "budget"
    results_key = "budgets"
    permission_map = {
        "list": "costs.read",
        "retrieve": "costs.read",
        "create": "budgets.manage",
        "update": "budgets.manage",
        "destroy": "budgets.manage",
    }


@extend_schema_view(
    list=extend_schema(
        operation_id="cost_channels_list",
        summary="List notification channels (webhook secrets are never returned)",
        responses=_OBJ,
        tags=_TAG,
    ),
    retrieve=extend_schema(summary="A notification channel", responses=_OBJ, tags=_TAG),
    create=extend_schema(
        summary="Add a channel: email, slack or webhook", request=ChannelRequestSerializer, responses=_OBJ, tags=_TAG
    ),
    update=extend_schema(summary="Replace a channel", request=ChannelRequestSerializer, responses=_OBJ, tags=_TAG),
    destroy=extend_schema(
        summary="Delete a channel no budget sends to",
        responses={204: None, 409: OpenApiResponse(ErrorResponseSerializer, description="A budget still sends to it.")},
        tags=_TAG,
    ),
)
class ChannelViewSet(BaseViewSet):
    queryset = selectors.channel_queryset()
    serializer_class = ChannelSerializer
    input_serializer_classes = {"create": ChannelRequestSerializer, "update": ChannelRequestSerializer}
    create_service = services.channel_create
    update_service = services.channel_update
    destroy_service = services.channel_delete
    http_method_names = ["get", "post", "put", "delete", "head", "options"]
    instance_kwarg = "channel"
    resource_name = "Channel"
    envelope_key = "channel"
    results_key = "channels"
    permission_map = {
        "list": "budgets.manage",
        "retrieve": "budgets.manage",
        "create": "budgets.manage",
        "update": "budgets.manage",
        "destroy": "budgets.manage",
    }


@extend_schema_view(
    list=extend_schema(
        operation_id="cost_notifications_list",
        summary="The notification outbox: status and attempts of every delivery",
        responses=_OBJ,
        tags=_TAG,
    ),
    retrieve=extend_schema(summary="One delivery", responses=_OBJ, tags=_TAG),
)
class NotificationViewSet(BaseViewSet):
    queryset = selectors.notification_queryset()
    serializer_class = NotificationSerializer
    resource_name = "Notification"
    envelope_key = "notification"
    results_key = "notifications"
    permission_map = {"list": "costs.read", "retrieve": "costs.read"}


class AuthorizeView(APIView):
    permission_classes = [RolePermission]
    permission_map = {"post": "costs.authorize"}

    @extend_schema(
        summary="Authorize spend for a call the client makes itself: allow / throttle / block + a reservation",
        request=AuthorizeRequestSerializer,
        responses={
            200: OpenApiResponse(description="{decision, reservationId, expiresAt, estimatedCost, ...}"),
            404: OpenApiResponse(ErrorResponseSerializer, description="MODEL_NOT_FOUND: modelId names no model."),
            409: OpenApiResponse(
                ErrorResponseSerializer,
                description="RESERVATION_LIMIT_EXCEEDED: your open reservations are at their count or amount limit.",
            ),
        },
        tags=_TAG,
    )
    def post(self, request: Request) -> Response:
        serializer = AuthorizeRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = services.authorize(actor=request.user, **serializer.validated_data)
        return Response({"authorization": result}, status=status.HTTP_200_OK)


class ReservationView(APIView):
    permission_classes = [RolePermission]
    permission_map = {"delete": "costs.authorize"}

    @extend_schema(
        summary="Release one of your open reservations (its hold goes back at once)",
        responses={
            204: None,
            404: OpenApiResponse(ErrorResponseSerializer, description="No reservation of yours with this id."),
        },
        tags=_TAG,
    )
    def delete(self, request: Request, reservation_id: str) -> Response:
        services.reservation_release(actor=request.user, reservation_id=reservation_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AnalysisView(APIView):
    permission_classes = [RolePermission]
    permission_map = {"get": "costs.read"}

    @extend_schema(
        summary="Cost analysis and optimization opportunities (the spec's CostAnalysisResponse)",
        parameters=[analysis.AnalysisQuery],
        responses={200: OpenApiResponse(description="CostAnalysisResponse"), 400: ErrorResponseSerializer},
        tags=_TAG,
    )
    def get(self, request: Request) -> Response:
        query = analysis.parse_query(request.query_params)
        return Response(analysis.cost_analysis(**query))
