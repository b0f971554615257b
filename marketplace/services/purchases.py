"""Purchases (recorded once, under the current terms and price), refunds, reviews."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Avg, Count, F
from django.utils import timezone

from marketplace import selectors
from marketplace.constants import (
    HELD_STATUSES,
    HUB_HOLDER,
    AccessMode,
    EntitlementScope,
    EntitlementStatus,
    ListingStatus,
    PlanStatus,
    PurchaseStatus,
)
from marketplace.models import Entitlement, Listing, Plan, Purchase, Review
from marketplace.services._common import PURCHASE_CHECKS, EntitlementExists, _not_found, _notify, _period_end, _user
from marketplace.services.entitlements import _move
from modelhub.api.exceptions import Conflict, ErrorCode, Forbidden, InvalidRequest
from modelhub.roles import has_permission

# --- Purchases ---------------------------------------------------------------------------------


def _check_current(
    listing: Listing, plan: Plan | None, plan_id: Any, terms_version: int, amount: Decimal, currency: str
) -> Plan:
    """The plan, terms and price the buyer saw must be the ones on sale now (409 naming those)."""
    if plan is None:
        raise InvalidRequest(
            "planId is not a plan of this listing.",
            details={
                "fields": {"planId": ["Not a plan of this listing."]},
                "plans": [str(p.pk) for p in listing.active_plans],
            },
        )
    if plan.status != PlanStatus.ACTIVE:
        successor = getattr(plan, "replaced_by", None) if hasattr(plan, "replaced_by") else None
        raise Conflict(
            "That plan is no longer on sale.",
            code=ErrorCode.PRICE_MISMATCH,
            details={
                "planId": str(plan.pk),
                "planStatus": plan.status,
                "currentPlan": selectors.plan_data(successor)
                if successor is not None and successor.status == PlanStatus.ACTIVE
                else None,
                "currentPlans": [selectors.plan_data(p) for p in listing.active_plans],
            },
        )
    terms = listing.current_terms
    if terms is None or terms.version != terms_version:
        raise Conflict(
            f"The licence terms are at version {terms.version if terms else None}, not {terms_version}: read and accept them.",
            code=ErrorCode.TERMS_VERSION_MISMATCH,
            details={"currentTerms": selectors.terms_data(terms), "acceptedVersion": terms_version},
        )
    if plan.amount != amount or plan.currency != currency:
        raise Conflict(
            f"The price is {selectors.money_text(plan.amount)} {plan.currency}, not {selectors.money_text(amount)} {currency}.",
            code=ErrorCode.PRICE_MISMATCH,
            details={
                "planId": str(plan.pk),
                "currentPrice": selectors.money(plan.amount, plan.currency),
                "expectedPrice": selectors.money(amount, currency),
            },
        )
    return plan


def _held_conflict(listing: Listing, holder: str) -> None:
    existing = Entitlement.objects.filter(listing=listing, holder=holder, status__in=HELD_STATUSES).first()
    if existing is not None:
        raise EntitlementExists(
            f"An entitlement to this listing is already {existing.status}.",
            details={"entitlementId": str(existing.pk), "status": existing.status, "scope": existing.scope},
        )


@transaction.atomic
def purchase_create(
    *,
    actor: Any,
    model_id: Any,
    plan_id: Any,
    terms_version: int,
    expected_amount: Decimal,
    expected_currency: str,
    scope: str = EntitlementScope.USER,
) -> tuple[Purchase, Entitlement]:
    """Buy a plan of a published listing: a :class:`Purchase` and an :class:`Entitlement` (active, or
    pending on an approval-required listing).

    Refused with 409 when the terms version or the price the buyer accepted are not the current ones,
    or when the holder already has a pending or active entitlement (checked, and backed by the partial
    unique constraint for two purchases racing); budget checks (:data:`PURCHASE_CHECKS`) run for paid
    plans before anything is written. ``scope="hub"`` (admins and managers) buys for everyone.
    """
    user = _user(actor)
    if scope == EntitlementScope.HUB and not has_permission(getattr(user, "role", None), "marketplace.manage"):
        raise Forbidden(
            "Only admins and managers buy hub-wide entitlements.",
            details={"fields": {"scope": ["hub needs marketplace.manage"]}},
        )
    listing = selectors.listing_for_model(model_id)
    # Purchases of a listing, and changes to its terms and plans, queue on its row: the constraint
    # would make the loser of a race fail anyway, but this way it fails with the readable 409, and
    # the terms and plans checked below are the ones current when the purchase is recorded (read again
    # after the lock).
    Listing.objects.select_for_update().filter(pk=listing.pk).values_list("pk", flat=True).first()
    listing = selectors.listing_for_model(model_id)
    plan = Plan.objects.filter(pk=plan_id, listing=listing).select_related("replaced_by").first() if plan_id else None
    plan = _check_current(listing, plan, plan_id, terms_version, expected_amount, expected_currency)
    holder = HUB_HOLDER if scope == EntitlementScope.HUB else selectors.holder_key(user)
    _held_conflict(listing, holder)
    if plan.is_paid:
        for check in PURCHASE_CHECKS.providers:
            check(user=user, model_id=listing.model_id, amount=plan.amount, currency=plan.currency)
    now = timezone.now()
    pending = listing.access_mode == AccessMode.APPROVAL_REQUIRED
    try:
        with transaction.atomic():
            entitlement = Entitlement.objects.create(
                listing=listing,
                plan=plan,
                terms=listing.current_terms,
                scope=scope,
                holder=holder,
                user=user,
                status=EntitlementStatus.PENDING if pending else EntitlementStatus.ACTIVE,
                status_reason="Waiting for approval." if pending else "",
                period_start=now,
                period_end=_period_end(plan, now),
            )
    except IntegrityError:
        _held_conflict(listing, holder)
        raise
    purchase = Purchase.objects.create(
        entitlement=entitlement,
        user=user,
        plan=plan,
        terms=listing.current_terms,
        terms_hash=listing.current_terms.content_hash,
        amount=plan.amount,
        currency=plan.currency,
    )
    Listing.objects.filter(pk=listing.pk).update(popularity=F("popularity") + 1)
    _notify(entitlement)
    return purchase, entitlement


@transaction.atomic
def purchase_refund(*, purchase: Purchase, actor: Any, reason: str = "") -> Purchase:
    """Refund a purchase (``marketplace.refund``, admins). The entitlement it paid for ends
    (``refunded``) when no other completed purchase of it remains. Refunding twice changes nothing."""
    locked = Purchase.objects.select_for_update().get(pk=purchase.pk)
    if locked.status == PurchaseStatus.COMPLETED:
        locked.status = PurchaseStatus.REFUNDED
        locked.refunded_at = timezone.now()
        locked.refunded_by = _user(actor)
        locked.refund_reason = reason[:500]
        locked.save(update_fields=["status", "refunded_at", "refunded_by", "refund_reason"])
        entitlement = Entitlement.objects.get(pk=locked.entitlement_id)
        still_paid = Purchase.objects.filter(entitlement=entitlement, status=PurchaseStatus.COMPLETED).exists()
        if entitlement.status in HELD_STATUSES and not still_paid:
            _move(
                entitlement,
                to=EntitlementStatus.REFUNDED,
                allowed_from=HELD_STATUSES,
                actor=actor,
                reason=reason or "Refunded.",
            )
    return selectors.purchase_queryset().get(pk=locked.pk)


# --- Reviews -----------------------------------------------------------------------------------


@transaction.atomic
def review_upsert(*, actor: Any, model_id: Any, rating: int, title: str = "", body: str = "") -> tuple[Review, bool]:
    """The caller's review of a listing they hold or held an entitlement to (403
    ``ENTITLEMENT_REQUIRED`` otherwise); a second review replaces the first. The listing's
    ``rating`` is recomputed from its reviews in the same transaction."""
    user = _user(actor)
    listing = selectors.listing_for_model(model_id, published_only=False)
    if listing.status == ListingStatus.DRAFT:
        raise _not_found(ErrorCode.LISTING_NOT_FOUND, "Listing", model_id)
    entitled = Entitlement.objects.filter(
        listing=listing,
        holder__in=selectors.holders_for(user),
        status__in=(EntitlementStatus.ACTIVE, EntitlementStatus.CANCELLED, EntitlementStatus.EXPIRED),
    ).exists()
    if not entitled:
        raise selectors.EntitlementRequired(
            "Only users who hold (or held) an entitlement to this model may review it.",
            details={"modelId": str(listing.model_id)},
        )
    Listing.objects.select_for_update().filter(pk=listing.pk).values_list("pk", flat=True).first()
    review, created = Review.objects.update_or_create(
        listing=listing, user=user, defaults={"rating": rating, "title": title, "body": body}
    )
    stats = Review.objects.filter(listing=listing).aggregate(avg=Avg("rating"), n=Count("pk"))
    Listing.objects.filter(pk=listing.pk).update(avg_rating=stats["avg"], review_count=stats["n"])
    return review, created
