"""The API's shapes as plain data (the views, the realtime event and the stored idempotent answers share them); money as decimal strings."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from marketplace.constants import (
    HUB_HOLDER,
    EntitlementStatus,
    ListingStatus,
    PlanStatus,
)
from marketplace.models import Entitlement, LicenceTerms, Listing, Plan, Purchase, Review
from marketplace.selectors.listings import listing_gates
from modelhub.api.dates import iso
from modelhub.roles import has_permission

# --- Money -----------------------------------------------------------------------------------


def money_text(amount: Decimal) -> str:
    """A decimal amount as the API writes it: at least two places, no trailing zeros beyond them
    (``10.00``, ``0.00015``), never exponent notation."""
    text = format(amount.normalize(), "f")
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


def money(amount: Decimal, currency: str) -> dict[str, str]:
    return {"amount": money_text(amount), "currency": currency}


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
