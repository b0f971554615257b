"""``seed_demo`` adds the demo listings (through catalog's DEMO_SEEDED slot), once."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from marketplace.models import Entitlement, Listing

pytestmark = pytest.mark.django_db


def test_seed_demo_lists_one_of_each_kind_and_is_idempotent(settings):
    settings.DEMO_PASSWORD = "demo-password-for-tests"
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    assert "4 marketplace listing(s) created" in out.getvalue()
    listings = Listing.objects.filter(status="published")
    kinds = {p.pricing_model for listing in listings for p in listing.plans.all()}
    assert kinds == {"free", "usage", "subscription", "one_time"}
    assert listings.filter(access_mode="approval_required").count() == 1
    assert sorted(Entitlement.objects.values_list("scope", "status")) == [
        ("hub", "active"),
        ("user", "active"),
        ("user", "pending"),
    ]
    call_command("seed_demo", stdout=io.StringIO())
    assert Listing.objects.count() == 4 and Entitlement.objects.count() == 3
