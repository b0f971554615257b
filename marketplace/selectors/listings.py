"""The listing and entitlement querysets, search and filters, what a caller holds, whether a listing gates deployment."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from django.db.models import Exists, F, Min, OuterRef, Prefetch, Q, QuerySet

from marketplace.constants import (
    HELD_STATUSES,
    HUB_HOLDER,
    AccessMode,
    ListingStatus,
    PlanStatus,
    PricingModel,
)
from marketplace.models import Entitlement, Listing, Plan, Purchase, Review
from modelhub.api.exceptions import ErrorCode, NotFound
from modelhub.registry import Slot

ENTITLEMENT_DETAILS = Slot(
    "marketplace.entitlement_details",
    """Providers ``(items: list[dict], user) -> None`` that fill the sections of ``GET
    /marketplace/my-models`` items owned by apps above the marketplace: deployments sets
    ``activeDeployments`` (the caller's live deployments of the model), analytics may set ``usage``.
    Each item carries ``modelId`` (a string) and ``scope``.""",
)

# Listings that gate deployment once listed: delisted ones still do (existing holders keep access).
GATING_STATUSES = (ListingStatus.PUBLISHED, ListingStatus.DELISTED)


def holder_key(user: Any) -> str:
    return f"user:{user.pk}"


def holders_for(user: Any) -> list[str]:
    """The holders whose entitlements count for ``user``: their own and the hub-wide ones."""
    return [holder_key(user), HUB_HOLDER]


# --- Querysets ---------------------------------------------------------------------------------


def _active_plans() -> Prefetch:
    return Prefetch(
        "plans",
        queryset=Plan.objects.filter(status=PlanStatus.ACTIVE).order_by("amount", "created_at"),
        to_attr="active_plans",
    )


def listing_queryset() -> QuerySet[Listing]:
    """Every listing with what its answers need in a fixed number of queries."""
    return (
        Listing.objects.select_related("model", "publisher", "current_terms")
        .defer("model__search_vector")
        .prefetch_related(_active_plans())
        .annotate(
            min_price=Min("plans__amount", filter=Q(plans__status=PlanStatus.ACTIVE)),
        )
    )


def published_listings() -> QuerySet[Listing]:
    return listing_queryset().filter(status=ListingStatus.PUBLISHED)


def listing_for_model(model_id: Any, *, published_only: bool = True) -> Listing:
    """The listing of this catalog model; ``LISTING_NOT_FOUND`` (404) for none (or a draft/delisted one)."""
    try:
        pk = uuid.UUID(str(model_id))
    except ValueError:
        pk = None
    qs = published_listings() if published_only else listing_queryset()
    listing = qs.filter(model_id=pk).first() if pk else None
    if listing is None:
        raise NotFound(
            "No marketplace listing for this model.",
            code=ErrorCode.LISTING_NOT_FOUND,
            details={"modelId": str(model_id)[:64]},
        )
    return listing


def filter_pricing_models(qs: QuerySet[Listing], values: list[str]) -> QuerySet[Listing]:
    return qs.filter(
        Exists(Plan.objects.filter(listing=OuterRef("pk"), status=PlanStatus.ACTIVE, pricing_model__in=values))
    )


def search_listings(qs: QuerySet[Listing], text: str) -> QuerySet[Listing]:
    """Every word must appear in the model's name, description, tags or category, the listing's
    summary or the publisher's name."""
    for word in text.split()[:20]:
        qs = qs.filter(
            Q(model__name__icontains=word)
            | Q(model__description__icontains=word)
            | Q(model__tags__icontains=word)
            | Q(category__icontains=word)
            | Q(summary__icontains=word)
            | Q(publisher__name__icontains=word)
        )
    return qs


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()][:50]


SORTS = {"popularity": "popularity", "rating": "avg_rating", "price": "min_price", "newest": "published_at"}


def filter_listings(qs: QuerySet, params: dict[str, Any]) -> QuerySet:
    if params.get("search", "").strip():
        qs = search_listings(qs, params["search"].strip())
    for name, column in (("provider", "model__provider"), ("modelType", "model__model_type"), ("category", "category")):
        values = _split(params.get(name))
        if values:
            qs = qs.filter(**{f"{column}__in": values})
    if _split(params.get("pricingModel")):
        qs = filter_pricing_models(qs, _split(params.get("pricingModel")))
    if _split(params.get("licence")):
        qs = qs.filter(current_terms__licence__in=_split(params.get("licence")))
    if params.get("minRating") is not None:
        qs = qs.filter(avg_rating__gte=params["minRating"])
    sort_by = params.get("sortBy") or "popularity"
    order = params.get("sortOrder") or ("asc" if sort_by == "price" else "desc")
    column = F(SORTS[sort_by])
    column = column.asc(nulls_last=True) if order == "asc" else column.desc(nulls_last=True)
    return qs.order_by(column, "model__name", "id")


def held_entitlements(user: Any, listing_ids: Iterable[Any]) -> dict[Any, list[Entitlement]]:
    """Pending or active entitlements that count for ``user`` (own and hub-wide), per listing id."""
    out: dict[Any, list[Entitlement]] = {}
    rows = Entitlement.objects.filter(
        listing_id__in=list(listing_ids), holder__in=holders_for(user), status__in=HELD_STATUSES
    ).order_by("scope", "created_at")
    for entitlement in rows:
        out.setdefault(entitlement.listing_id, []).append(entitlement)
    return out


def listing_gates(listing: Listing) -> bool:
    """Whether deploying the listing's model needs an active entitlement: a listed model that is
    approval-required, or has no free plan to take."""
    if listing.status not in GATING_STATUSES:
        return False
    if listing.access_mode == AccessMode.APPROVAL_REQUIRED:
        return True
    plans = getattr(listing, "active_plans", None)
    if plans is None:
        plans = list(listing.plans.filter(status=PlanStatus.ACTIVE))
    return not any(p.pricing_model == PricingModel.FREE for p in plans)


def entitlement_queryset() -> QuerySet[Entitlement]:
    return Entitlement.objects.select_related("listing__model", "plan", "terms", "user").defer(
        "listing__model__search_vector"
    )


def purchase_queryset() -> QuerySet[Purchase]:
    return Purchase.objects.select_related("plan__listing", "terms", "user")


def review_queryset() -> QuerySet[Review]:
    return Review.objects.select_related("listing", "user")


def my_entitlements(user: Any) -> QuerySet[Entitlement]:
    """What ``my-models`` lists: the caller's own entitlements and the hub-wide ones, newest first."""
    return entitlement_queryset().filter(holder__in=holders_for(user)).order_by("-created_at", "-id")


def fill_entitlement_details(items: list[dict[str, Any]], user: Any) -> None:
    for item in items:
        item.setdefault("activeDeployments", 0)
        item.setdefault("usage", None)
    ENTITLEMENT_DETAILS.notify(items, user)
