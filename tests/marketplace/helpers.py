"""Marketplace test helpers: listings built through the services, purchase requests through the API."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from marketplace import services
from tests.conftest import API
from tests.factories import ModelRegistryFactory

TERMS_BODY = "You may deploy this model inside your organisation. No redistribution."


def make_listing(
    admin: Any,
    *,
    pricing_model: str = "one_time",
    amount: str = "20.00",
    access_mode: str = "open",
    interval: str = "",
    unit: str = "",
    publish: bool = True,
    model: Any = None,
    **model_fields: Any,
):
    """A listing of a fresh catalog model with terms v1 and one plan; returns (listing, plan, terms)."""
    model = model or ModelRegistryFactory(owner=admin, **model_fields)
    listing = services.listing_create(
        actor=admin, model_id=model.pk, publisher_name="Acme AI", summary="A model.", access_mode=access_mode
    )
    terms = services.terms_publish(
        listing=listing, actor=admin, licence="proprietary", title="Acme EULA", body=TERMS_BODY
    )
    if pricing_model == "subscription" and not interval:
        interval = "month"
    if pricing_model == "usage" and not unit:
        unit = "1k_tokens"
    plan = services.plan_create(
        listing=listing,
        actor=admin,
        name=pricing_model,
        pricing_model=pricing_model,
        amount=Decimal("0" if pricing_model == "free" else amount),
        currency="USD",
        interval=interval,
        unit=unit,
    )
    if publish:
        listing = services.listing_publish(listing=listing, actor=admin)
    return listing, plan, terms


def purchase_body(
    plan: Any, *, version: int = 1, amount: str | None = None, currency: str = "USD", **extra: Any
) -> dict:
    return {
        "planId": str(plan.pk),
        "termsVersion": version,
        "expectedPrice": {
            "amount": amount if amount is not None else format(plan.amount.normalize(), "f"),
            "currency": currency,
        },
        **extra,
    }


def purchase(client: Any, listing: Any, body: dict, key: str | None = None):
    headers = {"HTTP_IDEMPOTENCY_KEY": key or str(uuid.uuid4())}
    return client.post(f"{API}/marketplace/models/{listing.model_id}/purchase", body, format="json", **headers)
