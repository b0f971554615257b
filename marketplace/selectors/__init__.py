"""Marketplace reads: the listing queries, what a caller holds, the deployment gate, and the plain
data every answer is built from (the API, the realtime events and the apps above share it).

For the apps above:

* :func:`check_deployment_entitlement` - deployments calls it before a create or a scale-up;
* :func:`access_lapses` - which (owner, model) pairs lost access, and since when (the grace-period job);
* :data:`ENTITLEMENT_DETAILS` - a slot the apps above fill (``activeDeployments``, ``usage``).
"""

from marketplace.selectors.gate import EntitlementRequired, access_lapses, check_deployment_entitlement
from marketplace.selectors.listings import (
    ENTITLEMENT_DETAILS,
    GATING_STATUSES,
    entitlement_queryset,
    fill_entitlement_details,
    filter_listings,
    filter_pricing_models,
    held_entitlements,
    holder_key,
    holders_for,
    listing_for_model,
    listing_gates,
    listing_queryset,
    my_entitlements,
    published_listings,
    purchase_queryset,
    review_queryset,
    search_listings,
)
from marketplace.selectors.shapes import (
    entitlement_data,
    listing_data,
    money,
    money_text,
    plan_data,
    purchase_data,
    review_data,
    terms_data,
)

__all__ = [
    "ENTITLEMENT_DETAILS",
    "EntitlementRequired",
    "GATING_STATUSES",
    "access_lapses",
    "check_deployment_entitlement",
    "entitlement_data",
    "entitlement_queryset",
    "fill_entitlement_details",
    "filter_listings",
    "filter_pricing_models",
    "held_entitlements",
    "holder_key",
    "holders_for",
    "listing_data",
    "listing_for_model",
    "listing_gates",
    "listing_queryset",
    "money",
    "money_text",
    "my_entitlements",
    "plan_data",
    "published_listings",
    "purchase_data",
    "purchase_queryset",
    "review_data",
    "review_queryset",
    "search_listings",
    "terms_data",
]
