"""The deployment gate: what deployments asks before a create or a scale-up, and the grace-period job's lapses."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from marketplace.constants import (
    HUB_HOLDER,
    EntitlementStatus,
)
from marketplace.models import Entitlement, Listing
from marketplace.selectors.listings import GATING_STATUSES, _active_plans, holders_for, listing_gates
from modelhub.api.exceptions import AppError, ErrorCode

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
