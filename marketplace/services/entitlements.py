"""The entitlement lifecycle: approve, reject, revoke, cancel, and the period-end job."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from marketplace import selectors
from marketplace.constants import (
    FINAL_STATUSES,
    HELD_STATUSES,
    HUB_HOLDER,
    EntitlementStatus,
    PurchaseKind,
    PurchaseStatus,
)
from marketplace.models import Entitlement, Purchase
from marketplace.services._common import PURCHASE_CHECKS, _not_found, _notify, _period_end, _user
from modelhub.api.exceptions import AppError, Conflict, ErrorCode
from modelhub.roles import has_permission

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


def entitlements_end_periods(*, now: datetime | None = None) -> dict[str, int]:
    """At a subscription's period end: ``cancelled`` when the holder cancelled, otherwise renewed for
    another period with a renewal purchase on the plan held - unless a purchase check (a budget)
    refuses it, which ends it ``expired``. Safe to run twice: each entitlement is moved
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
            locked = same.first()  # the row as it is now, locked: a cancel that came meanwhile counts
            if locked is None:
                continue  # moved on since it was read (a second run, a revoke): nothing to do
            if locked.cancel_at_period_end:
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
            # Renewed on the plan held, at its price, even if that plan was retired since (holders keep
            # what they bought; a price change applies to new buyers). A refused budget check ends it.
            plan = entitlement.plan
            refusal = None
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
