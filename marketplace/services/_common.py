"""What the marketplace services share: the purchase-check slot, errors, the realtime push."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dateutil.relativedelta import relativedelta

from marketplace import selectors
from marketplace.constants import (
    BillingInterval,
    PricingModel,
)
from marketplace.models import Entitlement, Plan
from modelhub import realtime
from modelhub.api.exceptions import Conflict, ErrorCode, NotFound
from modelhub.registry import Slot

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


def _not_found(code: ErrorCode, what: str, ident: Any) -> NotFound:
    return NotFound(f"{what} not found.", code=code, details={"id": str(ident)[:64]})


def _user(actor: Any) -> Any:
    return actor if getattr(actor, "pk", None) else None


def _notify(entitlement: Entitlement) -> None:
    """``entitlement:update`` to the holder (hub-wide ones: to whoever acquired it), after commit."""
    fresh = selectors.entitlement_queryset().get(pk=entitlement.pk)
    realtime.publish_to_user(fresh.user_id, "entitlement:update", selectors.entitlement_data(fresh))


def _period_end(plan: Plan, start: datetime) -> datetime | None:
    if plan.pricing_model != PricingModel.SUBSCRIPTION:
        return None
    return start + (relativedelta(months=1) if plan.interval == BillingInterval.MONTH else relativedelta(years=1))
