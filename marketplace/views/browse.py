"""Browsing and buying: ``/marketplace/models`` (the spec's list and purchase), reviews, ``my-models``."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from marketplace import selectors, services
from marketplace.constants import ListingStatus
from marketplace.serializers import (
    EntitlementListSerializer,
    EntitlementQuerySerializer,
    ListingEnvelopeSerializer,
    ListingListSerializer,
    ListingQuerySerializer,
    PageQuerySerializer,
    PurchaseRequestSerializer,
    PurchaseResultSerializer,
    ReviewEnvelopeSerializer,
    ReviewInputSerializer,
    ReviewListSerializer,
)
from marketplace.views._base import (
    IDEMPOTENCY_KEY,
    REPLAY_HEADER,
    TAG,
    _error,
    _MarketplaceViewSet,
    _paginate,
)
from modelhub.api.exceptions import ErrorCode


class MarketplaceModelViewSet(_MarketplaceViewSet):
    """``/marketplace/models``: published listings, one per catalog model; ``{pk}`` is the model id."""

    queryset = selectors.published_listings()
    not_found_code = ErrorCode.LISTING_NOT_FOUND
    resource_name = "Listing"
    lookup_url_kwarg = "pk"
    permission_map = {
        "list": "marketplace.read",
        "retrieve": "marketplace.read",
        "purchase": "marketplace.purchase",
        "reviews": "marketplace.read",
        "review": "marketplace.purchase",
    }

    def _answer(self, listings: list[Any], *, detail: bool = False) -> list[dict[str, Any]]:
        held = selectors.held_entitlements(self.request.user, [listing.pk for listing in listings])
        return [
            selectors.listing_data(listing, user=self.request.user, held=held.get(listing.pk, []), detail=detail)
            for listing in listings
        ]

    @extend_schema(
        summary="Browse the marketplace: published listings with plans, terms and what you hold",
        parameters=[ListingQuerySerializer],
        responses=ListingListSerializer,
        tags=TAG,
    )
    def list(self, request: Request) -> Response:
        params = ListingQuerySerializer.parse(request.query_params)
        paginator, page = _paginate(self, selectors.filter_listings(selectors.published_listings(), params))
        return Response({"listings": self._answer(page), "pagination": paginator.pagination_data()})

    @extend_schema(
        summary="A listing with its current licence terms (full text), plans and what you hold",
        responses={
            200: ListingEnvelopeSerializer,
            404: _error("LISTING_NOT_FOUND: no published listing of this model."),
        },
        tags=TAG,
    )
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        listing = selectors.listing_for_model(pk)
        return Response({"listing": self._answer([listing], detail=True)[0]})

    @extend_schema(
        summary="Purchase (or request access to) a marketplace model - idempotent under Idempotency-Key",
        request=PurchaseRequestSerializer,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                required=True,
                description="1-255 printable ASCII characters (a UUID). The same key with the same body "
                "answers the first answer again (with `Idempotent-Replayed: true`), for 24 hours.",
            ),
            OpenApiParameter(
                REPLAY_HEADER,
                str,
                OpenApiParameter.HEADER,
                response=True,
                enum=["true", "false"],
                description="`true` when this is the stored answer of an earlier request with the same key.",
            ),
        ],
        responses={
            201: PurchaseResultSerializer,
            202: OpenApiResponse(
                PurchaseResultSerializer, description="Approval required: the entitlement is pending."
            ),
            400: _error("INVALID_REQUEST / IDEMPOTENCY_KEY_REQUIRED."),
            402: _error("BUDGET_EXCEEDED: a blocking budget (costs) cannot hold the price."),
            403: _error("FORBIDDEN: the role may not purchase, or scope hub without marketplace.manage."),
            404: _error("LISTING_NOT_FOUND."),
            409: _error(
                "TERMS_VERSION_MISMATCH / PRICE_MISMATCH (details name the current values) / ENTITLEMENT_EXISTS / "
                "IDEMPOTENCY_KEY_IN_PROGRESS."
            ),
            422: _error("IDEMPOTENCY_KEY_REUSED: the key was used with a different body."),
        },
        tags=TAG,
    )
    @action(detail=True, methods=["post"])
    def purchase(self, request: Request, pk: str | None = None) -> Response:
        key = request.headers.get("Idempotency-Key")
        if key is None or not IDEMPOTENCY_KEY.match(key):
            raise services.IdempotencyKeyRequired(details={"header": "Idempotency-Key"})
        serializer = PurchaseRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        body = serializer.validated_data
        fingerprint = services.request_fingerprint("POST", f"marketplace/models/{pk}/purchase", request.data)

        def run() -> services.Outcome:
            purchase, entitlement = services.purchase_create(
                actor=request.user,
                model_id=pk,
                plan_id=body["planId"],
                terms_version=body["termsVersion"],
                expected_amount=body["expectedPrice"]["amount_decimal"],
                expected_currency=body["expectedPrice"]["currency"],
                scope=body["scope"],
            )
            purchase = selectors.purchase_queryset().get(pk=purchase.pk)
            entitlement = selectors.entitlement_queryset().get(pk=entitlement.pk)
            pending = entitlement.status == "pending"
            return services.Outcome(
                status.HTTP_202_ACCEPTED if pending else status.HTTP_201_CREATED,
                {"purchase": selectors.purchase_data(purchase), "entitlement": selectors.entitlement_data(entitlement)},
            )

        outcome = services.idempotent(user=request.user, key=key, fingerprint=fingerprint, run=run)
        return Response(
            outcome.body, status=outcome.status, headers={REPLAY_HEADER: "true" if outcome.replayed else "false"}
        )

    @extend_schema(
        summary="Reviews of a listing, newest first",
        parameters=[PageQuerySerializer],
        responses=ReviewListSerializer,
        tags=TAG,
    )
    @action(detail=True, methods=["get"])
    def reviews(self, request: Request, pk: str | None = None) -> Response:
        PageQuerySerializer.parse(request.query_params)
        listing = selectors.listing_for_model(pk, published_only=False)
        if listing.status == ListingStatus.DRAFT:
            selectors.listing_for_model(pk)  # 404 like any unpublished listing
        paginator, page = _paginate(
            self, selectors.review_queryset().filter(listing=listing).order_by("-updated_at", "-id")
        )
        return Response(
            {"reviews": [selectors.review_data(r) for r in page], "pagination": paginator.pagination_data()}
        )

    @extend_schema(
        summary="Write or replace your review (you hold or held an entitlement); it feeds the listing's rating",
        request=ReviewInputSerializer,
        responses={
            200: ReviewEnvelopeSerializer,
            201: ReviewEnvelopeSerializer,
            403: _error("ENTITLEMENT_REQUIRED / FORBIDDEN."),
        },
        tags=TAG,
    )
    @action(detail=True, methods=["put"])
    def review(self, request: Request, pk: str | None = None) -> Response:
        serializer = ReviewInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        review, created = services.review_upsert(actor=request.user, model_id=pk, **serializer.validated_data)
        review = selectors.review_queryset().get(pk=review.pk)
        return Response({"review": selectors.review_data(review)}, status=201 if created else 200)


class MyModelsViewSet(_MarketplaceViewSet):
    """``GET /marketplace/my-models``: the caller's entitlements (own and hub-wide)."""

    queryset = selectors.entitlement_queryset().none()  # (for the schema: the list reads my_entitlements)
    permission_map = {"list": "marketplace.read"}
    resource_name = "Entitlement"
    not_found_code = ErrorCode.ENTITLEMENT_NOT_FOUND

    @extend_schema(
        summary="Your marketplace models: entitlements with plan, status, period, usage and active deployments",
        parameters=[EntitlementQuerySerializer],
        responses=EntitlementListSerializer,
        tags=TAG,
    )
    def list(self, request: Request) -> Response:
        params = EntitlementQuerySerializer.parse(request.query_params)
        qs = selectors.my_entitlements(request.user)
        if params.get("status"):
            qs = qs.filter(status=params["status"])
        paginator, page = _paginate(self, qs)
        items = [selectors.entitlement_data(e) for e in page]
        selectors.fill_entitlement_details(items, request.user)
        return Response({"entitlements": items, "pagination": paginator.pagination_data()})
