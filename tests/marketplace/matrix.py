"""What ``tests/api/test_role_matrix.py`` needs for the marketplace rows: per case, the objects its
path names (built through the services, so every row runs against real state) and the headers."""

from __future__ import annotations

import uuid
from typing import Any

from marketplace import services
from marketplace.models import Entitlement
from tests.factories import ModelRegistryFactory
from tests.marketplace.helpers import make_listing, purchase_body

# Placeholders the marketplace rows use (anonymous callers get the nil UUID for each).
PLACEHOLDERS = ("listed", "listing", "entitlement", "pending", "purchase")

TERMS_BODY = {"licence": "apache-2.0", "title": "Apache License 2.0", "body": "Licensed under the Apache License."}
PLAN_BODY = {
    "name": "Pro",
    "pricingModel": "subscription",
    "price": {"amount": "30.00", "currency": "USD"},
    "interval": "month",
}


def _buy(user: Any, listing: Any, plan: Any, scope: str = "user") -> Any:
    return services.purchase_create(
        actor=user,
        model_id=listing.model_id,
        plan_id=plan.pk,
        terms_version=1,
        expected_amount=plan.amount,
        expected_currency=plan.currency,
        scope=scope,
    )


def objects(template: str, personas: dict[str, Any], role: str) -> dict[str, Any]:
    """Ids for the placeholders of ``template`` (only what it names is built)."""
    if "/marketplace/" not in template:
        return {}
    admin, caller = personas["admin"], personas[role]
    ids: dict[str, Any] = {}
    if "{listed}" in template or "{entitlement}" in template or "{purchase}" in template:
        listing, plan, _ = make_listing(admin, amount="20.00")
        ids["listed"] = listing.model_id
        if "/review" in template or "/cancel" in template:
            _buy(caller, listing, plan)  # the caller holds it (reviews and cancellation are the holder's)
            ids["entitlement"] = Entitlement.objects.get(listing=listing).pk
        elif "{entitlement}" in template or "{purchase}" in template:
            bought, entitlement = _buy(admin, listing, plan, scope="hub")  # visible to everyone
            ids["entitlement"], ids["purchase"] = entitlement.pk, bought.pk
    if "{pending}" in template:
        listing, plan, _ = make_listing(admin, pricing_model="free", access_mode="approval_required")
        ids["pending"] = _buy(personas["developer"], listing, plan)[1].pk
    if "{listing}" in template:
        listing, _, _ = make_listing(admin, publish=not template.endswith("/publish"))
        ids["listing"] = listing.pk
    return ids


def body(name: str, *, model: Any, caller: Any) -> Any:
    """Bodies named by a string in the marketplace rows."""
    if name == "mkt-listing-body":
        return {"modelId": str(ModelRegistryFactory().pk), "publisher": "Matrix Labs", "accessMode": "open"}
    if name == "mkt-terms-body":
        return dict(TERMS_BODY)
    if name == "mkt-plan-body":
        return dict(PLAN_BODY)
    if name == "mkt-review-body":
        return {"rating": 4, "title": "Solid", "body": "Works well."}
    return None


def purchase_request(template: str, ids: dict[str, Any]) -> dict[str, Any] | None:
    """The purchase row's body: the plan on sale of the listing in the path."""
    if not template.endswith("/purchase"):
        return None
    from marketplace.models import Plan

    plan = Plan.objects.get(listing__model_id=ids["listed"], status="active")
    return purchase_body(plan)


def headers(template: str) -> dict[str, str]:
    return {"HTTP_IDEMPOTENCY_KEY": str(uuid.uuid4())} if template.endswith("/purchase") else {}
