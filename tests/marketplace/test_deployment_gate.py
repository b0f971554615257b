"""Deployments of listed paid or approval-required models need an active entitlement."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test.utils import override_settings
from django.utils import timezone

from deployments import services as deployment_services
from deployments.models import Deployment, DeploymentTransition
from marketplace import services
from marketplace.models import Entitlement
from tests.conftest import API, assert_error
from tests.factories import DeploymentFactory
from tests.marketplace.helpers import make_listing, purchase, purchase_body

pytestmark = pytest.mark.django_db

CONFIG = {"replicas": 1, "resources": {"cpu": "100m", "memory": "128Mi"}}


def deploy(client, model):
    return client.post(
        f"{API}/deployments",
        {"modelId": str(model.pk), "version": model.version, "environment": "staging", "configuration": CONFIG},
        format="json",
    )


def test_a_paid_model_is_refused_without_an_entitlement_and_deploys_after_purchase(client_for, personas):
    listing, plan, _ = make_listing(personas["admin"], amount="20.00")
    model = listing.model
    error = assert_error(deploy(client_for("developer"), model), 403, "ENTITLEMENT_REQUIRED")
    assert error["details"]["listingId"] == str(listing.pk)
    assert purchase(client_for("developer"), listing, purchase_body(plan)).status_code == 201
    assert deploy(client_for("developer"), model).status_code == 201
    # someone else's entitlement does not count
    assert_error(deploy(client_for("outsider"), model), 403, "ENTITLEMENT_REQUIRED")


def test_open_free_listings_and_unlisted_models_are_not_gated(client_for, personas):
    free, _, _ = make_listing(personas["admin"], pricing_model="free")
    assert deploy(client_for("developer"), free.model).status_code == 201
    draft, _, _ = make_listing(personas["admin"], publish=False)
    assert deploy(client_for("developer"), draft.model).status_code == 201


def test_approval_required_free_listing_is_gated_until_approved(client_for, personas):
    listing, plan, _ = make_listing(personas["admin"], pricing_model="free", access_mode="approval_required")
    entitlement = purchase(client_for("developer"), listing, purchase_body(plan)).json()["entitlement"]
    error = assert_error(deploy(client_for("developer"), listing.model), 403, "ENTITLEMENT_REQUIRED")
    assert error["details"]["pendingApproval"] is True
    client_for("manager").post(f"{API}/marketplace/entitlements/{entitlement['id']}/approve", {}, format="json")
    assert deploy(client_for("developer"), listing.model).status_code == 201


def test_a_hub_wide_entitlement_counts_for_everyone(client_for, personas):
    listing, plan, _ = make_listing(personas["admin"], pricing_model="subscription", amount="99.00")
    assert purchase(client_for("admin"), listing, purchase_body(plan, scope="hub")).status_code == 201
    assert deploy(client_for("outsider"), listing.model).status_code == 201


def test_revoked_blocks_new_deployments_and_scale_ups_but_not_scale_downs(client_for, personas):
    listing, plan, _ = make_listing(personas["admin"])
    entitlement_id = purchase(client_for("developer"), listing, purchase_body(plan)).json()["entitlement"]["id"]
    running = DeploymentFactory(model=listing.model, owner=personas["developer"], replicas=2)
    client_for("manager").post(
        f"{API}/marketplace/entitlements/{entitlement_id}/revoke", {"reason": "breach"}, format="json"
    )
    assert_error(deploy(client_for("developer"), listing.model), 403, "ENTITLEMENT_REQUIRED")
    scale = f"{API}/deployments/{running.pk}/scale"
    assert_error(client_for("developer").post(scale, {"replicas": 3}, format="json"), 403, "ENTITLEMENT_REQUIRED")
    assert client_for("developer").post(scale, {"replicas": 1}, format="json").status_code == 202


@override_settings(MARKETPLACE_ENTITLEMENT_GRACE_HOURS=24)
def test_running_deployments_stop_after_the_grace_period(client_for, personas):
    listing, plan, _ = make_listing(personas["admin"])
    entitlement_id = purchase(client_for("developer"), listing, purchase_body(plan)).json()["entitlement"]["id"]
    running = DeploymentFactory(model=listing.model, owner=personas["developer"])
    other = DeploymentFactory(owner=personas["developer"])  # an unlisted model: never touched
    assert deployment_services.deployments_enforce_entitlements() == []
    services.entitlement_revoke(entitlement=Entitlement.objects.get(pk=entitlement_id), actor=personas["admin"])
    assert deployment_services.deployments_enforce_entitlements() == []  # within the grace period
    later = timezone.now() + timedelta(hours=25)
    assert deployment_services.deployments_enforce_entitlements(now=later) == [running.pk]
    assert deployment_services.deployments_enforce_entitlements(now=later) == []  # idempotent
    running.refresh_from_db()
    other.refresh_from_db()
    assert running.status == "stopped" and other.status == "running"
    step = DeploymentTransition.objects.get(deployment=running, to_status="stopped")
    assert step.actor is None and "grace period" in step.reason


def test_the_beat_task_runs_the_service(personas):
    from deployments.tasks import deployments_enforce_entitlements

    assert deployments_enforce_entitlements() == 0
    assert Deployment.objects.count() == 0


def test_my_models_shows_active_deployments(client_for, personas):
    listing, plan, _ = make_listing(personas["admin"])
    purchase(client_for("developer"), listing, purchase_body(plan))
    deploy(client_for("developer"), listing.model)
    items = client_for("developer").get(f"{API}/marketplace/my-models").json()["entitlements"]
    assert [(i["modelId"], i["activeDeployments"], i["usage"]["requests"]) for i in items] == [
        (str(listing.model_id), 1, 0)
    ]


def test_my_models_reports_usage_under_the_entitlement(client_for, personas):
    from analytics.rollup import rollup
    from analytics.services import ingest_usage
    from tests.analytics.helpers import event

    listing, plan, _ = make_listing(personas["admin"], pricing_model="usage", amount="2.00", unit="1m_tokens")
    purchase(client_for("developer"), listing, purchase_body(plan))
    mine = DeploymentFactory(model=listing.model, owner=personas["developer"])
    theirs = DeploymentFactory(model=listing.model, owner=personas["manager"])
    ingest_usage(
        [event(listing.model, deploymentId=str(mine.pk), cost=0.5, promptTokens=300_000, completionTokens=200_000)]
        + [event(listing.model, deploymentId=str(theirs.pk), cost=9, promptTokens=1, completionTokens=1)]
    )
    rollup()
    item = client_for("developer").get(f"{API}/marketplace/my-models").json()["entitlements"][0]
    assert item["usage"]["requests"] == 1
    assert item["usage"]["promptTokens"] == 300_000 and item["usage"]["completionTokens"] == 200_000
    assert item["usage"]["cost"] == {"amount": "0.50", "currency": "USD"}
    assert item["usage"]["estimatedCharge"] == {"amount": "1.00", "currency": "USD"}  # 0.5M tokens x $2 per 1M
