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
