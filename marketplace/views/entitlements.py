"""Access requests and decisions, cancellation (``/marketplace/entitlements``); refunds (``/marketplace/purchases``)."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from marketplace import selectors, services
from marketplace.serializers import (
    DecisionSerializer,
    EntitlementEnvelopeSerializer,
    EntitlementListSerializer,
    EntitlementQuerySerializer,
    PageQuerySerializer,
    PurchaseEnvelopeSerializer,
    PurchaseListSerializer,
)
from marketplace.views._base import (
    TAG,
    _MarketplaceViewSet,
    _paginate,
    request_data,
)
from modelhub.api.exceptions import ErrorCode
from modelhub.roles import has_permission


class EntitlementViewSet(_MarketplaceViewSet):
    """``/marketplace/entitlements``: the approval queue and decisions, cancellation by the holder."""

    queryset = selectors.entitlement_queryset()
    not_found_code = ErrorCode.ENTITLEMENT_NOT_FOUND
    resource_name = "Entitlement"
    permission_map = {
        "list": "marketplace.approve",
        "retrieve": "marketplace.read",
        "cancel": "marketplace.purchase",
        "approve": "marketplace.approve",
        "reject": "marketplace.approve",
        "revoke": "marketplace.approve",
    }

    def get_queryset(self) -> QuerySet:
        qs = selectors.entitlement_queryset()
        user = self.request.user
        if self.action in ("retrieve", "cancel") and not has_permission(
            getattr(user, "role", None), "marketplace.approve"
        ):
            qs = qs.filter(Q(holder__in=selectors.holders_for(user)))
        return qs

    def _respond(self, entitlement: Any) -> Response:
        return Response(
            {"entitlement": selectors.entitlement_data(selectors.entitlement_queryset().get(pk=entitlement.pk))}
        )

    @extend_schema(
        summary="Entitlements of every holder (the access-request queue: status=pending)",
        parameters=[EntitlementQuerySerializer],
        responses=EntitlementListSerializer,
        tags=TAG,
    )
    def list(self, request: Request) -> Response:
        params = EntitlementQuerySerializer.parse(request.query_params)
        qs = self.get_queryset().order_by("-created_at", "-id")
        if params.get("status"):
            qs = qs.filter(status=params["status"])
        paginator, page = _paginate(self, qs)
        return Response(
            {"entitlements": [selectors.entitlement_data(e) for e in page], "pagination": paginator.pagination_data()}
        )

    @extend_schema(
        summary="One entitlement (yours, hub-wide, or any for approvers)",
        responses=EntitlementEnvelopeSerializer,
        tags=TAG,
    )
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        return self._respond(self.get_object())

    def _decide(self, service: Any) -> Response:
        entitlement = self.get_object()
        body = DecisionSerializer(data=request_data(self.request))
        body.is_valid(raise_exception=True)
        return self._respond(
            service(entitlement=entitlement, actor=self.request.user, reason=body.validated_data["reason"])
        )

    @extend_schema(
        summary="Cancel: a subscription runs to its period end, anything else ends now",
        request=None,
        responses=EntitlementEnvelopeSerializer,
        tags=TAG,
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        return self._respond(services.entitlement_cancel(entitlement=self.get_object(), actor=request.user))

    @extend_schema(
        summary="Approve an access request (pending -> active)",
        request=DecisionSerializer,
        responses=EntitlementEnvelopeSerializer,
        tags=TAG,
    )
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str | None = None) -> Response:
        return self._decide(services.entitlement_approve)

    @extend_schema(
        summary="Reject an access request (pending -> rejected; paid amounts refunded)",
        request=DecisionSerializer,
        responses=EntitlementEnvelopeSerializer,
        tags=TAG,
    )
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk: str | None = None) -> Response:
        return self._decide(services.entitlement_reject)

    @extend_schema(
        summary="Revoke an entitlement (running deployments stop after the grace period)",
        request=DecisionSerializer,
        responses=EntitlementEnvelopeSerializer,
        tags=TAG,
    )
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        return self._decide(services.entitlement_revoke)


class PurchaseViewSet(_MarketplaceViewSet):
    """``/marketplace/purchases/{id}/refund`` (admins)."""

    queryset = selectors.purchase_queryset()
    not_found_code = ErrorCode.INVALID_REQUEST
    resource_name = "Purchase"
    permission_map = {"list": "marketplace.refund", "retrieve": "marketplace.refund", "refund": "marketplace.refund"}

    @extend_schema(
        summary="Every purchase and renewal, newest first (admins)",
        parameters=[PageQuerySerializer],
        responses=PurchaseListSerializer,
        tags=TAG,
    )
    def list(self, request: Request) -> Response:
        PageQuerySerializer.parse(request.query_params)
        paginator, page = _paginate(self, selectors.purchase_queryset().order_by("-created_at", "-id"))
        return Response(
            {"purchases": [selectors.purchase_data(p) for p in page], "pagination": paginator.pagination_data()}
        )

    @extend_schema(summary="One purchase (admins)", responses=PurchaseEnvelopeSerializer, tags=TAG)
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        return Response({"purchase": selectors.purchase_data(self.get_object())})

    @extend_schema(
        summary="Refund a purchase; its entitlement ends (refunded)",
        request=DecisionSerializer,
        responses=PurchaseEnvelopeSerializer,
        tags=TAG,
    )
    @action(detail=True, methods=["post"])
    def refund(self, request: Request, pk: str | None = None) -> Response:
        purchase = self.get_object()
        body = DecisionSerializer(data=request_data(request))
        body.is_valid(raise_exception=True)
        purchase = services.purchase_refund(purchase=purchase, actor=request.user, reason=body.validated_data["reason"])
        return Response({"purchase": selectors.purchase_data(purchase)})
