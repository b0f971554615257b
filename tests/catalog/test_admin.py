"""Governance in the Django admin goes through the same services and role matrix as the API."""

import pytest
from django.test import Client
from django.urls import reverse

from catalog.models import GovernanceEvent, ModelRegistry
from tests.factories import ModelRegistryFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(personas):
    client = Client()
    client.force_login(personas["admin"])
    return client


@pytest.fixture
def manager_client(personas):
    client = Client()
    client.force_login(personas["manager"])
    return client


def changelist(action: str, ids: list) -> dict:
    return {"action": action, "_selected_action": [str(i) for i in ids]}


@pytest.mark.parametrize(
    "action, field, to_value",
    [
        ("deprecate", "status", "deprecated"),
        ("put_into_maintenance", "status", "maintenance"),
        ("activate", "status", "active"),
    ],
)
def test_status_actions_record_governance(admin_client, personas, action, field, to_value):
    models = ModelRegistryFactory.create_batch(2, status="experimental")
    response = admin_client.post(
        reverse("admin:catalog_modelregistry_changelist"), changelist(action, [m.pk for m in models])
    )
    assert response.status_code == 302
    for m in models:
        m.refresh_from_db()
        assert m.status == to_value
        event = GovernanceEvent.objects.get(model=m, field=field)
        assert (event.from_value, event.to_value, event.actor_username) == ("experimental", to_value, "admin")


def test_mark_validated_sets_last_validated_at(admin_client):
    model = ModelRegistryFactory()
    admin_client.post(reverse("admin:catalog_modelregistry_changelist"), changelist("mark_validated", [model.pk]))
    model.refresh_from_db()
    assert model.last_validated_at is not None
    assert GovernanceEvent.objects.filter(model=model, field="lastValidatedAt").exists()


def test_governance_history_is_visible_in_the_admin(admin_client):
    model = ModelRegistryFactory(status="active")
    admin_client.post(reverse("admin:catalog_modelregistry_changelist"), changelist("deprecate", [model.pk]))
    page = admin_client.get(reverse("admin:catalog_modelregistry_change", args=[model.pk])).content.decode()
    assert "deprecated" in page and "admin action" in page
    listing = admin_client.get(reverse("admin:catalog_governanceevent_changelist")).content.decode()
    assert str(model) in listing


def test_admin_add_goes_through_the_service(admin_client, personas):
    data = {
        "name": "admin-made",
        "version": "1",
        "provider": "custom",
        "model_type": "text",
        # List fields are edited one item per line (blank lines, spaces and repeats dropped).
        "capabilities": "chat\n  vision \n\nchat",
        "supported_tasks": "",
        "input_formats": "text",
        "output_formats": "",
        "max_tokens": 100,
        "context_window": 1000,
        "max_batch_size": 1,
        "supported_parameters": "{}",
        "baseline_avg_latency_ms": 10,
        "baseline_cost_per_1k_tokens": "0.1",
        "baseline_success_rate": 0.9,
        "baseline_avg_tokens_per_request": 0,
        "description": "",
        "tags": "",
        "category": "",
        "license": "",
        "documentation": "",
        "status": "active",
        "security_level": "internal",
        "compliance": "SOC2\nGDPR",
        "governance_events-TOTAL_FORMS": 0,
        "governance_events-INITIAL_FORMS": 0,
    }
    response = admin_client.post(reverse("admin:catalog_modelregistry_add"), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    model = ModelRegistry.objects.get(name="admin-made")
    assert model.owner == personas["admin"]
    assert (model.capabilities, model.input_formats, model.tags, model.compliance) == (
        ["chat", "vision"],
        ["text"],
        [],
        ["SOC2", "GDPR"],
    )
    change = admin_client.get(reverse("admin:catalog_modelregistry_change", args=[model.pk])).content.decode()
    assert "chat\nvision</textarea>" in change and "One per line." in change and "[&quot;chat" not in change
    assert GovernanceEvent.objects.filter(model=model, field="registered").exists()
    # the same rules as the API: maxTokens above contextWindow is refused, a duplicate too
    bad = admin_client.post(reverse("admin:catalog_modelregistry_add"), {**data, "name": "bad", "max_tokens": 5000})
    assert bad.status_code == 200 and not ModelRegistry.objects.filter(name="bad").exists()
    dup = admin_client.post(reverse("admin:catalog_modelregistry_add"), data)
    assert dup.status_code == 200 and ModelRegistry.objects.filter(name="admin-made").count() == 1


def test_admin_follows_the_role_matrix(manager_client, admin_client, personas):
    model = ModelRegistryFactory()
    # managers update but neither create nor delete models
    assert manager_client.get(reverse("admin:catalog_modelregistry_change", args=[model.pk])).status_code == 200
    assert manager_client.get(reverse("admin:catalog_modelregistry_add")).status_code == 403
    assert (
        manager_client.post(reverse("admin:catalog_modelregistry_delete", args=[model.pk]), {"post": "yes"}).status_code
        == 403
    )
    assert (
        admin_client.post(reverse("admin:catalog_modelregistry_delete", args=[model.pk]), {"post": "yes"}).status_code
        == 302
    )
    assert not ModelRegistry.objects.filter(pk=model.pk).exists()
    # non-staff roles get no admin at all
    for role in ("developer", "analyst", "viewer"):
        client = Client()
        client.force_login(personas[role])
        assert client.get(reverse("admin:catalog_modelregistry_changelist")).status_code == 302  # to the login page


def test_manager_cannot_promote_to_admin_in_the_admin(manager_client, personas):
    viewer = personas["viewer"]
    url = reverse("admin:accounts_user_change", args=[viewer.pk])
    data = {
        "username": "viewer",
        "role": "admin",
        "is_active": "on",
        "email": "",
        "first_name": "",
        "last_name": "",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
    }
    response = manager_client.post(url, data)
    assert response.status_code == 200  # the form is shown again with the error
    viewer.refresh_from_db()
    assert viewer.role == "viewer"
    ok = manager_client.post(url, {**data, "role": "analyst"})
    assert ok.status_code == 302
    viewer.refresh_from_db()
    assert viewer.role == "analyst" and not viewer.is_staff


def test_the_admin_says_model_hub_and_links_to_the_console(admin_client):
    page = admin_client.get(reverse("admin:index")).content.decode()
    assert "Model Hub administration" in page and 'href="/console/"' in page
