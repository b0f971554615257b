"""Marketplace writes - every one keyword-only and atomic, called alike by the API, the admin and the tasks:

* :mod:`.listings` - publishers, listings, licence terms, plans (``marketplace.manage``);
* :mod:`.purchases` - purchases under the current terms and price, refunds, reviews;
* :mod:`.entitlements` - approve, reject, revoke, cancel, and the period-end job;
* :mod:`.idempotency` - the ``Idempotency-Key`` contract of the purchase route.

Other apps use :data:`PURCHASE_CHECKS` (costs registers its budget check there).
"""

from marketplace.services._common import PURCHASE_CHECKS, EntitlementExists
from marketplace.services.entitlements import (
    entitlement_approve,
    entitlement_cancel,
    entitlement_reject,
    entitlement_revoke,
    entitlements_end_periods,
)
from marketplace.services.idempotency import (
    IdempotencyKeyRequired,
    IdempotencyKeyReused,
    Outcome,
    idempotency_keys_purge,
    idempotent,
    request_fingerprint,
)
from marketplace.services.listings import (
    listing_create,
    listing_delist,
    listing_publish,
    listing_update,
    plan_create,
    plan_retire,
    publisher_get_or_create,
    terms_hash,
    terms_publish,
)
from marketplace.services.purchases import purchase_create, purchase_refund, review_upsert

__all__ = [
    "PURCHASE_CHECKS",
    "EntitlementExists",
    "IdempotencyKeyRequired",
    "IdempotencyKeyReused",
    "Outcome",
    "entitlement_approve",
    "entitlement_cancel",
    "entitlement_reject",
    "entitlement_revoke",
    "entitlements_end_periods",
    "idempotency_keys_purge",
    "idempotent",
    "listing_create",
    "listing_delist",
    "listing_publish",
    "listing_update",
    "plan_create",
    "plan_retire",
    "publisher_get_or_create",
    "purchase_create",
    "purchase_refund",
    "review_upsert",
    "request_fingerprint",
    "terms_hash",
    "terms_publish",
]
