"""The console's pages and actions for every role, through Django's test client (sessions).

The pages read and act through the API in process (console.internal), so what each role sees and may
do is the API's answer: these tests check that the page shows it (and the refusal's message and
request id where the API refuses).
"""

from __future__ import annotations

import re

import pytest
from django.test import Client

from analytics.services import ingest_usage
from tests.conftest import API, ROLES
from tests.factories import DeploymentFactory

pytestmark = pytest.mark.django_db

PAGES = {
    # page: roles the API lets read it (everyone else sees the API's 403 on the page)
    "/console/": {"admin", "manager", "developer", "analyst"},
    "/console/models": set(ROLES),
    "/console/deployments": set(ROLES),
    "/console/marketplace": set(ROLES),
    "/console/costs": {"admin", "manager", "developer", "analyst"},
    "/console/experiments": set(ROLES),
    "/console/alerts": {"admin", "manager", "developer", "analyst"},
}


@pytest.fixture
def browser_for(personas):
    def make(role: str) -> Client:
        client = Client(enforce_csrf_checks=False)
        client.force_login(personas[role])
        return client

    return make


def test_root_sends_anonymous_people_to_the_login_and_others_to_their_first_page(browser_for):
    assert Client().get("/").headers["Location"] == "/login"
    assert browser_for("analyst").get("/").headers["Location"] == "/console/"
    assert browser_for("viewer").get("/").headers["Location"] == "/console/models"  # no analytics.read


@pytest.mark.parametrize("path", [*PAGES, "/console/token"])
def test_pages_need_a_session(path):
    client = Client()
    response = client.post(path) if path.endswith("token") else client.get(path)
    assert response.status_code == 302 and response.headers["Location"].startswith("/login?next=")


def test_login_with_a_password_then_sign_out(personas):
    client = Client()
    page = client.get("/login")
    assert page.status_code == 200 and b'name="password"' in page.content
    bad = client.post("/login", {"username": "analyst", "password": "wrong"})
    assert bad.status_code == 200 and b"did not match" in bad.content
    from tests.factories import PASSWORD

    good = client.post("/login", {"username": "analyst", "password": PASSWORD})
    assert good.status_code == 302 and good.headers["Location"] == "/"
    assert client.get("/console/").status_code == 200
    assert client.post("/logout").status_code == 302
    assert client.get("/console/").status_code == 302


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("path", list(PAGES))
def test_every_page_for_every_role(browser_for, model, role, path):
    response = browser_for(role).get(path)
    html = response.content.decode()
    if role in PAGES[path]:
        assert response.status_code == 200, html[:500]
        assert 'class="error"' not in html
    else:
        assert response.status_code == 403
        assert "FORBIDDEN" in html and re.search(r"request id <code>[0-9a-f]{32}</code>", html)
    # The menu lists exactly the pages the role may read.
    assert ('href="/console/alerts"' in html) == (role in PAGES["/console/alerts"])


@pytest.mark.parametrize("role", ROLES)
def test_the_model_page_shows_performance_only_to_analytics_readers(browser_for, model, role):
    html = browser_for(role).get(f"/console/models/{model.pk}").content.decode()
    assert "gpt-test" in html
    assert ('id="chart-model"' in html) == (role != "viewer")


def test_an_unknown_model_shows_the_apis_404(browser_for):
    response = browser_for("viewer").get("/console/models/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404 and b"MODEL_NOT_FOUND" in response.content


def test_the_dashboard_shows_figures_computed_from_usage(browser_for, model):
    from analytics.tasks import rollup
    from tests.analytics.helpers import event

    result = ingest_usage([event(model, success=i != 0, cost=0.5) for i in range(4)])
    assert not result.rejected, result.rejected
    rollup()
    html = browser_for("analyst").get("/console/").content.decode()
    assert re.search(r'data-summary="totalRequests">4<', html)
    assert re.search(r'data-summary="errorRate" data-format="percent">25.00%<', html)
    assert re.search(r'data-summary="totalCost" data-format="money">\$2.00<', html)
    assert "Month to date / budget" in html  # analysts hold costs.read
    assert 'id="trends-data"' in html and "gpt-test" in html


def test_the_catalog_filters_through_the_api(browser_for, model):
    from tests.factories import ModelRegistryFactory

    ModelRegistryFactory(name="claude-like", provider="anthropic")
    client = browser_for("viewer")
    everything = client.get("/console/models").content.decode()
    assert "gpt-test" in everything and "claude-like" in everything
    partial = client.get("/console/models?provider=anthropic", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="model-results")
    html = partial.content.decode()
    assert "<html" not in html and "claude-like" in html and "gpt-test" not in html
    refused = client.get("/console/models?provider=nope", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="model-results")
    assert refused.status_code == 400 and b"INVALID_PARAMETER" in refused.content


def test_actions_show_only_where_the_role_may_act(browser_for, personas, model):
    mine = DeploymentFactory(model=model, status="running", owner=personas["developer"])
    theirs = DeploymentFactory(model=model, status="running", owner=personas["outsider"])
    html = browser_for("developer").get("/console/deployments").content.decode()
    assert f"/console/deployments/{mine.pk}/scale" in html and f"/console/deployments/{theirs.pk}/scale" not in html
    manager = browser_for("manager").get("/console/deployments").content.decode()
    assert f"/console/deployments/{theirs.pk}/scale" in manager
    analyst = browser_for("analyst").get("/console/deployments").content.decode()
    assert "/scale" not in analyst and "/stop" not in analyst


def test_scaling_through_the_console_is_the_apis_scale(
    browser_for, personas, model, django_capture_on_commit_callbacks
):
    mine = DeploymentFactory(model=model, status="running", owner=personas["developer"])
    theirs = DeploymentFactory(model=model, status="running", owner=personas["outsider"])
    client = browser_for("developer")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/console/deployments/{mine.pk}/scale", {"replicas": "3"})
    assert response.status_code == 200
    assert 'class="error"' not in response.content.decode()
    mine.refresh_from_db()
    assert mine.target_replicas == 3 or mine.replicas == 3
    # Someone else's deployment: the API's refusal, shown in the row.
    refused = client.post(f"/console/deployments/{theirs.pk}/scale", {"replicas": "2"}).content.decode()
    assert "FORBIDDEN" in refused and "request id" in refused
    bad = client.post(f"/console/deployments/{mine.pk}/scale", {"replicas": "many"}).content.decode()
    assert "INVALID_PARAMETER" in bad or "INVALID_REQUEST" in bad


def test_the_socket_token_is_a_short_lived_access_token_for_the_session_user(browser_for, personas):
    from rest_framework_simplejwt.tokens import AccessToken

    response = browser_for("analyst").post("/console/token")
    assert response.status_code == 200
    token = AccessToken(response.json()["token"])
    assert token["user_id"] == str(personas["analyst"].pk) and token["role"] == "analyst"
    assert 0 < token["exp"] - token["iat"] <= 300
    assert browser_for("analyst").get("/console/token").status_code == 405


def test_the_token_endpoint_needs_the_csrf_token(personas):
    client = Client(enforce_csrf_checks=True)
    client.force_login(personas["analyst"])
    assert client.post("/console/token").status_code == 403


# --- marketplace -------------------------------------------------------------------------------------


@pytest.fixture
def listed(personas):
    from tests.marketplace.helpers import make_listing

    listing, plan, terms = make_listing(personas["admin"], name="market-model")
    return listing, plan, terms


@pytest.mark.parametrize("role", ROLES)
def test_marketplace_pages_for_every_role(browser_for, listed, role):
    listing, plan, _ = listed
    client = browser_for(role)
    browse = client.get("/console/marketplace").content.decode()
    assert "market-model" in browse
    detail = client.get(f"/console/marketplace/{listing.model_id}").content.decode()
    assert "Acme EULA" in detail and "No redistribution" in detail
    # The buy form only for roles with marketplace.purchase (analysts and viewers read only).
    assert ('name="idempotencyKey"' in detail) == (role in {"admin", "manager", "developer"})
    assert client.get("/console/marketplace/mine").status_code == 200


def test_a_purchase_through_the_console_is_idempotent_per_form(browser_for, listed):
    from marketplace.models import Entitlement, Purchase

    listing, plan, terms = listed
    client = browser_for("developer")
    form = {
        "planId": str(plan.pk),
        "termsVersion": str(terms.version),
        "amount": "20.00",
        "currency": "USD",
        "idempotencyKey": "form-key-1",
        "accept": "yes",
    }
    first = client.post(f"/console/marketplace/{listing.model_id}/purchase", form)
    assert first.status_code == 200 and 'data-entitlement-status="active"' in first.content.decode()
    again = client.post(f"/console/marketplace/{listing.model_id}/purchase", form)  # a double click
    assert again.status_code == 200 and again.content == first.content
    assert Purchase.objects.count() == 1 and Entitlement.objects.count() == 1
    # Terms not accepted: refused before the API; a price that changed: the API's conflict, shown.
    refused = client.post(f"/console/marketplace/{listing.model_id}/purchase", {**form, "accept": ""})
    assert refused.status_code == 400 and b"Accept the licence terms" in refused.content
    other = browser_for("outsider")
    conflict = other.post(
        f"/console/marketplace/{listing.model_id}/purchase", {**form, "amount": "10.00", "idempotencyKey": "k2"}
    )
    assert conflict.status_code == 409 and b"request id" in conflict.content
    mine = client.get("/console/marketplace/mine").content.decode()
    assert "market-model" in mine and "active" in mine


# --- costs ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_the_costs_page_for_every_role(browser_for, model, role):
    response = browser_for(role).get("/console/costs")
    html = response.content.decode()
    if role == "viewer":  # no costs.read
        assert response.status_code == 403 and "FORBIDDEN" in html
        assert 'href="/console/costs"' not in html
    else:
        assert response.status_code == 200, html[:400]
        assert "Spend this period" in html and 'id="chart-costs"' in html


def test_the_costs_page_shows_spend_from_usage_and_the_budget(browser_for, model, client_for):
    from analytics.tasks import rollup
    from tests.analytics.helpers import event

    ingest_usage([event(model, cost=1.25) for _ in range(4)])
    rollup()
    body = {
        "monthlyBudget": 100,
        "alerts": [{"threshold": 80, "action": "notify", "channels": []}],
        "categories": {},
    }
    assert client_for("manager").post(f"{API}/cost/budgets", body, format="json").status_code == 201
    html = browser_for("analyst").get("/console/costs").content.decode()
    assert "$5.00" in html  # 4 x 1.25, from the events
    assert "gpt-test" in html  # cost by model, by name
    assert "$100.00" in html and "80% notify" in html


# --- experiments -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_experiment_pages_for_every_role(browser_for, personas, model, role):
    from tests.experiments.helpers import create_experiment

    experiment = create_experiment(personas["developer"], model, start=True)
    client = browser_for(role)
    listing = client.get("/console/experiments").content.decode()
    assert experiment.name in listing
    detail = client.get(f"/console/experiments/{experiment.pk}")
    html = detail.content.decode()
    assert detail.status_code == 200 and experiment.name in html
    assert '<table class="results">' in html and 'class="error"' not in html  # the results, per variant
    # Promote: experiments.update (own only: the developer persona owns it) and models.deploy.
    assert ("Promote the winner" in html) == (role in {"admin", "manager", "developer"})


def test_promote_is_not_offered_on_someone_elses_experiment(browser_for, personas, model):
    from tests.experiments.helpers import create_experiment

    experiment = create_experiment(personas["developer"], model, start=True)
    html = browser_for("outsider").get(f"/console/experiments/{experiment.pk}").content.decode()
    assert experiment.name in html and "Promote the winner" not in html


def test_promoting_without_a_winner_shows_why(browser_for, personas, model):
    from tests.experiments.helpers import create_experiment

    experiment = create_experiment(personas["developer"], model, start=True)
    response = browser_for("developer").post(f"/console/experiments/{experiment.pk}/promote")
    html = response.content.decode()
    assert response.status_code == 409 and "request id" in html


def test_the_model_page_links_its_marketplace_listing(browser_for, listed):
    listing, _, _ = listed
    html = browser_for("viewer").get(f"/console/models/{listing.model_id}").content.decode()
    assert "In the marketplace" in html and f"/console/marketplace/{listing.model_id}" in html
