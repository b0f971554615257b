"""Demo listings for ``seed_demo`` (through ``catalog.services.DEMO_SEEDED``): one of each kind - free,
usage-priced per token, subscription, approval-required - plus what the demo users hold: a hub-wide
entitlement bought by the admin, a developer's subscription, and a pending access request. Idempotent:
a model that is listed already is left as it is."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model

from marketplace import services
from marketplace.models import Entitlement, Listing

D = Decimal

APACHE = (
    'Licensed under the Apache License, Version 2.0 (the "License"); you may not use this model except in '
    "compliance with the License. You may obtain a copy at https://www.apache.org/licenses/LICENSE-2.0. "
    'Distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND.'
)
COMMERCIAL = (
    "{publisher} grants the purchasing organisation a non-exclusive, non-transferable licence to deploy "
    "{model} on this hub for its internal use during the term of the plan. Outputs belong to the customer. "
    "No redistribution of the weights. Usage is metered by the hub and billed per the plan."
)

DEMO_LISTINGS: list[dict[str, Any]] = [
    dict(
        model=("support-llama-3.1-8b", "1.3.0"),
        publisher="Support Engineering",
        summary="Our fine-tuned support model: free for every team on the hub.",
        access_mode="open",
        licence=("llama3.1", "Llama 3.1 Community License", APACHE),
        plans=[dict(name="Free", pricing_model="free", amount=D("0"))],
        hold=None,
    ),
    dict(
        model=("gpt-4.1", "2025-04-14"),
        publisher="OpenAI",
        summary="GPT-4.1 billed per million tokens through the hub's OpenAI account.",
        access_mode="open",
        licence=("proprietary", "OpenAI Services Agreement (hub resale)", COMMERCIAL),
        plans=[dict(name="Pay as you go", pricing_model="usage", amount=D("2.00"), unit="1m_tokens")],
        hold="hub",  # the admin bought it for everyone
    ),
    dict(
        model=("code-review-qwen2.5-coder-7b", "0.9.0"),
        publisher="Qwen Labs",
        summary="A code-review assistant tuned on pull requests; monthly or yearly seats.",
        access_mode="open",
        licence=("proprietary", "Qwen Labs Commercial Licence", COMMERCIAL),
        plans=[
            dict(name="Team monthly", pricing_model="subscription", amount=D("49.00"), interval="month"),
            dict(name="Team yearly", pricing_model="subscription", amount=D("490.00"), interval="year"),
        ],
        hold="developer",
    ),
    dict(
        model=("neuroweaver-automotive", "2.1.0"),
        publisher="NeuroWeaver",
        summary="Automotive diagnostics model; NeuroWeaver approves each customer (export controls).",
        access_mode="approval_required",
        licence=("proprietary", "NeuroWeaver Partner Licence", COMMERCIAL),
        plans=[dict(name="Perpetual licence", pricing_model="one_time", amount=D("1500.00"))],
        hold="developer-request",
    ),
]


def seed_demo_listings(*, admin: Any, stdout: Any = None, **_: Any) -> int:
    """Create the demo listings that do not exist yet; returns how many were created."""
    from catalog import selectors as catalog_selectors

    if admin is None:
        return 0
    users = get_user_model().objects
    developer = users.filter(username="developer").first()
    created = 0
    for spec in DEMO_LISTINGS:
        name, version = spec["model"]
        model = next(
            (m for m in catalog_selectors.deployable_models(limit=1000) if (m.name, m.version) == (name, version)), None
        )
        if model is None or Listing.objects.filter(model_id=model.pk).exists():
            continue
        listing = services.listing_create(
            actor=admin,
            model_id=model.pk,
            publisher_name=spec["publisher"],
            summary=spec["summary"],
            category=model.category,
            access_mode=spec["access_mode"],
        )
        services.publisher_get_or_create(name=spec["publisher"], verified=True)
        licence, title, body = spec["licence"]
        terms = services.terms_publish(
            listing=listing,
            actor=admin,
            licence=licence,
            title=title,
            body=body.format(publisher=spec["publisher"], model=name),
        )
        plans = [
            services.plan_create(listing=listing, actor=admin, currency="USD", **{"interval": "", "unit": "", **plan})
            for plan in spec["plans"]
        ]
        services.listing_publish(listing=listing, actor=admin)
        buyer, scope = {
            "hub": (admin, "hub"),
            "developer": (developer, "user"),
            "developer-request": (developer, "user"),
        }.get(spec["hold"], (None, None))
        if buyer is not None and not Entitlement.objects.filter(listing=listing).exists():
            services.purchase_create(
                actor=buyer,
                model_id=model.pk,
                plan_id=plans[0].pk,
                terms_version=terms.version,
                expected_amount=plans[0].amount,
                expected_currency="USD",
                scope=scope,
            )
        created += 1
    if stdout is not None:
        stdout.write(f"seed_demo: {created} marketplace listing(s) created ({Listing.objects.count()} in total).")
    return created
