"""Marketplace writes: listings, plans, licence terms, purchases, entitlements, reviews."""

from __future__ import annotations

from modelhub.registry import Slot

PURCHASE_CHECKS = Slot(
    "marketplace.purchase_checks",
    """Checks run before a paid purchase is recorded (the costs app registers its budget check here).

    Each provider is called as ``provider(user=<User>, model_id=<uuid.UUID>, amount=<Decimal>,
    currency=<str>)`` inside the purchase transaction, before anything is written; it refuses the
    purchase by raising an ``AppError`` (for instance ``ErrorCode.BUDGET_EXCEEDED``) and returns
    nothing otherwise. Free plans are not checked.""",
)
