"""The marketplace endpoints: the spec's three routes plus listing management, access-request
decisions, cancellations, refunds and reviews (README "Marketplace")."""

from __future__ import annotations

import re
from typing import Any

from django.db.models import F, Q, QuerySet
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from marketplace import selectors, services
from marketplace.constants import ListingStatus
from marketplace.serializers import (
    DecisionSerializer,
    EntitlementEnvelopeSerializer,
    EntitlementListSerializer,
    EntitlementQuerySerializer,
    ListingCreateSerializer,
    ListingEnvelopeSerializer,
    ListingListSerializer,
    ListingQuerySerializer,
    ListingUpdateSerializer,
    ManagedListingQuerySerializer,
    PageQuerySerializer,
    PlanCreateSerializer,
    PlanEnvelopeSerializer,
    PurchaseEnvelopeSerializer,
    PurchaseListSerializer,
    PurchaseRequestSerializer,
    PurchaseResultSerializer,
    ReviewEnvelopeSerializer,
    ReviewInputSerializer,
    ReviewListSerializer,
    TermsCreateSerializer,
    TermsEnvelopeSerializer,
)
from modelhub.api.exceptions import ErrorCode
from modelhub.api.pagination import PagePagination
from modelhub.api.schema import ErrorResponseSerializer
from modelhub.api.viewsets import BaseViewSet
from modelhub.roles import has_permission

TAG = ["marketplace"]
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
REPLAY_HEADER = "Idempotent-Replayed"


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorResponseSerializer, description=description)


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()][:50]


SORTS = {"popularity": "popularity", "rating": "avg_rating", "price": "min_price", "newest": "published_at"}


def filter_listings(qs: QuerySet, params: dict[str, Any]) -> QuerySet:
    if params.get("search", "").strip():
        qs = selectors.search_listings(qs, params["search"].strip())
    for name, column in (("provider", "model__provider"), ("modelType", "model__model_type"), ("category", "category")):
        values = _split(params.get(name))
        if values:
            qs = qs.filter(**{f"{column}__in": values})
    if _split(params.get("pricingModel")):
        qs = selectors.filter_pricing_models(qs, _split(params.get("pricingModel")))
    if _split(params.get("licence")):
        qs = qs.filter(current_terms__licence__in=_split(params.get("licence")))
    if params.get("minRating") is not None:
        qs = qs.filter(avg_rating__gte=params["minRating"])
    sort_by = params.get("sortBy") or "popularity"
    order = params.get("sortOrder") or ("asc" if sort_by == "price" else "desc")
    column = F(SORTS[sort_by])
    column = column.asc(nulls_last=True) if order == "asc" else column.desc(nulls_last=True)
    return qs.order_by(column, "model__name", "id")


class _MarketplaceViewSet(BaseViewSet):
    """The marketplace's lists parse their parameters with query serializers and page with
    :class:`PagePagination` themselves (answers are built by the selectors), so the schema takes the
    declared response shapes as they are."""

    pagination_class = None
    filter_backends: list = []
    serializer_class = serializers.Serializer  # (OPTIONS' metadata; the actions name their own bodies)


def _paginate(view: BaseViewSet, qs: QuerySet) -> tuple[PagePagination, list[Any]]:
    paginator = PagePagination()
    return paginator, paginator.paginate_queryset(qs, view.request, view=None)


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
        paginator, page = _paginate(self, filter_listings(selectors.published_listings(), params))
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
            )
        ],
        responses={
            201: PurchaseResultSerializer,
            202: OpenApiResponse(
                PurchaseResultSerializer, description="Approval required: the entitlement is pending."
            ),
            400: _error("INVALID_REQUEST / IDEMPOTENCY_KEY_REQUIRED."),
            403: _error("FORBIDDEN (role; scope hub needs marketplace.manage) / BUDGET_EXCEEDED from a budget check."),
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


def request_data(request: Request) -> Any:
    """An empty body counts as ``{}`` for the bodies whose fields are all optional."""
    return request.data if request.data not in (None, "") else {}


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
