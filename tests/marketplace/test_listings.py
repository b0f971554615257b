"""GET /marketplace/models (search, filters, sorts, pagination, what the caller holds), the detail,
listing management, reviews feeding the rating."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.conftest import API, assert_error
from tests.marketplace.helpers import make_listing, purchase, purchase_body
from tests.marketplace.matrix import _buy

pytestmark = pytest.mark.django_db
MODELS = f"{API}/marketplace/models"


@pytest.fixture
def shelf(personas):
    admin = personas["admin"]
    free, _, _ = make_listing(
        admin, pricing_model="free", name="free-embed", provider="google", model_type="embedding", category="search"
    )
    usage, _, _ = make_listing(
        admin, pricing_model="usage", amount="2.00", name="token-llm", provider="openai", category="general"
    )
    sub, sub_plan, _ = make_listing(
        admin,
        pricing_model="subscription",
        amount="49.00",
        name="code-reviewer",
        provider="custom",
        model_type="code",
        category="coding",
    )
    gated, _, _ = make_listing(
        admin,
        pricing_model="one_time",
        amount="1500.00",
        access_mode="approval_required",
        name="auto-diag",
        provider="neuroweaver",
        category="automotive",
    )
    make_listing(admin, name="draft-model", publish=False)
    return {"free": free, "usage": usage, "sub": sub, "gated": gated, "sub_plan": sub_plan}


def names(response):
    assert response.status_code == 200, response.content
    return [item["name"] for item in response.json()["listings"]]


def test_lists_published_listings_with_plans_and_terms(client_for, shelf):
    body = client_for("viewer").get(MODELS).json()
    assert body["pagination"]["total"] == 4
    item = next(i for i in body["listings"] if i["name"] == "code-reviewer")
    assert item["plans"][0]["price"] == {"amount": "49.00", "currency": "USD"}
    assert item["plans"][0]["interval"] == "month"
    assert item["terms"]["version"] == 1 and "body" not in item["terms"]
    assert item["caller"] == {
        "canPurchase": False,
        "reason": "Your role may not purchase.",
        "canDeploy": False,
        "entitlements": [],
    }
    assert item["startingPrice"] == {"amount": "49.00", "currency": "USD"}


@pytest.mark.parametrize(
    "query, expected",
    [
        ("provider=openai,google", {"free-embed", "token-llm"}),
        ("modelType=code", {"code-reviewer"}),
        ("category=automotive", {"auto-diag"}),
        ("pricingModel=free", {"free-embed"}),
        ("pricingModel=usage,subscription", {"token-llm", "code-reviewer"}),
        ("licence=proprietary", {"free-embed", "token-llm", "code-reviewer", "auto-diag"}),
        ("licence=apache-2.0", set()),
        ("search=reviewer", {"code-reviewer"}),
        ("search=Acme", {"free-embed", "token-llm", "code-reviewer", "auto-diag"}),
        ("minRating=4", set()),
        # only whitespace (\x1e is whitespace to Python, not to the schema's pattern): no filter, not a 400
        ("modelType=%1E", {"free-embed", "token-llm", "code-reviewer", "auto-diag"}),
        ("provider=%20,%09", {"free-embed", "token-llm", "code-reviewer", "auto-diag"}),
    ],
)
def test_filters(client_for, shelf, query, expected):
    assert set(names(client_for("developer").get(f"{MODELS}?{query}"))) == expected


def test_sorts_and_pages(client_for, shelf, personas):
    client = client_for("developer")
    assert names(client.get(f"{MODELS}?sortBy=price")) == ["free-embed", "token-llm", "code-reviewer", "auto-diag"]
    assert names(client.get(f"{MODELS}?sortBy=price&sortOrder=desc"))[0] == "auto-diag"
    assert names(client.get(f"{MODELS}?sortBy=newest"))[0] == "auto-diag"
    _buy(personas["admin"], shelf["sub"], shelf["sub_plan"])
    assert names(client.get(f"{MODELS}?sortBy=popularity"))[0] == "code-reviewer"
    page = client.get(f"{MODELS}?limit=3&page=2").json()
    assert len(page["listings"]) == 1 and page["pagination"] == {
        "page": 2,
        "limit": 3,
        "total": 4,
        "totalPages": 2,
        "hasNext": False,
        "hasPrev": True,
    }


@pytest.mark.parametrize(
    "query", ["sortBy=cheapest", "minRating=6", "provider=a&provider=b", "bogus=1", "limit=101", "page=0"]
)
def test_bad_parameters_are_invalid_parameter(client_for, shelf, query):
    assert_error(client_for("developer").get(f"{MODELS}?{query}"), 400, "INVALID_PARAMETER")


def test_the_list_costs_a_fixed_number_of_queries(client_for, shelf, personas):
    client = client_for("developer")
    client.get(MODELS)
    with CaptureQueriesContext(connection) as few:
        client.get(MODELS)
    for _ in range(5):
        make_listing(personas["admin"])
    with CaptureQueriesContext(connection) as more:
        client.get(MODELS)
    assert len(more) == len(few)


def test_the_caller_sees_what_they_hold(client_for, shelf):
    client = client_for("developer")
    purchase(client, shelf["sub"], purchase_body(shelf["sub_plan"]))
    item = next(i for i in client.get(MODELS).json()["listings"] if i["name"] == "code-reviewer")
    assert item["caller"]["canPurchase"] is False and item["caller"]["canDeploy"] is True
    assert [e["status"] for e in item["caller"]["entitlements"]] == ["active"]
    other = next(i for i in client.get(MODELS).json()["listings"] if i["name"] == "token-llm")
    assert other["caller"]["canPurchase"] is True and other["caller"]["canDeploy"] is False


def test_detail_has_the_terms_text_and_unknown_or_draft_is_404(client_for, shelf, personas):
    client = client_for("analyst")
    detail = client.get(f"{MODELS}/{shelf['gated'].model_id}").json()["listing"]
    assert detail["accessMode"] == "approval_required" and detail["terms"]["body"].startswith("You may deploy")
    assert_error(client.get(f"{MODELS}/{uuid.uuid4()}"), 404, "LISTING_NOT_FOUND")
    assert_error(client.get(f"{MODELS}/not-a-uuid"), 404, "LISTING_NOT_FOUND")


def test_reviews_need_an_entitlement_and_feed_the_rating(client_for, shelf, personas):
    listing, plan = shelf["sub"], shelf["sub_plan"]
    url = f"{MODELS}/{listing.model_id}/review"
    assert_error(client_for("developer").put(url, {"rating": 5}, format="json"), 403, "ENTITLEMENT_REQUIRED")
    _buy(personas["developer"], listing, plan)
    _buy(personas["manager"], listing, plan)
    assert client_for("developer").put(url, {"rating": 5, "title": "Great"}, format="json").status_code == 201
    assert client_for("manager").put(url, {"rating": 2}, format="json").status_code == 201
    replaced = client_for("manager").put(url, {"rating": 4}, format="json")
    assert replaced.status_code == 200 and replaced.json()["review"]["rating"] == 4
    detail = client_for("viewer").get(f"{MODELS}/{listing.model_id}").json()["listing"]
    assert detail["rating"] == {"average": 4.5, "count": 2}
    assert set(names(client_for("viewer").get(f"{MODELS}?minRating=4.5"))) == {"code-reviewer"}
    reviews = client_for("viewer").get(f"{MODELS}/{listing.model_id}/reviews").json()
    assert [r["rating"] for r in reviews["reviews"]] == [4, 5]
    assert_error(client_for("developer").put(url, {"rating": 6}, format="json"), 400, "INVALID_REQUEST")


def test_managing_a_listing(client_for, personas):
    from tests.factories import ModelRegistryFactory

    client = client_for("manager")
    model = ModelRegistryFactory()
    created = client.post(f"{API}/marketplace/listings", {"modelId": str(model.pk), "publisher": "Acme"}, format="json")
    assert created.status_code == 201
    listing_id = created.json()["listing"]["id"]
    base = f"{API}/marketplace/listings/{listing_id}"
    assert_error(
        client.post(f"{API}/marketplace/listings", {"modelId": str(model.pk), "publisher": "Acme"}, format="json"),
        409,
        "INVALID_REQUEST",
    )
    assert_error(
        client.post(f"{API}/marketplace/listings", {"modelId": str(uuid.uuid4()), "publisher": "Acme"}, format="json"),
        404,
        "MODEL_NOT_FOUND",
    )
    assert_error(client.post(f"{base}/publish"), 409, "INVALID_REQUEST")  # no terms, no plan
    terms = client.post(
        f"{base}/terms", {"licence": "mit", "title": "MIT", "body": "Permission is hereby granted"}, format="json"
    )
    assert terms.status_code == 201 and terms.json()["terms"]["version"] == 1
    again = client.post(
        f"{base}/terms", {"licence": "mit", "title": "MIT", "body": "Permission is hereby granted"}, format="json"
    )
    assert again.json()["terms"]["version"] == 1  # the same text is the same version
    bad = client.post(
        f"{base}/plans",
        {"name": "x", "pricingModel": "subscription", "price": {"amount": "5.00", "currency": "USD"}},
        format="json",
    )
    assert_error(bad, 400, "INVALID_REQUEST")
    free_paid = client.post(
        f"{base}/plans",
        {"name": "x", "pricingModel": "free", "price": {"amount": "5.00", "currency": "USD"}},
        format="json",
    )
    assert_error(free_paid, 400, "INVALID_REQUEST")
    plan = client.post(
        f"{base}/plans",
        {
            "name": "Tokens",
            "pricingModel": "usage",
            "price": {"amount": "0.0004", "currency": "USD"},
            "unit": "1k_tokens",
        },
        format="json",
    )
    assert plan.status_code == 201 and plan.json()["plan"]["price"]["amount"] == "0.0004"
    published = client.post(f"{base}/publish").json()["listing"]
    assert published["status"] == "published" and published["terms"]["licence"] == "mit"
    patched = client.patch(base, {"summary": "Better", "accessMode": "approval_required"}, format="json").json()[
        "listing"
    ]
    assert patched["summary"] == "Better" and patched["accessMode"] == "approval_required"
    assert client.post(f"{base}/delist").json()["listing"]["status"] == "delisted"
    assert_error(client_for("viewer").get(f"{MODELS}/{model.pk}"), 404, "LISTING_NOT_FOUND")
    assert client.get(f"{API}/marketplace/listings?status=delisted").json()["pagination"]["total"] == 1


def test_published_terms_cannot_be_edited(personas):
    from django.core.exceptions import ValidationError

    _, _, terms = make_listing(personas["admin"])
    terms.body = "changed"
    with pytest.raises(ValidationError):
        terms.save()


def test_money_is_exact(personas):
    from marketplace.selectors import money_text

    assert [money_text(Decimal(x)) for x in ("20", "20.5", "0.000150", "1500.00", "0")] == [
        "20.00",
        "20.50",
        "0.00015",
        "1500.00",
        "0.00",
    ]


def test_a_plans_price_cannot_be_edited(personas):
    from django.core.exceptions import ValidationError

    _, plan, _ = make_listing(personas["admin"])
    plan.name = "Renamed"
    plan.save()  # the name is not the price
    plan.amount = Decimal("1.00")
    with pytest.raises(ValidationError):
        plan.save()
