"""Budget alerts fire once per period; their notifications go through the outbox to a real local receiver
that verifies Standard Webhooks signatures and counts deliveries by webhook-id."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail
from django.utils import timezone
from standardwebhooks import Webhook

from analytics.rollup import rollup
from analytics.services import ingest_usage
from costs import services
from costs.models import BudgetAlert, Notification
from tests.analytics.helpers import event
from tests.costs.helpers import budget
from tests.costs.matrix import WEBHOOK_SECRET
from tests.factories import ModelRegistryFactory

pytestmark = pytest.mark.django_db


class Receiver:
    """A webhook endpoint on 127.0.0.1: answers ``statuses`` in turn (then 204), verifies every signature."""

    def __init__(self, statuses=(), verify=True):
        self.statuses = list(statuses)
        self.bodies: list[bytes] = []
        self.attempts: list[str] = []
        self.delivered: dict[str, dict] = {}
        self.bad_signatures = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.bodies.append(body)
                if not verify:
                    self.send_response(200)
                    self.end_headers()
                    return
                try:
                    payload = Webhook(WEBHOOK_SECRET).verify(body, headers)
                except Exception:
                    receiver.bad_signatures += 1
                    self.send_response(400)
                    self.end_headers()
                    return
                receiver.attempts.append(headers["webhook-id"])
                status = receiver.statuses.pop(0) if receiver.statuses else 204
                if status < 300:
                    receiver.delivered.setdefault(headers["webhook-id"], payload)
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/budget"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def receiver():
    made = []

    def make(statuses=(), verify=True):
        r = Receiver(statuses, verify)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def _spend(model, cost: str, n: int = 1):
    now = timezone.now()
    items = [event(model, cost=float(Decimal(cost)), at=now) for _ in range(n)]
    result = ingest_usage(items)
    assert result.accepted == n, result.as_response()
    rollup()


def _webhook(admin, url):
    return services.channel_create(actor=admin, name="hook", type="webhook", target=url, secret=WEBHOOK_SECRET)


def test_a_threshold_fires_once_and_a_flaky_receiver_gets_it_exactly_once(
    personas, receiver, django_capture_on_commit_callbacks
):
    admin = personas["admin"]
    r = receiver(statuses=[500, 503])
    channel = _webhook(admin, r.url)
    b = budget(admin, 10, alerts=[{"threshold": 50, "action": "notify", "channels": [str(channel.pk)]}])
    model = ModelRegistryFactory()
    _spend(model, "6")
    with django_capture_on_commit_callbacks(execute=True):
        assert services.evaluate_budgets()["fired"] == 1
    note = Notification.objects.get()
    assert note.status == "pending" and note.attempts == 1 and note.last_error == "HTTP 500"
    assert services.sweep_outbox() == {}  # not due yet: backoff
    later = timezone.now() + timedelta(hours=1)
    assert services.sweep_outbox(now=later) == {"pending": 1}  # 503: backoff again
    assert services.sweep_outbox(now=later + timedelta(hours=2)) == {"sent": 1}
    note.refresh_from_db()
    assert note.status == "sent" and note.attempts == 3
    assert len(r.attempts) == 3 and len(set(r.attempts)) == 1  # one webhook-id on every retry
    assert len(r.delivered) == 1 and r.bad_signatures == 0
    payload = next(iter(r.delivered.values()))
    assert payload["budgetId"] == str(b.pk) and payload["threshold"] == 50.0 and payload["spend"] == "6.00000000"
    # evaluated again (another beat run, or two at once): nothing fires twice in the period
    with django_capture_on_commit_callbacks(execute=True):
        assert services.evaluate_budgets()["fired"] == 0
    assert BudgetAlert.objects.count() == 1 and Notification.objects.count() == 1
    assert services.sweep_outbox(now=later + timedelta(days=1)) == {}


def test_410_stops_and_private_addresses_are_refused(personas, receiver, settings, django_capture_on_commit_callbacks):
    admin = personas["admin"]
    gone = receiver(statuses=[410])
    hook = _webhook(admin, gone.url)
    budget(admin, 10, alerts=[{"threshold": 10, "action": "notify", "channels": [str(hook.pk)]}])
    _spend(ModelRegistryFactory(), "2")
    with django_capture_on_commit_callbacks(execute=True):
        services.evaluate_budgets()
    note = Notification.objects.get()
    assert note.status == "gone" and note.attempts == 1
    assert services.sweep_outbox(now=timezone.now() + timedelta(days=1)) == {}

    settings.GATEWAY_UPSTREAM_ALLOWLIST = ["*"]  # public addresses only: loopback is refused
    other = receiver()
    private = _webhook(admin, other.url)
    budget(admin, 10, alerts=[{"threshold": 5, "action": "notify", "channels": [str(private.pk)]}], name="b2")
    with django_capture_on_commit_callbacks(execute=True):
        services.evaluate_budgets()
    refused = Notification.objects.get(channel=private)
    assert refused.status == "pending" and "does not allow" in refused.last_error and other.attempts == []


def test_email_and_slack_channels(personas, receiver, django_capture_on_commit_callbacks):
    admin = personas["admin"]
    slack = receiver(verify=False)
    services.channel_create(actor=admin, name="slack", type="slack", target=slack.url)
    services.channel_create(actor=admin, name="ops", type="email", target="ops@example.com")
    budget(admin, 10, alerts=[{"threshold": 80, "action": "notify", "channels": ["email", "slack"]}])
    _spend(ModelRegistryFactory(), "9")
    with django_capture_on_commit_callbacks(execute=True):
        services.evaluate_budgets()
    assert set(Notification.objects.values_list("status", flat=True)) == {"sent"}
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["ops@example.com"]
    assert len(slack.bodies) == 1 and b'"text"' in slack.bodies[0]  # Slack's incoming-webhook shape
    assert "80" in mail.outbox[0].subject


def test_the_alert_is_published_as_alert_new(personas, django_capture_on_commit_callbacks, monkeypatch):
    published = []
    monkeypatch.setattr(services, "publish", lambda event, data: published.append((event, data)))
    budget(personas["admin"], 10, alerts=[{"threshold": 100, "action": "block", "channels": []}])
    _spend(ModelRegistryFactory(), "10")
    with django_capture_on_commit_callbacks(execute=True):
        services.evaluate_budgets()
    assert published and published[0][0] == "alert:new" and published[0][1]["type"] == "budget_exceeded"
