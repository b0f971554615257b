"""The budgets, channels, notifications and authorize endpoints; reservations settled by ingested events."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from analytics.rollup import rollup
from analytics.services import ingest_usage
from costs import services
from costs.constants import to_units
from costs.enforcement import period_of
from costs.ledger import counter_key, get_ledger
from costs.models import Budget, Reservation
from modelhub.api.exceptions import AppError
from tests.analytics.helpers import event
from tests.conftest import API, assert_error
from tests.costs.helpers import budget
from tests.costs.matrix import WEBHOOK_SECRET
from tests.factories import ModelRegistryFactory

pytestmark = pytest.mark.django_db

BUDGETS = f"{API}/cost/budgets"


def test_budget_request_round_trip_exact_decimals(client_for):
    model = ModelRegistryFactory()
    body = {
        "monthlyBudget": 1234.56789012,
        "alerts": [
            {"threshold": 80, "action": "notify", "channels": ["email"]},
            {"threshold": 100, "action": "block", "channels": []},
            {"threshold": 99.5, "action": "notify", "channels": []},
        ],
        "categories": {"models": {str(model.pk): 100.1}, "providers": {"openai": 50}, "environments": {}},
    }
    created = client_for("manager").post(BUDGETS, body, format="json")
    assert created.status_code == 201, created.content
    item = created.json()["budget"]
    assert Budget.objects.get().monthly_budget == Decimal("1234.56789012")
    assert item["monthlyBudget"] == 1234.56789012 and item["categories"]["models"] == {str(model.pk): 100.1}
    assert item["alerts"][1] == {"threshold": 100.0, "action": "block", "channels": []}
    assert item["alerts"][2]["threshold"] == 99.5  # a fractional threshold is a JSON number too
    listed = client_for("analyst").get(BUDGETS).json()
    assert listed["pagination"]["total"] == 1 and listed["budgets"][0]["id"] == item["id"]
    replaced = client_for("admin").put(f"{BUDGETS}/{item['id']}", {**body, "monthlyBudget": 10}, format="json")
    assert replaced.status_code == 200 and replaced.json()["budget"]["monthlyBudget"] == 10.0
    assert client_for("manager").delete(f"{BUDGETS}/{item['id']}").status_code == 204
    assert_error(client_for("manager").get(f"{BUDGETS}/{item['id']}"), 404, "INVALID_REQUEST")


@pytest.mark.parametrize(
    "change, field",
    [
        ({"monthlyBudget": -1}, "monthlyBudget"),
        ({"monthlyBudget": 0.000000001}, "monthlyBudget"),
        ({"monthlyBudget": "10"}, "monthlyBudget"),
        ({"monthlyBudget": True}, "monthlyBudget"),
        ({"alerts": [{"threshold": 80, "action": "explode", "channels": []}]}, "alerts[0].action"),
        ({"alerts": [{"threshold": 0, "action": "notify", "channels": []}]}, "alerts[0].threshold"),
        ({"alerts": [{"threshold": 50, "action": "reroute", "channels": []}]}, "alerts[0].rerouteTo"),
        ({"categories": {"providers": {"nobody": 1}}}, "categories.providers.nobody"),
        ({"categories": {"teams": {}}}, "categories.teams"),
        ({"extra": 1}, "extra"),
        (
            {
                "alerts": [
                    {"threshold": 100, "action": "block", "channels": ["webhook"]},
                    {"threshold": 80, "action": "notify", "channels": []},
                    {"threshold": 100, "action": "notify", "channels": ["email"]},
                ]
            },
            "alerts[2].threshold",
        ),
    ],
)
def test_budget_validation(client_for, change, field):
    body = {"monthlyBudget": 10, "alerts": [], "categories": {}, **change}
    response = client_for("admin").post(BUDGETS, body, format="json")
    assert response.status_code == 400, response.content
    assert field in str(response.json()["error"]["details"]["fields"])


def test_references_are_checked(client_for):
    nil = "00000000-0000-0000-0000-000000000000"
    body = {"monthlyBudget": 10, "alerts": [{"threshold": 1, "action": "notify", "channels": [nil]}], "categories": {}}
    assert_error(client_for("admin").post(BUDGETS, body, format="json"), 400, "INVALID_REQUEST")
    body = {"monthlyBudget": 10, "alerts": [], "categories": {"models": {nil: 1}}}
    assert_error(client_for("admin").post(BUDGETS, body, format="json"), 404, "MODEL_NOT_FOUND")


def test_channels_never_show_the_secret_and_in_use_cannot_go(client_for):
    url = f"{API}/cost/channels"
    missing = client_for("admin").post(
        url, {"name": "h", "type": "webhook", "target": "https://x.example/h"}, format="json"
    )
    assert missing.status_code == 400 and "secret" in str(missing.json())
    made = client_for("admin").post(
        url, {"name": "h", "type": "webhook", "target": "https://x.example/h", "secret": WEBHOOK_SECRET}, format="json"
    )
    assert made.status_code == 201 and WEBHOOK_SECRET not in made.content.decode()
    channel = made.json()["channel"]
    assert channel["hasSecret"] is True and "secret" not in channel
    assert WEBHOOK_SECRET not in client_for("admin").get(url).content.decode()
    bad = client_for("admin").post(url, {"name": "m", "type": "email", "target": "not-an-address"}, format="json")
    assert bad.status_code == 400
    body = {"monthlyBudget": 10, "alerts": [{"threshold": 5, "action": "notify", "channels": [channel["id"]]}]}
    assert client_for("admin").post(BUDGETS, {**body, "categories": {}}, format="json").status_code == 201
    assert_error(client_for("admin").delete(f"{url}/{channel['id']}"), 409, "INVALID_REQUEST")


def _authorize(client, model, tokens, environment="production"):
    body = {"modelId": str(model.pk), "environment": environment, "estimatedTokens": tokens}
    response = client.post(f"{API}/cost/authorize", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()["authorization"]


def test_authorize_holds_blocks_and_is_settled_by_the_ingested_event(client_for, personas):
    model = ModelRegistryFactory(baseline_cost_per_1k_tokens=Decimal("1"))
    budget(personas["admin"], "1.0")  # 1 USD = 1,000 tokens at this price
    developer = client_for("developer")
    first = _authorize(developer, model, 600)
    assert first["decision"] == "allow" and first["reservationId"].startswith("res_")
    assert first["estimatedCost"] == 0.6
    second = _authorize(developer, model, 600)  # 0.6 held + 0.6 > 1.0
    assert second["decision"] == "block" and second["reservationId"] is None
    # the client's call cost less than estimated: its event carries the reservation id
    result = ingest_usage([event(model, promptTokens=100, completionTokens=100, reservationId=first["reservationId"])])
    assert result.accepted == 1
    rollup()
    assert services.reconcile()["settled"] == 1
    assert services.reconcile()["settled"] == 0  # settled once
    key = counter_key(period_of(), "all")
    assert get_ledger().values([key])[0] == to_units(Decimal("0.2"))
    assert Reservation.objects.get().status == "settled"
    assert _authorize(developer, model, 600)["decision"] == "allow"  # 0.2 spent + 0.6 fits again


def test_unsettled_reservations_expire_and_ingested_events_without_one_count(client_for, personas):
    model = ModelRegistryFactory(baseline_cost_per_1k_tokens=Decimal("1"))
    budget(personas["admin"], "1.0")
    held = _authorize(client_for("developer"), model, 900)
    assert held["decision"] == "allow"
    assert services.reconcile(now=timezone.now() + timedelta(hours=1))["expired"] == 1
    assert get_ledger().values([counter_key(period_of(), "all")])[0] == 0
    ingest_usage([event(model, promptTokens=500, completionTokens=0)])  # a client that did not ask first
    rollup()
    assert services.reconcile()["raised"] == 1
    assert get_ledger().values([counter_key(period_of(), "all")])[0] == to_units(Decimal("0.5"))
    assert _authorize(client_for("developer"), model, 600)["decision"] == "block"


def test_throttle_decision(client_for, personas):
    model = ModelRegistryFactory(baseline_cost_per_1k_tokens=Decimal("1"))
    budget(personas["admin"], "1.0", alerts=[{"threshold": 50, "action": "throttle", "channels": []}])
    assert _authorize(client_for("developer"), model, 400)["decision"] == "allow"
    throttled = _authorize(client_for("developer"), model, 200)  # 0.6 of 1.0 with this one: past 50 %
    assert throttled["decision"] == "throttle" and throttled["throttleFactor"] == 0.5


def test_marketplace_purchases_are_checked_against_blocking_budgets(personas):
    from marketplace.services import PURCHASE_CHECKS

    assert services.purchase_check in PURCHASE_CHECKS.providers
    model = ModelRegistryFactory()
    services.purchase_check(user=personas["developer"], model_id=model.pk, amount=Decimal("50"), currency="USD")
    budget(personas["admin"], "100")
    services.purchase_check(user=personas["developer"], model_id=model.pk, amount=Decimal("100"), currency="USD")
    with pytest.raises(AppError) as refused:
        services.purchase_check(user=personas["developer"], model_id=model.pk, amount=Decimal("100.01"), currency="USD")
    assert refused.value.code == "BUDGET_EXCEEDED" and refused.value.status_code == 402


def test_notifications_endpoint_shows_status_and_attempts(client_for, personas):
    from tests.costs.matrix import _notification

    note = _notification(personas["admin"])
    listed = client_for("analyst").get(f"{API}/cost/notifications").json()
    assert listed["notifications"][0]["id"] == str(note.pk)
    assert listed["notifications"][0]["status"] == "pending" and listed["notifications"][0]["attempts"] == 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_reseeding_seeds_once(personas):
    """A missing counter re-seeded by many callers at once (pods after a Redis flush) holds the recorded
    spend once, plus each caller's own reservation - never the spend N times."""
    from concurrent.futures import ThreadPoolExecutor

    from costs import enforcement

    model = ModelRegistryFactory(baseline_cost_per_1k_tokens=Decimal("1"))
    ingest_usage([event(model, promptTokens=2000, completionTokens=0)])  # 2 USD recorded
    rollup()
    budget(personas["admin"], 100)
    plan = enforcement.rules_cache.get().plan(model.pk, model.provider, "production")
    target = (str(model.pk), model.provider, "production")

    def reserve(_):
        from django.db import connections

        try:
            return enforcement.reserve_sync(
                plan, target, Decimal("0.5"), hold_id=enforcement.new_hold_id(), ttl_seconds=60
            )
        finally:
            connections.close_all()  # give the pooled connection back (a worker thread never does by itself)

    with ThreadPoolExecutor(8) as pool:
        holds = list(pool.map(reserve, range(16)))
    assert all(holds)
    assert get_ledger().values([counter_key(period_of(), "all")])[0] == to_units(Decimal("2") + 16 * Decimal("0.5"))


def test_open_reservations_are_capped_per_user_and_can_be_released(client_for, personas, settings):
    """One developer cannot reserve the hub's headroom: beyond COSTS_AUTHORIZE_MAX_OPEN reservations or
    COSTS_AUTHORIZE_MAX_OPEN_USD held, 409 RESERVATION_LIMIT_EXCEEDED (nothing held); DELETE releases one
    (own only: another's is 404), and releasing twice answers as once."""
    settings.COSTS_AUTHORIZE_MAX_OPEN = 3
    settings.COSTS_AUTHORIZE_MAX_OPEN_USD = 5
    model = ModelRegistryFactory(baseline_cost_per_1k_tokens=Decimal("1"))
    budget(personas["admin"], "1000")
    developer, url = client_for("developer"), f"{API}/cost/authorize"
    key = counter_key(period_of(), "all")
    held = [_authorize(developer, model, 1000)["reservationId"] for _ in range(3)]  # 1 USD each
    body = {"modelId": str(model.pk), "environment": "production", "estimatedTokens": 1000}
    refused = developer.post(url, body, format="json")
    assert_error(refused, 409, "RESERVATION_LIMIT_EXCEEDED")
    assert refused.json()["error"]["details"]["openReservations"] == 3
    assert get_ledger().values([key])[0] == to_units(Decimal(3))  # the refused one holds nothing
    other = _authorize(client_for("outsider"), model, 1000)  # per user: others are not affected
    assert other["decision"] == "allow"
    assert_error(client_for("outsider").delete(f"{url}/{held[0]}"), 404, "INVALID_REQUEST")
    assert_error(developer.delete(f"{url}/{other['reservationId']}"), 404, "INVALID_REQUEST")
    assert developer.delete(f"{url}/{held[0]}").status_code == 204
    assert developer.delete(f"{url}/{held[0]}").status_code == 204  # the same answer, nothing given back twice
    assert get_ledger().values([key])[0] == to_units(Decimal(3))
    assert Reservation.objects.get(pk=held[0]).status == "released"
    assert services.reconcile(now=timezone.now() + timedelta(hours=1))["expired"] == 3  # not the released one
    assert get_ledger().values([key])[0] == 0
    # by amount: 4.5 USD would pass the 5 USD together with the 1 USD still open
    fresh = _authorize(developer, model, 1000)["reservationId"]
    too_much = developer.post(url, {**body, "estimatedTokens": 4500}, format="json")
    assert_error(too_much, 409, "RESERVATION_LIMIT_EXCEEDED")
    assert developer.delete(f"{url}/{fresh}").status_code == 204
    assert _authorize(developer, model, 4500)["decision"] == "allow"
    assert_error(developer.delete(f"{url}/{'x' * 65}"), 404, "INVALID_REQUEST")


@pytest.mark.django_db(transaction=True)
def test_concurrent_authorizations_pass_the_open_limit_once(personas, settings):
    """Eight authorizations at once against a limit of one open reservation: one holds, seven are refused
    (the count is taken under the user row's lock; PostgreSQL - SQLite has no row locks)."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection, connections

    if connection.vendor != "postgresql":
        pytest.skip("row locks: PostgreSQL")
    settings.COSTS_AUTHORIZE_MAX_OPEN = 1
    model = ModelRegistryFactory(baseline_cost_per_1k_tokens=Decimal("1"))
    budget(personas["admin"], 100)

    def call(_):
        try:
            result = services.authorize(
                actor=personas["developer"], model_id=model.pk, environment="production", estimated_tokens=1000
            )
            return result["decision"]
        except services.ReservationLimitError:
            return "limit"
        finally:
            connections.close_all()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, range(8)))
    assert results.count("allow") == 1 and results.count("limit") == 7, results
    assert get_ledger().values([counter_key(period_of(), "all")])[0] == to_units(Decimal(1))


def test_channel_targets_are_write_only_and_masked(client_for):
    """Slack and webhook URLs are credentials: answers show scheme, host and the last 4 characters only."""
    url = f"{API}/cost/channels"
    slack = "https://hooks.slack.com/services/T000/B000/s3cr3tTAIL"
    made = client_for("admin").post(url, {"name": "s", "type": "slack", "target": slack}, format="json")
    assert made.status_code == 201, made.content
    channel = made.json()["channel"]
    assert channel["target"] == "https://hooks.slack.com/…TAIL"
    hook = {"name": "h", "type": "webhook", "target": "https://x.example/h/abcdef123456", "secret": WEBHOOK_SECRET}
    assert client_for("admin").post(url, hook, format="json").json()["channel"]["target"] == "https://x.example/…3456"
    mail = client_for("admin").post(url, {"name": "m", "type": "email", "target": "ops@example.com"}, format="json")
    assert mail.json()["channel"]["target"] == "ops@example.com"  # an address is no credential
    for page in (client_for("admin").get(url), client_for("manager").get(f"{url}/{channel['id']}")):
        assert page.status_code == 200 and "s3cr3t" not in page.content.decode()
    replaced = client_for("admin").put(
        f"{url}/{channel['id']}", {"name": "s2", "type": "slack", "target": slack + "2"}, format="json"
    )
    assert replaced.status_code == 200 and replaced.json()["channel"]["target"] == "https://hooks.slack.com/…AIL2"


@pytest.mark.parametrize(
    "query", ["to=9999-12-31T23:59:59-01:00", "from=0001-01-01T00:00:00%2B01:00", "to=9999-12-31T23:59:59.999999-23:59"]
)
def test_analysis_dates_past_the_calendar_are_400_not_500(client_for, query):
    """A date-time whose offset takes it past datetime's range in UTC (OverflowError) is out of range."""
    response = client_for("admin").get(f"{API}/cost/analysis?{query}")
    assert_error(response, 400, "INVALID_PARAMETER")
