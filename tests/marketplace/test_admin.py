"""The admin's governance actions go through the services (same rules, same events)."""

from __future__ import annotations

import pytest
from django.test import Client

from marketplace.models import Entitlement, Listing, Purchase
from tests.marketplace.helpers import make_listing
from tests.marketplace.matrix import _buy

pytestmark = pytest.mark.django_db


def _admin_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _act(client, model: str, action: str, ids) -> int:
    return client.post(
        f"/admin/marketplace/{model}/", {"action": action, "_selected_action": [str(i) for i in ids]}
    ).status_code


def test_pages_render_for_staff(personas):
    listing, plan, _ = make_listing(personas["admin"])
    _buy(personas["developer"], listing, plan)
    client = _admin_client(personas["manager"])
    for page in ("listing", "plan", "licenceterms", "entitlement", "publisher", "review"):
        assert client.get(f"/admin/marketplace/{page}/").status_code == 200, page
    assert client.get(f"/admin/marketplace/listing/{listing.pk}/change/").status_code == 200
    assert client.get("/admin/marketplace/purchase/").status_code == 403  # refunds are the admins'
    assert _admin_client(personas["admin"]).get("/admin/marketplace/purchase/").status_code == 200


def test_governance_actions(personas):
    listing, plan, _ = make_listing(personas["admin"], access_mode="approval_required")
    _, entitlement = _buy(personas["developer"], listing, plan)
    manager = _admin_client(personas["manager"])
    assert _act(manager, "entitlement", "approve", [entitlement.pk]) == 302
    assert Entitlement.objects.get().status == "active"
    assert _act(manager, "entitlement", "revoke", [entitlement.pk]) == 302
    assert Entitlement.objects.get().status == "revoked"
    assert _act(manager, "listing", "delist", [listing.pk]) == 302
    assert Listing.objects.get().status == "delisted"
    assert _act(manager, "listing", "publish", [listing.pk]) == 302
    assert Listing.objects.get().status == "published"
    admin = _admin_client(personas["admin"])
    assert _act(admin, "purchase", "refund", [Purchase.objects.get().pk]) == 302
    assert Purchase.objects.get().status == "refunded"
