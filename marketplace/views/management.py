"""Listing management (``/marketplace/listings``: ``marketplace.manage``)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from marketplace import selectors, services
from marketplace.serializers import (
    ListingCreateSerializer,
    ListingEnvelopeSerializer,
    ListingListSerializer,
    ListingUpdateSerializer,
    ManagedListingQuerySerializer,
    PlanCreateSerializer,
    PlanEnvelopeSerializer,
    TermsCreateSerializer,
    TermsEnvelopeSerializer,
)
from marketplace.views._base import (
    TAG,
    _error,
    _MarketplaceViewSet,
    _paginate,
)
from modelhub.api.exceptions import ErrorCode


class ListingManagementViewSet(_MarketplaceViewSet):
    """``/marketplace/listings``: create, change, publish and delist listings; their terms and plans."""

    queryset = selectors.listing_queryset()
    not_found_code = ErrorCode.LISTING_NOT_FOUND
    resource_name = "Listing"
    http_method_names = ["get", "post", "patch", "head", "options"]
    permission_map = {
        "list": "marketplace.manage",
        "retrieve": "marketplace.manage",
        "create": "marketplace.manage",
        "partial_update": "marketplace.manage",
        "publish": "marketplace.manage",
        "delist": "marketplace.manage",
        "terms": "marketplace.manage",
        "plans": "marketplace.manage",
    }

    def _respond(self, listing: Any, code: int = 200) -> Response:
        fresh = selectors.listing_queryset().get(pk=listing.pk)
        return Response({"listing": selectors.listing_data(fresh, detail=True)}, status=code)

    @extend_schema(
        summary="Every listing, drafts and delisted ones too",
        parameters=[ManagedListingQuerySerializer],
        responses=ListingListSerializer,
        tags=TAG,
    )
    def list(self, request: Request) -> Response:
        params = ManagedListingQuerySerializer.parse(request.query_params)
        qs = selectors.listing_queryset().order_by("-created_at", "-id")
        if params.get("status"):
            qs = qs.filter(status=params["status"])
        paginator, page = _paginate(self, qs)
        return Response(
            {"listings": [selectors.listing_data(x) for x in page], "pagination": paginator.pagination_data()}
        )

    @extend_schema(summary="A listing (any status)", responses=ListingEnvelopeSerializer, tags=TAG)
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        return self._respond(self.get_object())

    @extend_schema(
        summary="List a catalog model (a draft until published)",
        request=ListingCreateSerializer,
        responses={
            201: ListingEnvelopeSerializer,
            404: _error("MODEL_NOT_FOUND."),
            409: _error("The model already has a listing."),
        },
        tags=TAG,
    )
    def create(self, request: Request) -> Response:
        body = ListingCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        listing = services.listing_create(
            actor=request.user,
            model_id=data["modelId"],
            publisher_name=data["publisher"],
            summary=data["summary"],
            category=data["category"],
            access_mode=data["accessMode"],
        )
        return self._respond(listing, 201)

    @extend_schema(
        summary="Change a listing's publisher, summary, category or access mode",
        request=ListingUpdateSerializer,
        responses=ListingEnvelopeSerializer,
        tags=TAG,
    )
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        listing = self.get_object()
        body = ListingUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        names = {
            "publisher": "publisher_name",
            "summary": "summary",
            "category": "category",
            "accessMode": "access_mode",
        }
        fields = {names[k]: v for k, v in body.validated_data.items()}
        return self._respond(services.listing_update(listing=listing, actor=request.user, **fields))

    @extend_schema(
        summary="Publish (needs terms and a plan on sale)", request=None, responses=ListingEnvelopeSerializer, tags=TAG
    )
    @action(detail=True, methods=["post"])
    def publish(self, request: Request, pk: str | None = None) -> Response:
        return self._respond(services.listing_publish(listing=self.get_object(), actor=request.user))

    @extend_schema(
        summary="Delist: no new purchases; held entitlements keep counting",
        request=None,
        responses=ListingEnvelopeSerializer,
        tags=TAG,
    )
    @action(detail=True, methods=["post"])
    def delist(self, request: Request, pk: str | None = None) -> Response:
        return self._respond(services.listing_delist(listing=self.get_object(), actor=request.user))

    @extend_schema(
        summary="Publish a new version of the licence terms (immutable once published)",
        request=TermsCreateSerializer,
        responses={201: TermsEnvelopeSerializer},
        tags=TAG,
    )
    @action(detail=True, methods=["post"])
    def terms(self, request: Request, pk: str | None = None) -> Response:
        listing = self.get_object()
        body = TermsCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        terms = services.terms_publish(listing=listing, actor=request.user, **body.validated_data)
        return Response({"terms": selectors.terms_data(terms, body=True)}, status=201)

    @extend_schema(
        summary="Put a plan on sale; with replacesPlanId it is a price change (the old plan is retired)",
        request=PlanCreateSerializer,
        responses={201: PlanEnvelopeSerializer},
        tags=TAG,
    )
    @action(detail=True, methods=["post"])
    def plans(self, request: Request, pk: str | None = None) -> Response:
        listing = self.get_object()
        body = PlanCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        plan = services.plan_create(
            listing=listing,
            actor=request.user,
            name=data["name"],
            pricing_model=data["pricingModel"],
            amount=data["price"]["amount_decimal"],
            currency=data["price"]["currency"],
            interval=data.get("interval", ""),
            unit=data.get("unit", ""),
            replaces_plan_id=data.get("replacesPlanId"),
        )
        return Response({"plan": selectors.plan_data(plan)}, status=201)
