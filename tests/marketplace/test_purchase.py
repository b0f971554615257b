"""Purchases: the happy paths, every refusal in the error envelope, idempotency, approvals, refunds."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.test.utils import override_settings
from django.utils import timezone

from marketplace import services
from marketplace.models import Entitlement, IdempotencyKey, Purchase
from tests.conftest import API, assert_error
from tests.marketplace.helpers import make_listing, purchase, purchase_body

pytestmark = pytest.mark.django_db


def test_one_time_purchase_creates_an_active_entitlement(client_for, personas):
    listing, plan, terms = make_listing(personas["admin"], amount="20.00")
    response = purchase(client_for("developer"), listing, purchase_body(plan, amount="20"))
    assert response.status_code == 201, response.content
    assert response["Idempotent-Replayed"] == "false"
    body = response.json()
    assert body["purchase"]["price"] == {"amount": "20.00", "currency": "USD"}
    assert body["purchase"]["termsHash"] == terms.content_hash
    assert len(terms.content_hash) == 64
    entitlement = body["entitlement"]
    assert entitlement["status"] == "active"
    assert entitlement["scope"] == "user"
    assert entitlement["holder"] == "developer"
    assert entitlement["period"]["end"] is None
    assert entitlement["plan"]["pricingModel"] == "one_time"


def test_subscription_has_a_period(client_for, personas):
    listing, plan, _ = make_listing(personas["admin"], pricing_model="subscription", amount="49.00", interval="month")
    body = purchase(client_for("developer"), listing, purchase_body(plan)).json()
    period = body["entitlement"]["period"]
    assert period["end"] > period["start"]
    assert body["entitlement"]["plan"]["interval"] == "month"


def test_same_key_same_body_replays_the_first_answer(client_for, personas):
    listing, plan, _ = make_listing(personas["admin"])
    client = client_for("developer")
    first = purchase(client, listing, purchase_body(plan), key="k-1")
    again = purchase(client, listing, purchase_body(plan), key="k-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Purchase.objects.count() == 1


def test_key_order_and_spacing_do_not_change_the_fingerprint(client_for, personas):
    listing, plan, _ = make_listing(personas["admin"])
    client = client_for("developer")
    body = purchase_body(plan)
    purchase(client, listing, body, key="k-order")
    reordered = {"expectedPrice": body["expectedPrice"], "termsVersion": 1, "planId": body["planId"]}
    assert purchase(client, listing, reordered, key="k-order")["Idempotent-Replayed"] == "true"


def test_same_key_different_body_is_422(client_for, personas):
    listing, plan, _ = make_listing(personas["admin"])
    client = client_for("developer")
    purchase(client, listing, purchase_body(plan), key="k-2")
    assert_error(purchase(client, listing, purchase_body(plan, scope="user"), key="k-2"), 422, "IDEMPOTENCY_KEY_REUSED")


def test_keys_are_per_user(client_for, personas):
    listing, plan, _ = make_listing(personas["admin"])
    assert purchase(client_for("developer"), listing, purchase_body(plan), key="shared").status_code == 201
    other = purchase(client_for("manager"), listing, purchase_body(plan), key="shared")
    assert other.status_code == 201 and other["Idempotent-Replayed"] == "false"


@override_settings(MARKETPLACE_IDEMPOTENCY_WAIT_SECONDS=0)
def test_a_key_still_in_progress_is_409(client_for, personas):
    listing, plan, _ = make_listing(personas["admin"])
    body = purchase_body(plan)
    fingerprint = services.request_fingerprint("POST", f"marketplace/models/{listing.model_id}/purchase", body)
    now = timezone.now()
    IdempotencyKey.objects.create(
        user=personas["developer"],
        key="busy",
        fingerprint=fingerprint,
        locked_at=now,
        expires_at=now + timedelta(hours=24),
    )
    assert_error(purchase(client_for("developer"), listing, body, key="busy"), 409, "IDEMPOTENCY_KEY_IN_PROGRESS")


def test_an_abandoned_key_is_taken_over(client_for, personas):
    listing, plan, _ = make_listing(personas["admin"])
    body = purchase_body(plan)
    fingerprint = services.request_fingerprint("POST", f"marketplace/models/{listing.model_id}/purchase", body)
    long_ago = timezone.now() - timedelta(minutes=10)
    IdempotencyKey.objects.create(
        user=personas["developer"],
        key="dead",
        fingerprint=fingerprint,
        locked_at=long_ago,
        expires_at=long_ago + timedelta(hours=24),
    )
    assert purchase(client_for("developer"), listing, body, key="dead").status_code == 201


@pytest.mark.parametrize("key", [None, "", "x" * 256, "has space", "naïve"])
def test_a_missing_or_malformed_key_is_400(client_for, personas, key):
    listing, plan, _ = make_listing(personas["admin"])
    headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    response = client_for("developer").post(
        f"{API}/marketplace/models/{listing.model_id}/purchase", purchase_body(plan), format="json", **headers
    )
    assert_error(response, 400, "IDEMPOTENCY_KEY_REQUIRED")


def test_terms_version_mismatch_names_the_current_terms(client_for, personas):
    listing, plan, _ = make_listing(personas["admin"])
    services.terms_publish(
        listing=listing, actor=personas["admin"], licence="proprietary", title="Acme EULA", body="v2 text"
    )
    error = assert_error(
        purchase(client_for("developer"), listing, purchase_body(plan, version=1)), 409, "TERMS_VERSION_MISMATCH"
    )
    assert error["details"]["currentTerms"]["version"] == 2
    assert purchase(client_for("developer"), listing, purchase_body(plan, version=2)).status_code == 201


def test_price_mismatch_names_the_current_price(client_for, personas):
    listing, plan, _ = make_listing(personas["admin"], amount="20.00")
    error = assert_error(
        purchase(client_for("developer"), listing, purchase_body(plan, amount="19.99")), 409, "PRICE_MISMATCH"
    )
    assert error["details"]["currentPrice"] == {"amount": "20.00", "currency": "USD"}
    assert_error(purchase(client_for("developer"), listing, purchase_body(plan, currency="EUR")), 409, "PRICE_MISMATCH")


def test_a_price_change_is_a_new_plan_and_the_old_one_is_refused(client_for, personas):
    listing, plan, _ = make_listing(personas["admin"], amount="20.00")
    from decimal import Decimal

    new = services.plan_create(
        listing=listing,
        actor=personas["admin"],
        name="one_time",
        pricing_model="one_time",
        amount=Decimal("25.00"),
        currency="USD",
        replaces_plan_id=plan.pk,
    )
    plan.refresh_from_db()
    assert plan.status == "retired" and plan.amount == Decimal("20.00")
    error = assert_error(purchase(client_for("developer"), listing, purchase_body(plan)), 409, "PRICE_MISMATCH")
    assert error["details"]["currentPlan"]["id"] == str(new.pk)
    assert error["details"]["currentPlan"]["price"]["amount"] == "25.00"


def test_an_entitlement_already_held_is_409(client_for, personas):
    listing, plan, _ = make_listing(personas["admin"])
    client = client_for("developer")
    assert purchase(client, listing, purchase_body(plan)).status_code == 201
    error = assert_error(purchase(client, listing, purchase_body(plan)), 409, "ENTITLEMENT_EXISTS")
    assert error["details"]["status"] == "active"


def test_the_constraint_holds_without_the_service_check(personas):
    from django.db import IntegrityError, transaction

    listing, plan, terms = make_listing(personas["admin"])
    fields = dict(
        listing=listing,
        plan=plan,
        terms=terms,
        holder=f"user:{personas['developer'].pk}",
        user=personas["developer"],
        period_start=timezone.now(),
    )
    Entitlement.objects.create(status="active", **fields)
    with pytest.raises(IntegrityError), transaction.atomic():
        Entitlement.objects.create(status="pending", **fields)
    Entitlement.objects.create(status="revoked", **fields)  # ended ones do not count


def test_unknown_plan_and_unknown_listing(client_for, personas):
    listing, plan, _ = make_listing(personas["admin"])
    body = purchase_body(plan)
    body["planId"] = str(uuid.uuid4())
    assert_error(purchase(client_for("developer"), listing, body), 400, "INVALID_REQUEST")
    draft, draft_plan, _ = make_listing(personas["admin"], publish=False)
    assert_error(purchase(client_for("developer"), draft, purchase_body(draft_plan)), 404, "LISTING_NOT_FOUND")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"planId": "nope", "termsVersion": 1, "expectedPrice": {"amount": "1.00", "currency": "USD"}},
        {"planId": str(uuid.uuid4()), "termsVersion": 1, "expectedPrice": {"amount": 1, "currency": "USD"}},
        {"planId": str(uuid.uuid4()), "termsVersion": 1, "expectedPrice": {"amount": "1e3", "currency": "USD"}},
        {"planId": str(uuid.uuid4()), "termsVersion": 1, "expectedPrice": {"amount": "1.00", "currency": "XXX"}},
        {"planId": str(uuid.uuid4()), "termsVersion": "1", "expectedPrice": {"amount": "1.00", "currency": "USD"}},
        {
            "planId": str(uuid.uuid4()),
            "termsVersion": 1,
            "expectedPrice": {"amount": "1.00", "currency": "USD"},
            "x": 1,
        },
    ],
)
def test_invalid_bodies_are_400_and_do_not_use_up_the_key(client_for, personas, body):
    listing, plan, _ = make_listing(personas["admin"])
    client = client_for("developer")
    response = purchase(client, listing, body, key="reusable")
    assert_error(response, 400, "MISSING_REQUIRED_FIELD" if not body else "INVALID_REQUEST")
    assert purchase(client, listing, purchase_body(plan), key="reusable").status_code == 201


def test_business_errors_are_replayed_too(client_for, personas):
    listing, plan, _ = make_listing(personas["admin"])
    client = client_for("developer")
    first = purchase(client, listing, purchase_body(plan, amount="1.00"), key="k-err")
    again = purchase(client, listing, purchase_body(plan, amount="1.00"), key="k-err")
    assert first.status_code == again.status_code == 409
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"


def test_hub_wide_purchase_needs_a_manager(client_for, personas):
    listing, plan, _ = make_listing(personas["admin"])
    assert_error(purchase(client_for("developer"), listing, purchase_body(plan, scope="hub")), 403, "FORBIDDEN")
    response = purchase(client_for("manager"), listing, purchase_body(plan, scope="hub"))
    assert response.status_code == 201
    assert response.json()["entitlement"]["scope"] == "hub"
    mine = client_for("analyst").get(f"{API}/marketplace/my-models").json()
    assert [e["scope"] for e in mine["entitlements"]] == ["hub"]


def test_approval_required_is_pending_until_approved(client_for, personas):
    listing, plan, _ = make_listing(personas["admin"], access_mode="approval_required", pricing_model="free")
    response = purchase(client_for("developer"), listing, purchase_body(plan))
    assert response.status_code == 202
    entitlement = response.json()["entitlement"]
    assert entitlement["status"] == "pending"
    queue = client_for("manager").get(f"{API}/marketplace/entitlements?status=pending").json()["entitlements"]
    assert [e["id"] for e in queue] == [entitlement["id"]]
    approved = client_for("manager").post(
        f"{API}/marketplace/entitlements/{entitlement['id']}/approve", {"reason": "ok"}, format="json"
    )
    assert approved.status_code == 200 and approved.json()["entitlement"]["status"] == "active"
    again = client_for("manager").post(f"{API}/marketplace/entitlements/{entitlement['id']}/reject", {}, format="json")
    assert_error(again, 409, "INVALID_REQUEST")


def test_rejection_refunds(client_for, personas):
    listing, plan, _ = make_listing(personas["admin"], access_mode="approval_required", amount="100.00")
    entitlement = purchase(client_for("developer"), listing, purchase_body(plan)).json()["entitlement"]
    rejected = client_for("admin").post(
        f"{API}/marketplace/entitlements/{entitlement['id']}/reject", {"reason": "no"}, format="json"
    )
    assert rejected.json()["entitlement"]["status"] == "rejected"
    assert Purchase.objects.get().status == "refunded"


def test_cancel_a_subscription_runs_to_period_end_then_ends(client_for, personas):
    listing, plan, _ = make_listing(personas["admin"], pricing_model="subscription", amount="10.00")
    entitlement = purchase(client_for("developer"), listing, purchase_body(plan)).json()["entitlement"]
    url = f"{API}/marketplace/entitlements/{entitlement['id']}/cancel"
    assert_error(client_for("outsider").post(url), 404, "ENTITLEMENT_NOT_FOUND")
    cancelled = client_for("developer").post(url).json()["entitlement"]
    assert cancelled["status"] == "active" and cancelled["cancelAtPeriodEnd"] is True
    later = timezone.now() + timedelta(days=40)
    assert services.entitlements_end_periods(now=later) == {"cancelled": 1, "renewed": 0, "expired": 0}
    assert services.entitlements_end_periods(now=later) == {"cancelled": 0, "renewed": 0, "expired": 0}
    assert Entitlement.objects.get().status == "cancelled"


def test_an_uncancelled_subscription_renews_once_per_period(personas, client_for):
    listing, plan, _ = make_listing(personas["admin"], pricing_model="subscription", amount="10.00")
    purchase(client_for("developer"), listing, purchase_body(plan))
    later = timezone.now() + timedelta(days=32)
    assert services.entitlements_end_periods(now=later)["renewed"] == 1
    assert services.entitlements_end_periods(now=later)["renewed"] == 0
    assert Purchase.objects.filter(kind="renewal").count() == 1


def test_a_budget_check_refuses_a_paid_purchase(client_for, personas):
    from modelhub.api.exceptions import AppError, ErrorCode

    calls = []

    def over_budget(*, user, model_id, amount, currency):
        calls.append((user.username, model_id, amount, currency))
        raise AppError("Over budget.", code=ErrorCode.BUDGET_EXCEEDED)

    services.PURCHASE_CHECKS.register(over_budget)
    try:
        listing, plan, _ = make_listing(personas["admin"], amount="20.00")
        assert_error(purchase(client_for("developer"), listing, purchase_body(plan)), 400, "BUDGET_EXCEEDED")
        free, free_plan, _ = make_listing(personas["admin"], pricing_model="free")
        assert purchase(client_for("developer"), free, purchase_body(free_plan)).status_code == 201
    finally:
        services.PURCHASE_CHECKS._providers.remove(over_budget)
    assert calls == [("developer", listing.model_id, plan.amount, "USD")]
    assert not Entitlement.objects.filter(listing=listing).exists()


def test_refund_ends_the_entitlement_and_is_idempotent(client_for, personas):
    listing, plan, _ = make_listing(personas["admin"])
    purchase_id = purchase(client_for("developer"), listing, purchase_body(plan)).json()["purchase"]["id"]
    url = f"{API}/marketplace/purchases/{purchase_id}/refund"
    first = client_for("admin").post(url, {"reason": "duplicate"}, format="json")
    assert first.status_code == 200 and first.json()["purchase"]["status"] == "refunded"
    assert client_for("admin").post(url, {}, format="json").json() == {**first.json()}
    assert Entitlement.objects.get().status == "refunded"
    # once refunded, buying again is possible
    assert purchase(client_for("developer"), listing, purchase_body(plan)).status_code == 201


def test_purge_job_is_idempotent(personas):
    from marketplace.tasks import purge_idempotency_keys

    now = timezone.now()
    for i, age in enumerate([25, 30, 1]):
        created = now - timedelta(hours=age)
        IdempotencyKey.objects.create(
            user=personas["developer"],
            key=f"k{i}",
            fingerprint="f",
            locked_at=created,
            expires_at=created + timedelta(hours=24),
        )
    assert purge_idempotency_keys() == 2
    assert purge_idempotency_keys() == 0
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["k2"]


def test_an_expired_key_is_a_new_request(client_for, personas):
    listing, plan, _ = make_listing(personas["admin"])
    client = client_for("developer")
    assert purchase(client, listing, purchase_body(plan), key="old").status_code == 201
    IdempotencyKey.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    # not a replay: the purchase runs again and finds the entitlement held
    assert_error(purchase(client, listing, purchase_body(plan), key="old"), 409, "ENTITLEMENT_EXISTS")


def test_a_blocking_budget_of_the_costs_app_refuses_a_purchase_that_would_pass_it(client_for, personas):
    from tests.costs.helpers import budget

    budget(personas["admin"], "100")
    dear, dear_plan, _ = make_listing(personas["admin"], amount="150.00")
    error = assert_error(purchase(client_for("developer"), dear, purchase_body(dear_plan)), 402, "BUDGET_EXCEEDED")
    assert "150" in error["message"]
    assert not Entitlement.objects.filter(listing=dear).exists()
    cheap, cheap_plan, _ = make_listing(personas["admin"], amount="50.00")
    assert purchase(client_for("developer"), cheap, purchase_body(cheap_plan)).status_code == 201


def test_unknown_ids_answer_their_not_found_codes(client_for, personas):
    nil = uuid.uuid4()
    assert_error(client_for("admin").get(f"{API}/marketplace/entitlements/{nil}"), 404, "ENTITLEMENT_NOT_FOUND")
    assert_error(
        client_for("admin").post(f"{API}/marketplace/entitlements/{nil}/approve"), 404, "ENTITLEMENT_NOT_FOUND"
    )
    assert_error(client_for("admin").post(f"{API}/marketplace/purchases/{nil}/refund"), 404, "INVALID_REQUEST")
    assert_error(client_for("admin").get(f"{API}/marketplace/listings/{nil}"), 404, "LISTING_NOT_FOUND")
    assert_error(client_for("admin").get(f"{API}/marketplace/models/{nil}/reviews"), 404, "LISTING_NOT_FOUND")
    assert_error(
        client_for("admin").put(f"{API}/marketplace/models/{nil}/review", {"rating": 3}, format="json"),
        404,
        "LISTING_NOT_FOUND",
    )
    assert_error(
        client_for("developer").post(
            f"{API}/marketplace/models/{nil}/purchase", {}, format="json", HTTP_IDEMPOTENCY_KEY="k"
        ),
        400,
        "MISSING_REQUIRED_FIELD",
    )


def test_another_users_entitlement_is_not_found_for_them(client_for, personas):
    listing, plan, _ = make_listing(personas["admin"])
    entitlement = purchase(client_for("developer"), listing, purchase_body(plan)).json()["entitlement"]
    assert client_for("developer").get(f"{API}/marketplace/entitlements/{entitlement['id']}").status_code == 200
    assert_error(
        client_for("outsider").get(f"{API}/marketplace/entitlements/{entitlement['id']}"), 404, "ENTITLEMENT_NOT_FOUND"
    )
    assert client_for("manager").get(f"{API}/marketplace/entitlements/{entitlement['id']}").status_code == 200


def test_renewal_keeps_the_retired_plan_and_a_refusing_budget_expires_it(client_for, personas):
    from decimal import Decimal

    from modelhub.api.exceptions import AppError, ErrorCode

    listing, plan, _ = make_listing(personas["admin"], pricing_model="subscription", amount="10.00")
    purchase(client_for("developer"), listing, purchase_body(plan))
    services.plan_create(
        listing=listing,
        actor=personas["admin"],
        name="new",
        pricing_model="subscription",
        amount=Decimal("12.00"),
        currency="USD",
        interval="month",
        replaces_plan_id=plan.pk,
    )
    month = timezone.now() + timedelta(days=32)
    assert services.entitlements_end_periods(now=month)["renewed"] == 1
    assert Purchase.objects.filter(kind="renewal").get().amount == Decimal("10.00")

    def refuse(*, user, model_id, amount, currency):
        raise AppError("Over budget.", code=ErrorCode.BUDGET_EXCEEDED)

    services.PURCHASE_CHECKS.register(refuse)
    try:
        assert services.entitlements_end_periods(now=month + timedelta(days=31))["expired"] == 1
    finally:
        services.PURCHASE_CHECKS._providers.remove(refuse)
    entitlement = Entitlement.objects.get()
    assert entitlement.status == "expired" and "Renewal refused" in entitlement.status_reason
