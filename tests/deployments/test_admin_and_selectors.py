"""The Django admin (through the services) and the selectors other apps call."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from deployments import selectors, services
from deployments.models import DeploymentTransition
from tests.factories import DeploymentFactory, ModelRegistryFactory

pytestmark = pytest.mark.django_db


def _logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_admin_stop_action_goes_through_the_service(personas):
    live = DeploymentFactory.create_batch(2, status="running")
    stopped = DeploymentFactory(status="stopped")
    response = _logged_in(personas["manager"]).post(
        reverse("admin:deployments_deployment_changelist"),
        {"action": "stop", "_selected_action": [str(d.pk) for d in [*live, stopped]]},
    )
    assert response.status_code == 302
    for deployment in live:
        deployment.refresh_from_db()
        assert deployment.status == "stopped"
        step = deployment.transitions.get()
        assert (step.from_status, step.to_status, step.actor_username, step.reason) == (
            "running",
            "stopped",
            "manager",
            "Stopped in the admin.",
        )
    assert not stopped.transitions.exists()


def test_admin_shows_history_and_is_read_only(personas):
    deployment = DeploymentFactory(status="running")
    services.deployment_stop(deployment=deployment, actor=personas["admin"], reason="maintenance window")
    client = _logged_in(personas["admin"])
    page = client.get(reverse("admin:deployments_deployment_change", args=[deployment.pk])).content.decode()
    assert "maintenance window" in page
    assert client.get(reverse("admin:deployments_deployment_changelist")).status_code == 200
    assert client.get(reverse("admin:deployments_deployment_add")).status_code == 403
    assert client.get(reverse("admin:deployments_deployment_delete", args=[deployment.pk])).status_code == 403
    assert client.get(reverse("admin:deployments_deploymenttransition_changelist")).status_code == 200


def test_non_staff_roles_have_no_admin(personas):
    response = _logged_in(personas["developer"]).get(reverse("admin:deployments_deployment_changelist"))
    assert response.status_code == 302  # to the login page


# --- Selectors -----------------------------------------------------------------------------------


def test_deployments_for_model(personas):
    model = ModelRegistryFactory()
    older = DeploymentFactory(model=model, environment="staging", status="stopped")
    newer = DeploymentFactory(model=model, environment="production", status="running")
    DeploymentFactory()  # another model's
    items = selectors.deployments_for_model(model)
    assert [item["id"] for item in items] == [str(newer.pk), str(older.pk)]
    assert items[0] == {
        "id": str(newer.pk),
        "environment": "production",
        "status": "running",
        "createdAt": newer.created_at.isoformat().replace("+00:00", "Z"),
        "lastUsed": None,
    }
    assert len(selectors.deployments_for_model(model, limit=1)) == 1


def test_active_deployment_count():
    for status in ["creating", "running", "scaling", "failed", "stopped", "running"]:
        DeploymentFactory(status=status, target_replicas=2 if status == "scaling" else None)
    assert selectors.active_deployment_count() == 4


def test_recent_activity_from_the_transition_log(personas):
    model = ModelRegistryFactory(name="llm", version="2")
    deployment = DeploymentFactory(model=model, environment="production", status="running", replicas=1)
    services.deployment_scale(deployment=deployment, actor=personas["manager"], replicas=3)
    services.deployment_check_readiness(deployment_id=deployment.pk, expected_status="scaling")
    services.deployment_stop(deployment=deployment, actor=personas["admin"], reason="cost cut")
    activity = selectors.recent_activity(limit=10)
    assert [(a["type"], a["message"]) for a in activity] == [
        ("deployment", "llm@2 (production) running → stopped by admin: cost cut"),
        ("scaling", "llm@2 (production) scaled to 3 replica(s)"),
        ("scaling", "llm@2 (production) scaling to 3 replica(s) by manager"),
    ]
    assert {a["modelId"] for a in activity} == {str(model.pk)}
    assert all(a["timestamp"].endswith("Z") for a in activity)
    assert len(selectors.recent_activity(limit=2)) == 2
    assert selectors.recent_activity(limit=0) == []
    assert DeploymentTransition.objects.count() == 3
