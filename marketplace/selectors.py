"""Marketplace reads: the listing queries, what a caller holds, the deployment gate, and the plain
data every answer is built from (the API, the realtime events and the apps above share it).

For the apps above:

* :func:`check_deployment_entitlement` - deployments calls it before a create or a scale-up;
* :func:`access_lapses` - which (owner, model) pairs lost access, and since when (the grace-period job);
* :data:`ENTITLEMENT_DETAILS` - a slot the apps above fill (``activeDeployments``, ``usage``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Count, Exists, Min, OuterRef, Prefetch, Q, QuerySet

from marketplace.constants import (
    HELD_STATUSES,
    HUB_HOLDER,
    AccessMode,
    EntitlementStatus,
    ListingStatus,
    PlanStatus,
    PricingModel,
)
from marketplace.models import Entitlement, LicenceTerms, Listing, Plan, Purchase, Review
from modelhub.api.dates import iso
from modelhub.api.exceptions import AppError, ErrorCode, NotFound
from modelhub.registry import Slot
from modelhub.roles import has_permission

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


# --- Money -----------------------------------------------------------------------------------


def money_text(amount: Decimal) -> str:
    """A decimal amount as the API writes it: at least two places, no trailing zeros beyond them
    (``10.00``, ``0.00015``), never exponent notation."""
    text = format(amount.normalize(), "f")
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


def money(amount: Decimal, currency: str) -> dict[str, str]:
    return {"amount": money_text(amount), "currency": currency}


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


# --- Plain data (the API's shapes) ---------------------------------------------------------------


def plan_data(plan: Plan) -> dict[str, Any]:
    return {
        "id": str(plan.pk),
        "name": plan.name,
        "pricingModel": plan.pricing_model,
        "price": money(plan.amount, plan.currency),
        "interval": plan.interval or None,
        "unit": plan.unit or None,
        "status": plan.status,
        "replacesPlanId": str(plan.replaces_id) if plan.replaces_id else None,
        "createdAt": iso(plan.created_at),
    }


def terms_data(terms: LicenceTerms | None, *, body: bool = False) -> dict[str, Any] | None:
    if terms is None:
        return None
    data = {
        "version": terms.version,
        "licence": terms.licence,
        "title": terms.title,
        "contentHash": terms.content_hash,
        "publishedAt": iso(terms.published_at),
    }
    if body:
        data["body"] = terms.body
    return data


def _caller(listing: Listing, user: Any, held: list[Entitlement]) -> dict[str, Any]:
    own = [e for e in held if e.holder != HUB_HOLDER]
    reason = None
    if not has_permission(getattr(user, "role", None), "marketplace.purchase"):
        reason = "Your role may not purchase."
    elif listing.status != ListingStatus.PUBLISHED:
        reason = "The listing is not published."
    elif own:
        reason = f"You already hold an entitlement ({own[0].status})."
    elif not getattr(listing, "active_plans", None):
        reason = "The listing has no plan on sale."
    active = any(e.status == EntitlementStatus.ACTIVE for e in held)
    return {
        "canPurchase": reason is None,
        "reason": reason,
        "canDeploy": active or not listing_gates(listing),
        "entitlements": [
            {"id": str(e.pk), "status": e.status, "scope": e.scope, "planId": str(e.plan_id)} for e in held
        ],
    }


def listing_data(
    listing: Listing, *, user: Any = None, held: list[Entitlement] | None = None, detail: bool = False
) -> dict[str, Any]:
    """A listing as ``GET /marketplace/models`` shows it; ``caller`` only when ``user`` is given."""
    model = listing.model
    plans = getattr(listing, "active_plans", None)
    if plans is None:
        plans = list(listing.plans.filter(status=PlanStatus.ACTIVE))
    data: dict[str, Any] = {
        "id": str(listing.pk),
        "modelId": str(model.pk),
        "name": model.name,
        "version": model.version,
        "provider": model.provider,
        "modelType": model.model_type,
        "description": model.description,
        "summary": listing.summary,
        "category": listing.category,
        "publisher": {
            "id": str(listing.publisher_id),
            "name": listing.publisher.name,
            "verified": listing.publisher.verified,
        },
        "accessMode": listing.access_mode,
        "status": listing.status,
        "terms": terms_data(listing.current_terms, body=detail),
        "plans": [plan_data(p) for p in plans],
        "pricingModels": sorted({p.pricing_model for p in plans}),
        "startingPrice": money(min(p.amount for p in plans), plans[0].currency) if plans else None,
        "rating": {
            "average": round(listing.avg_rating, 2) if listing.avg_rating is not None else None,
            "count": listing.review_count,
        },
        "popularity": listing.popularity,
        "publishedAt": iso(listing.published_at),
        "createdAt": iso(listing.created_at),
        "updatedAt": iso(listing.updated_at),
    }
    if user is not None:
        data["caller"] = _caller(listing, user, held or [])
    return data


def entitlement_data(entitlement: Entitlement) -> dict[str, Any]:
    """An entitlement as ``my-models``, the purchase answer and ``entitlement:update`` show it."""
    listing = entitlement.listing
    return {
        "id": str(entitlement.pk),
        "modelId": str(listing.model_id),
        "listingId": str(listing.pk),
        "modelName": listing.model.name,
        "scope": entitlement.scope,
        "holder": entitlement.user.username if entitlement.scope == "user" else None,
        "acquiredBy": entitlement.user.username,
        "status": entitlement.status,
        "statusReason": entitlement.status_reason or None,
        "plan": plan_data(entitlement.plan),
        "termsVersion": entitlement.terms.version,
        "termsHash": entitlement.terms.content_hash,
        "period": {"start": iso(entitlement.period_start), "end": iso(entitlement.period_end)},
        "cancelAtPeriodEnd": entitlement.cancel_at_period_end,
        "endedAt": iso(entitlement.ended_at),
        "createdAt": iso(entitlement.created_at),
        "updatedAt": iso(entitlement.updated_at),
    }


def purchase_data(purchase: Purchase) -> dict[str, Any]:
    return {
        "id": str(purchase.pk),
        "entitlementId": str(purchase.entitlement_id),
        "modelId": str(purchase.plan.listing.model_id),
        "planId": str(purchase.plan_id),
        "kind": purchase.kind,
        "price": money(purchase.amount, purchase.currency),
        "termsVersion": purchase.terms.version,
        "termsHash": purchase.terms_hash,
        "status": purchase.status,
        "buyer": purchase.user.username,
        "createdAt": iso(purchase.created_at),
        "refundedAt": iso(purchase.refunded_at),
    }


def review_data(review: Review) -> dict[str, Any]:
    return {
        "id": str(review.pk),
        "modelId": str(review.listing.model_id),
        "author": review.user.username,
        "rating": review.rating,
        "title": review.title,
        "body": review.body,
        "createdAt": iso(review.created_at),
        "updatedAt": iso(review.updated_at),
    }


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


# --- The deployment gate -------------------------------------------------------------------------


class EntitlementRequired(AppError):
    status_code = 403
    code = ErrorCode.ENTITLEMENT_REQUIRED
    default_message = "Deploying this model needs an active marketplace entitlement."


def check_deployment_entitlement(*, user: Any, model_id: Any) -> None:
    """Raise ``ENTITLEMENT_REQUIRED`` (403) when the model is listed paid or approval-required and
    neither ``user`` nor the hub holds an active entitlement; return quietly otherwise."""
    listing = Listing.objects.filter(model_id=model_id).prefetch_related(_active_plans()).first()
    if listing is None or not listing_gates(listing):
        return
    holders = holders_for(user) if getattr(user, "pk", None) else [HUB_HOLDER]
    if Entitlement.objects.filter(listing=listing, holder__in=holders, status=EntitlementStatus.ACTIVE).exists():
        return
    pending = Entitlement.objects.filter(listing=listing, holder__in=holders, status=EntitlementStatus.PENDING).exists()
    raise EntitlementRequired(
        "This model is a paid or approval-required marketplace listing: an active entitlement is needed "
        + ("(yours is pending approval)." if pending else "(purchase it in the marketplace)."),
        details={
            "modelId": str(model_id),
            "listingId": str(listing.pk),
            "accessMode": listing.access_mode,
            "pendingApproval": pending,
        },
    )


def access_lapses(pairs: Iterable[tuple[Any, Any]], *, now: datetime) -> dict[tuple[Any, Any], datetime]:
    """For (owner id, model id) pairs of running deployments: those whose owner has no active
    entitlement to a gating listing, with when access ended (the latest ``ended_at`` of the entitlements
    that counted for them, else when the listing was published). Pairs with access are left out."""
    pairs = list(dict.fromkeys(pairs))
    if not pairs:
        return {}
    model_ids = {model_id for _, model_id in pairs}
    listings = {
        listing.model_id: listing
        for listing in Listing.objects.filter(model_id__in=model_ids, status__in=GATING_STATUSES).prefetch_related(
            _active_plans()
        )
    }
    gating = {model_id: listing for model_id, listing in listings.items() if listing_gates(listing)}
    if not gating:
        return {}
    rows = Entitlement.objects.filter(listing__in=list(gating.values())).values_list(
        "listing__model_id", "holder", "status", "ended_at"
    )
    active: set[tuple[Any, str]] = set()
    ended: dict[tuple[Any, str], datetime] = {}
    for model_id, holder, status, ended_at in rows:
        if status == EntitlementStatus.ACTIVE:
            active.add((model_id, holder))
        elif ended_at is not None:
            key = (model_id, holder)
            ended[key] = max(ended.get(key, ended_at), ended_at)
    out: dict[tuple[Any, Any], datetime] = {}
    for owner_id, model_id in pairs:
        listing = gating.get(model_id)
        if listing is None:
            continue
        holders = [HUB_HOLDER] + ([f"user:{owner_id}"] if owner_id else [])
        if any((model_id, h) in active for h in holders):
            continue
        ends = [ended[(model_id, h)] for h in holders if (model_id, h) in ended]
        out[(owner_id, model_id)] = max(ends) if ends else (listing.published_at or now)
    return out


def listing_counts() -> dict[str, int]:
    return dict(Listing.objects.values_list("status").annotate(n=Count("pk")).values_list("status", "n"))
