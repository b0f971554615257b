"""Marketplace writes: listings, plans, licence terms, purchases, entitlements, reviews."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Avg, Count, F, Max
from django.utils import timezone

from catalog import selectors as catalog_selectors
from marketplace import selectors
from marketplace.constants import (
    FINAL_STATUSES,
    HELD_STATUSES,
    HUB_HOLDER,
    AccessMode,
    BillingInterval,
    EntitlementScope,
    EntitlementStatus,
    IdempotencyState,
    ListingStatus,
    PlanStatus,
    PricingModel,
    PurchaseKind,
    PurchaseStatus,
)
from marketplace.models import Entitlement, IdempotencyKey, LicenceTerms, Listing, Plan, Publisher, Purchase, Review
from modelhub import realtime
from modelhub.api.exceptions import AppError, Conflict, ErrorCode, Forbidden, InvalidRequest, NotFound, error_body
from modelhub.registry import Slot
from modelhub.roles import has_permission

PURCHASE_CHECKS = Slot(
    "marketplace.purchase_checks",
    """Checks run before a paid purchase is recorded (the costs app registers its budget check here).

    Each provider is called as ``provider(user=<User>, model_id=<uuid.UUID>, amount=<Decimal>,
    currency=<str>)`` inside the purchase transaction, before anything is written; it refuses the
    purchase by raising an ``AppError`` (for instance ``ErrorCode.BUDGET_EXCEEDED``) and returns
    nothing otherwise. Free plans are not checked.""",
)


# --- Errors -------------------------------------------------------------------------------------


class EntitlementExists(Conflict):
    code = ErrorCode.ENTITLEMENT_EXISTS
    default_message = "An active or pending entitlement to this listing is already held."


class IdempotencyKeyRequired(AppError):
    code = ErrorCode.IDEMPOTENCY_KEY_REQUIRED
    default_message = "A purchase needs an Idempotency-Key header (1-255 printable ASCII characters), e.g. a UUID."


class IdempotencyKeyReused(AppError):
    """422, as the IETF draft and Stripe answer: the key names a different request."""

    status_code = 422
    code = ErrorCode.IDEMPOTENCY_KEY_REUSED
    default_message = "This Idempotency-Key was used with a different request; use a new key for a new request."


def _not_found(code: ErrorCode, what: str, ident: Any) -> NotFound:
    return NotFound(f"{what} not found.", code=code, details={"id": str(ident)[:64]})


def _user(actor: Any) -> Any:
    return actor if getattr(actor, "pk", None) else None


def _notify(entitlement: Entitlement) -> None:
    """``entitlement:update`` to the holder (hub-wide ones: to whoever acquired it), after commit."""
    fresh = selectors.entitlement_queryset().get(pk=entitlement.pk)
    realtime.publish_to_user(fresh.user_id, "entitlement:update", selectors.entitlement_data(fresh))


# --- Publishers, listings, terms, plans (marketplace.manage) --------------------------------------


@transaction.atomic
def publisher_get_or_create(*, name: str, website: str = "", verified: bool | None = None) -> Publisher:
    publisher, created = Publisher.objects.get_or_create(name=name.strip(), defaults={"website": website})
    if verified is not None and publisher.verified != verified:
        publisher.verified = verified
        publisher.save(update_fields=["verified"])
    return publisher


@transaction.atomic
def listing_create(
    *,
    actor: Any,
    model_id: Any,
    publisher_name: str,
    summary: str = "",
    category: str = "",
    access_mode: str = AccessMode.OPEN,
) -> Listing:
    """A draft listing of a catalog model (one listing per model: 409 for a second)."""
    model = catalog_selectors.model_by_id(model_id)
    if model is None:
        raise NotFound(
            f"Model {model_id} not found.", code=ErrorCode.MODEL_NOT_FOUND, details={"modelId": str(model_id)}
        )
    if Listing.objects.filter(model=model).exists():
        raise Conflict("This model already has a listing.", details={"modelId": str(model.pk)})
    publisher = publisher_get_or_create(name=publisher_name)
    try:
        with transaction.atomic():
            return Listing.objects.create(
                model=model,
                publisher=publisher,
                summary=summary,
                category=category or model.category,
                access_mode=access_mode,
            )
    except IntegrityError:
        raise Conflict("This model already has a listing.", details={"modelId": str(model.pk)}) from None


@transaction.atomic
def listing_update(*, listing: Listing, actor: Any, **fields: Any) -> Listing:
    """Change summary, category, access mode or publisher (``publisher_name``); anything else is fixed."""
    locked = Listing.objects.select_for_update().get(pk=listing.pk)
    if "publisher_name" in fields:
        locked.publisher = publisher_get_or_create(name=fields.pop("publisher_name"))
    for name in ("summary", "category", "access_mode"):
        if name in fields:
            setattr(locked, name, fields.pop(name))
    if fields:
        raise InvalidRequest(f"Unknown listing fields: {', '.join(sorted(fields))}.")
    locked.save()
    return locked


@transaction.atomic
def listing_publish(*, listing: Listing, actor: Any) -> Listing:
    """draft or delisted -> published; needs licence terms and at least one plan on sale."""
    locked = Listing.objects.select_for_update().get(pk=listing.pk)
    problems = []
    if locked.current_terms_id is None:
        problems.append("Publish licence terms first.")
    if not locked.plans.filter(status=PlanStatus.ACTIVE).exists():
        problems.append("Add a plan first.")
    if problems:
        raise Conflict(" ".join(problems), details={"currentStatus": locked.status, "missing": problems})
    if locked.status != ListingStatus.PUBLISHED:
        locked.status = ListingStatus.PUBLISHED
        locked.published_at = locked.published_at or timezone.now()
        locked.delisted_at = None
        locked.save()
    return locked


@transaction.atomic
def listing_delist(*, listing: Listing, actor: Any) -> Listing:
    """published -> delisted: no new purchases; entitlements already held keep counting."""
    locked = Listing.objects.select_for_update().get(pk=listing.pk)
    if locked.status == ListingStatus.DRAFT:
        raise Conflict("A draft listing is not listed.", details={"currentStatus": locked.status})
    if locked.status != ListingStatus.DELISTED:
        locked.status = ListingStatus.DELISTED
        locked.delisted_at = timezone.now()
        locked.save()
    return locked


def terms_hash(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


@transaction.atomic
def terms_publish(*, listing: Listing, actor: Any, licence: str, title: str, body: str) -> LicenceTerms:
    """A new version of the listing's licence terms, current at once; earlier versions stay as they were
    (buyers accepted them). Publishing the same text as the current version changes nothing."""
    locked = Listing.objects.select_for_update(of=("self",)).select_related("current_terms").get(pk=listing.pk)
    digest = terms_hash(body)
    current = locked.current_terms
    if current is not None and current.content_hash == digest and current.licence == licence and current.title == title:
        return current
    version = (locked.terms.aggregate(v=Max("version"))["v"] or 0) + 1
    terms = LicenceTerms.objects.create(
        listing=locked, version=version, licence=licence, title=title, body=body, content_hash=digest
    )
    locked.current_terms = terms
    locked.save(update_fields=["current_terms", "updated_at"])
    return terms


def _check_plan_shape(pricing_model: str, amount: Decimal, interval: str, unit: str) -> None:
    fields: dict[str, list[str]] = {}
    if pricing_model == PricingModel.FREE and amount != 0:
        fields["price.amount"] = ["A free plan costs 0."]
    if pricing_model != PricingModel.FREE and amount <= 0:
        fields["price.amount"] = ["A paid plan costs more than 0."]
    if (pricing_model == PricingModel.SUBSCRIPTION) != bool(interval):
        fields["interval"] = ["Required for subscription plans, and only for them."]
    if (pricing_model == PricingModel.USAGE) != bool(unit):
        fields["unit"] = ["Required for usage plans, and only for them."]
    if fields:
        raise InvalidRequest(f"The plan is invalid: {', '.join(sorted(fields))}.", details={"fields": fields})


@transaction.atomic
def plan_create(
    *,
    listing: Listing,
    actor: Any,
    name: str,
    pricing_model: str,
    amount: Decimal,
    currency: str,
    interval: str = "",
    unit: str = "",
    replaces_plan_id: Any = None,
) -> Plan:
    """A new plan on sale. With ``replaces_plan_id`` it is the price change of that plan: the old one
    is retired (holders keep it; new buyers get this one)."""
    locked = Listing.objects.select_for_update().get(pk=listing.pk)
    _check_plan_shape(pricing_model, amount, interval, unit)
    replaced = None
    if replaces_plan_id is not None:
        replaced = Plan.objects.select_for_update().filter(pk=replaces_plan_id, listing=locked).first()
        if replaced is None:
            raise InvalidRequest(
                "replacesPlanId is not a plan of this listing.",
                details={"fields": {"replacesPlanId": ["Not a plan of this listing."]}},
            )
        if replaced.status != PlanStatus.ACTIVE:
            raise Conflict("That plan is already retired.", details={"planId": str(replaced.pk)})
        replaced.status = PlanStatus.RETIRED
        replaced.retired_at = timezone.now()
        replaced.save(update_fields=["status", "retired_at"])
    return Plan.objects.create(
        listing=locked,
        name=name,
        pricing_model=pricing_model,
        amount=amount,
        currency=currency,
        interval=interval,
        unit=unit,
        replaces=replaced,
    )


@transaction.atomic
def plan_retire(*, plan: Plan, actor: Any) -> Plan:
    """Take a plan off sale (idempotent); entitlements on it keep their terms."""
    Plan.objects.filter(pk=plan.pk, status=PlanStatus.ACTIVE).update(
        status=PlanStatus.RETIRED, retired_at=timezone.now()
    )
    plan.refresh_from_db()
    return plan


# --- Purchases ---------------------------------------------------------------------------------


def _period_end(plan: Plan, start: datetime) -> datetime | None:
    if plan.pricing_model != PricingModel.SUBSCRIPTION:
        return None
    return start + (relativedelta(months=1) if plan.interval == BillingInterval.MONTH else relativedelta(years=1))


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
    # Serialise purchases of one listing per holder: the constraint makes the loser fail anyway, but
    # the row lock lets it fail with the readable 409 instead of an IntegrityError.
    Listing.objects.select_for_update().filter(pk=listing.pk).values_list("pk", flat=True).first()
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


# --- The entitlement lifecycle ------------------------------------------------------------------


def _move(
    entitlement: Entitlement, *, to: str, allowed_from: tuple[str, ...], actor: Any, reason: str, **updates: Any
) -> Entitlement:
    """A conditional UPDATE from the status just read: of two concurrent decisions one wins, the
    other re-reads and answers 409 (or nothing, when it asked for the status already reached)."""
    current = Entitlement.objects.filter(pk=entitlement.pk).values_list("status", flat=True).first()
    if current is None:
        raise _not_found(ErrorCode.ENTITLEMENT_NOT_FOUND, "Entitlement", entitlement.pk)
    if current == to:
        return selectors.entitlement_queryset().get(pk=entitlement.pk)
    if current not in allowed_from:
        raise Conflict(
            f"A {current} entitlement cannot become {to}.",
            details={"currentStatus": current, "requestedStatus": to, "allowedFrom": list(allowed_from)},
        )
    now = timezone.now()
    if to in FINAL_STATUSES:
        updates.setdefault("ended_at", now)
    changed = Entitlement.objects.filter(pk=entitlement.pk, status=current).update(
        status=to, status_reason=reason[:500], decided_by=_user(actor), updated_at=now, **updates
    )
    if not changed:
        return _move(entitlement, to=to, allowed_from=allowed_from, actor=actor, reason=reason, **updates)
    fresh = selectors.entitlement_queryset().get(pk=entitlement.pk)
    _notify(fresh)
    return fresh


def _refund_purchases(entitlement: Entitlement, *, actor: Any, reason: str) -> int:
    return Purchase.objects.filter(entitlement=entitlement, status=PurchaseStatus.COMPLETED).update(
        status=PurchaseStatus.REFUNDED, refunded_at=timezone.now(), refunded_by=_user(actor), refund_reason=reason[:500]
    )


@transaction.atomic
def entitlement_approve(*, entitlement: Entitlement, actor: Any, reason: str = "") -> Entitlement:
    """pending -> active (``marketplace.approve``); a subscription's period starts now."""
    now = timezone.now()
    return _move(
        entitlement,
        to=EntitlementStatus.ACTIVE,
        allowed_from=(EntitlementStatus.PENDING,),
        actor=actor,
        reason=reason or "Approved.",
        period_start=now,
        period_end=_period_end(entitlement.plan, now),
    )


@transaction.atomic
def entitlement_reject(*, entitlement: Entitlement, actor: Any, reason: str = "") -> Entitlement:
    """pending -> rejected; what was paid for it is refunded."""
    moved = _move(
        entitlement,
        to=EntitlementStatus.REJECTED,
        allowed_from=(EntitlementStatus.PENDING,),
        actor=actor,
        reason=reason or "Rejected.",
    )
    _refund_purchases(moved, actor=actor, reason="Access request rejected.")
    return moved


@transaction.atomic
def entitlement_revoke(*, entitlement: Entitlement, actor: Any, reason: str = "") -> Entitlement:
    """pending or active -> revoked (a licence breach, a withdrawn model): no refund; new deployments
    and scale-ups are refused at once, running ones stop after the grace period."""
    return _move(
        entitlement, to=EntitlementStatus.REVOKED, allowed_from=HELD_STATUSES, actor=actor, reason=reason or "Revoked."
    )


@transaction.atomic
def entitlement_cancel(*, entitlement: Entitlement, actor: Any) -> Entitlement:
    """The holder stops it. A subscription runs to the end of its paid period (``cancelAtPeriodEnd``);
    anything else (one-time, usage, free) ends now, as does a pending request."""
    user = _user(actor)
    locked = Entitlement.objects.select_for_update().get(pk=entitlement.pk)
    own = locked.holder == selectors.holder_key(user) if user else False
    hub_manager = locked.holder == HUB_HOLDER and has_permission(getattr(user, "role", None), "marketplace.manage")
    if not (own or hub_manager):
        raise _not_found(ErrorCode.ENTITLEMENT_NOT_FOUND, "Entitlement", entitlement.pk)
    if (
        locked.status == EntitlementStatus.ACTIVE
        and locked.period_end is not None
        and locked.period_end > timezone.now()
    ):
        if not locked.cancel_at_period_end:
            locked.cancel_at_period_end = True
            locked.status_reason = "Cancelled; active until the end of the period."
            locked.save(update_fields=["cancel_at_period_end", "status_reason", "updated_at"])
            _notify(locked)
        return selectors.entitlement_queryset().get(pk=locked.pk)
    return _move(
        locked,
        to=EntitlementStatus.CANCELLED,
        allowed_from=HELD_STATUSES,
        actor=actor,
        reason="Cancelled by the holder.",
    )


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


def entitlements_end_periods(*, now: datetime | None = None) -> dict[str, int]:
    """At a subscription's period end: ``cancelled`` when the holder cancelled, otherwise renewed for
    another period with a renewal purchase - unless a purchase check (a budget) refuses it, or the
    plan is no longer on sale, which ends it ``expired``. Safe to run twice: each entitlement is moved
    by a conditional UPDATE on the period end it was read with."""
    now = now or timezone.now()
    counts = {"cancelled": 0, "renewed": 0, "expired": 0}
    due = list(
        Entitlement.objects.filter(status=EntitlementStatus.ACTIVE, period_end__isnull=False, period_end__lte=now)
        .select_related("plan", "listing", "user", "terms")
        .order_by("period_end")[:1000]
    )
    for entitlement in due:
        with transaction.atomic():
            same = Entitlement.objects.select_for_update().filter(
                pk=entitlement.pk, status=EntitlementStatus.ACTIVE, period_end=entitlement.period_end
            )
            if not same.exists():
                continue
            if entitlement.cancel_at_period_end:
                _move(
                    entitlement,
                    to=EntitlementStatus.CANCELLED,
                    allowed_from=(EntitlementStatus.ACTIVE,),
                    actor=None,
                    reason="Cancelled at the end of the period.",
                    ended_at=entitlement.period_end,
                )
                counts["cancelled"] += 1
                continue
            plan = entitlement.plan
            refusal = None
            if plan.status != PlanStatus.ACTIVE:
                refusal = "The plan is no longer on sale."
            else:
                try:
                    with transaction.atomic():
                        for check in PURCHASE_CHECKS.providers:
                            check(
                                user=entitlement.user,
                                model_id=entitlement.listing.model_id,
                                amount=plan.amount,
                                currency=plan.currency,
                            )
                except AppError as exc:
                    refusal = f"Renewal refused: {exc.message}"
            if refusal:
                _move(
                    entitlement,
                    to=EntitlementStatus.EXPIRED,
                    allowed_from=(EntitlementStatus.ACTIVE,),
                    actor=None,
                    reason=refusal,
                    ended_at=entitlement.period_end,
                )
                counts["expired"] += 1
                continue
            start = entitlement.period_end
            same.update(period_start=start, period_end=_period_end(plan, start), updated_at=now)
            Purchase.objects.create(
                entitlement=entitlement,
                user=entitlement.user,
                plan=plan,
                terms=entitlement.terms,
                terms_hash=entitlement.terms.content_hash,
                kind=PurchaseKind.RENEWAL,
                amount=plan.amount,
                currency=plan.currency,
            )
            _notify(entitlement)
            counts["renewed"] += 1
    return counts


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


# --- Idempotency keys --------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """An answer to send (and to replay for the same key)."""

    status: int
    body: dict[str, Any]
    replayed: bool = False


def request_fingerprint(method: str, path: str, body: Any) -> str:
    """SHA-256 of the method, the path and the body in canonical JSON (key order and spacing do not count)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(f"{method.upper()} {path}\n{canonical}".encode()).hexdigest()


def _claim(user: Any, key: str, fingerprint: str) -> tuple[IdempotencyKey | None, Outcome | None]:
    """Claim the key for this request, or learn what to answer instead (the stored answer, 422, 409)."""
    now = timezone.now()
    deadline = time.monotonic() + float(settings.MARKETPLACE_IDEMPOTENCY_WAIT_SECONDS)
    ttl = timedelta(hours=settings.MARKETPLACE_IDEMPOTENCY_TTL_HOURS)
    lease = timedelta(seconds=settings.MARKETPLACE_IDEMPOTENCY_LEASE_SECONDS)
    while True:
        now = timezone.now()
        try:
            with transaction.atomic():
                IdempotencyKey.objects.filter(user=user, key=key, expires_at__lte=now).delete()
                row = IdempotencyKey.objects.create(
                    user=user, key=key, fingerprint=fingerprint, locked_at=now, expires_at=now + ttl
                )
            return row, None
        except IntegrityError:
            pass
        row = IdempotencyKey.objects.filter(user=user, key=key).first()
        if row is None:
            continue  # purged or released meanwhile: claim again
        if row.fingerprint != fingerprint:
            raise IdempotencyKeyReused(details={"idempotencyKey": key})
        if row.state == IdempotencyState.DONE:
            return None, Outcome(row.response_status, json.loads(row.response_body), replayed=True)
        if row.locked_at <= now - lease:
            # The request that claimed it died without an answer: take it over (one taker wins).
            if IdempotencyKey.objects.filter(
                pk=row.pk, state=IdempotencyState.IN_PROGRESS, locked_at=row.locked_at
            ).update(locked_at=now):
                row.locked_at = now
                return row, None
            continue
        if time.monotonic() >= deadline:
            raise Conflict(
                "A request with this Idempotency-Key is still being processed; retry shortly.",
                code=ErrorCode.IDEMPOTENCY_KEY_IN_PROGRESS,
                details={"idempotencyKey": key},
            )
        time.sleep(0.05)


def _store(row: IdempotencyKey, outcome: Outcome) -> None:
    IdempotencyKey.objects.filter(pk=row.pk).update(
        state=IdempotencyState.DONE,
        response_status=outcome.status,
        response_body=json.dumps(outcome.body, ensure_ascii=False, default=str),
    )


def idempotent(*, user: Any, key: str, fingerprint: str, run: Callable[[], Outcome]) -> Outcome:
    """Run ``run`` at most once per (user, key): the IETF ``Idempotency-Key`` draft's semantics.

    The first request claims the key (``in_progress``, committed), runs, and stores its answer in the
    same transaction as its writes; a request arriving meanwhile with the same key and body waits up
    to ``MARKETPLACE_IDEMPOTENCY_WAIT_SECONDS`` and then gets that answer (``replayed``), or 409
    ``IDEMPOTENCY_KEY_IN_PROGRESS``. A different body under the key is 422 ``IDEMPOTENCY_KEY_REUSED``.
    Business errors (409, 403, 404...) are stored and replayed like successes; an unexpected failure
    releases the key so the client can retry.
    """
    row, answer = _claim(user, key, fingerprint)
    if answer is not None:
        return answer
    try:
        with transaction.atomic():
            outcome = run()
            _store(row, outcome)
        return outcome
    except AppError as exc:
        outcome = Outcome(exc.status_code, error_body(exc.code, exc.message, exc.details))
        _store(row, outcome)
        return outcome
    except BaseException:
        IdempotencyKey.objects.filter(pk=row.pk, state=IdempotencyState.IN_PROGRESS).delete()
        raise


def idempotency_keys_purge(*, now: datetime | None = None, batch: int = 5000) -> int:
    """Delete expired keys in batches; running it again deletes nothing more (idempotent)."""
    now = now or timezone.now()
    total = 0
    while True:
        ids = list(IdempotencyKey.objects.filter(expires_at__lte=now).values_list("pk", flat=True)[:batch])
        if not ids:
            return total
        total += IdempotencyKey.objects.filter(pk__in=ids).delete()[0]
