"""The costs admin pages: the outbox with status and attempts, secrets never shown."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.costs.matrix import WEBHOOK_SECRET, _notification

pytestmark = pytest.mark.django_db


def test_admin_pages_show_the_outbox_and_hide_secrets(personas):
    note = _notification(personas["admin"])
    client = Client()
    client.force_login(personas["admin"])
    for page in ("budget", "notificationchannel", "notification", "budgetalert", "reservation"):
        response = client.get(f"/admin/costs/{page}/")
        assert response.status_code == 200, page
    outbox = client.get("/admin/costs/notification/").content.decode()
    assert "pending" in outbox.lower() and str(note.pk) in outbox
    channel = client.get(f"/admin/costs/notificationchannel/{note.channel_id}/change/").content.decode()
    assert WEBHOOK_SECRET not in channel
    retried = client.post(
        "/admin/costs/notification/", {"action": "retry_now", "_selected_action": [str(note.pk)]}, follow=True
    )
    assert retried.status_code == 200 and "due now" in retried.content.decode()


def _admin_add(client, alerts, categories="{}", monthly="100"):
    return client.post(
        "/admin/costs/budget/add/",
        {"name": "ops", "monthly_budget": monthly, "alerts": alerts, "categories": categories},
    )


def test_admin_budget_saves_go_through_the_api_rules(personas):
    """A manager's admin save is checked like POST /cost/budgets: a malformed alert or an unknown channel
    is a form error and nothing is saved; a valid one is saved by the service (owner, rules refreshed)."""
    from costs import enforcement
    from costs.models import Budget

    manager = personas["manager"]
    manager.is_staff = True
    manager.save()
    client = Client()
    client.force_login(manager)
    for alerts, expected in (
        ('[{"threshold": "80"}]', "alerts[0].threshold"),
        ('[{"threshold": 80}]', "alerts[0].action"),
        ('[{"threshold": "abc", "action": "block"}]', "alerts[0].threshold"),
        ('[{"threshold": 80, "action": "notify", "channels": ["00000000-0000-4000-8000-000000000000"]}]', "no channel"),
    ):
        response = _admin_add(client, alerts)
        assert response.status_code == 200 and expected in response.content.decode(), alerts
    assert not Budget.objects.exists()
    enforcement.rules_cache.get()  # a cached copy, which the service's save must clear
    response = _admin_add(client, '[{"threshold": 100, "action": "block", "channels": []}]')
    assert response.status_code == 302, response.content.decode()[:2000]
    budget = Budget.objects.get()
    assert budget.owner == manager and budget.alerts[0]["threshold"] == 100.0
    assert enforcement.rules_cache.get().by_scope["all"][0].budget_id == str(budget.pk)
    changed = client.post(
        f"/admin/costs/budget/{budget.pk}/change/",
        {"name": "ops", "monthly_budget": "100", "alerts": '[{"threshold": 0, "action": "block"}]', "categories": "{}"},
    )
    assert changed.status_code == 200 and "alerts[0].threshold" in changed.content.decode()
    budget.refresh_from_db()
    assert budget.alerts[0]["threshold"] == 100.0


def test_malformed_alerts_written_around_the_api_are_skipped_not_raised(personas, model):
    """Rows no API check saw (a shell, an old admin): the gate plans with the usable alerts only and the
    alert job runs (neither raises, so the gateway does not 500)."""
    from costs import enforcement, services
    from costs.models import Budget

    Budget.objects.create(
        name="bad",
        monthly_budget=100,
        owner=personas["admin"],
        alerts=[
            {"threshold": "80"},
            {"threshold": "abc", "action": "block"},
            "junk",
            {"threshold": 50, "action": "throttle", "throttleFactor": "x"},
            {"threshold": 100, "action": "block", "channels": []},
        ],
        categories={"providers": {"openai": "abc"}, "environments": {"production": 50}},
    )
    plan = services.gate_plan_cached(model.pk, model.provider, "production")
    assert plan is None  # not loaded yet
    plan = services.gate_plan(model.pk, model.provider, "production")
    assert plan.block == {"all": to_units(100), "e:production": to_units(50)} and plan.throttles == []
    assert services.gate_plan_cached(model.pk, model.provider, "production") is plan
    rules = enforcement.Rules([enforcement.Limit("b", "all", 100, ({"threshold": "80"}, {"action": "block"}))])
    assert rules.plan(model.pk, model.provider, "production").block == {}
    assert services.evaluate_budgets() == {"fired": 0}


def to_units(usd):
    from decimal import Decimal

    from costs.constants import to_units as units

    return units(Decimal(str(usd)))


def test_admin_channel_targets_are_write_only(personas):
    """The admin never renders a Slack / webhook URL back; a blank target on a change keeps it, a bad one
    is a form error (ChannelRequestSerializer)."""
    from costs import services
    from costs.models import NotificationChannel

    slack = "https://hooks.slack.com/services/T000/B000/s3cr3tTAIL"
    channel = services.channel_create(actor=personas["admin"], name="s", type="slack", target=slack)
    client = Client()
    client.force_login(personas["admin"])
    for page in ("/admin/costs/notificationchannel/", f"/admin/costs/notificationchannel/{channel.pk}/change/"):
        html = client.get(page).content.decode()
        assert "s3cr3t" not in html and "hooks.slack.com/…TAIL" in html, page
    change = f"/admin/costs/notificationchannel/{channel.pk}/change/"
    assert client.post(change, {"name": "renamed", "type": "slack", "target": ""}).status_code == 302
    channel.refresh_from_db()
    assert channel.name == "renamed" and channel.target == slack
    bad = client.post(change, {"name": "renamed", "type": "slack", "target": "not a url"})
    assert bad.status_code == 200 and "target: Must be an http(s) URL." in bad.content.decode()
    added = client.post("/admin/costs/notificationchannel/add/", {"name": "m", "type": "email", "target": "a@b.co"})
    assert added.status_code == 302 and NotificationChannel.objects.get(name="m").owner == personas["admin"]
