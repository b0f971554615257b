"""The lifecycle: state machine, tasks (idempotent), readiness probe against a real server, realtime events."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from deployments import services, tasks
from deployments.models import TRANSITIONS, Deployment, DeploymentStatus, DeploymentTransition
from modelhub.realtime import decode_data
from tests.channel_listener import Listener
from tests.conftest import API
from tests.factories import DeploymentFactory

pytestmark = pytest.mark.django_db

STATUSES = [s.value for s in DeploymentStatus]


# --- A real model server to probe -----------------------------------------------------------------


class ModelServer:
    """An HTTP server in a thread; ``answers`` is the status of each successive request (the last repeats)."""

    def __init__(self, answers: list[int], delay: float = 0.0):
        self.answers = answers
        self.delay = delay
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                if server.delay:
                    time.sleep(server.delay)
                status = server.answers[min(len(server.requests) - 1, len(server.answers) - 1)]
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def model_server():
    servers: list[ModelServer] = []

    def start(answers: list[int], delay: float = 0.0) -> ModelServer:
        servers.append(ModelServer(answers, delay))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _networked(create_body, port: int, **networking):
    return create_body(
        configuration={"host": "127.0.0.1", "port": port, "path": "/ready", "timeout": 1, "retries": 0, **networking}
    )


# --- State machine ---------------------------------------------------------------------------------


@pytest.mark.parametrize("source", STATUSES)
@pytest.mark.parametrize("target", STATUSES)
def test_only_legal_transitions(source, target, personas):
    deployment = DeploymentFactory(status=source, target_replicas=3 if source == "scaling" else None)
    from django.db import transaction

    legal = target in TRANSITIONS[source]
    with transaction.atomic():
        if legal:
            moved = services._transition(deployment.pk, to_status=target, actor=personas["admin"], reason="test")
            assert moved.status == target
        else:
            with pytest.raises(services.IllegalTransition) as caught:
                services._transition(deployment.pk, to_status=target, actor=personas["admin"], reason="test")
            assert caught.value.status_code == 409
            assert caught.value.details["currentStatus"] == source
    deployment.refresh_from_db()
    assert deployment.status == (target if legal else source)
    assert DeploymentTransition.objects.filter(deployment=deployment).count() == (1 if legal else 0)


def test_the_machine_is_the_documented_one():
    assert {s: sorted(t) for s, t in TRANSITIONS.items()} == {
        "creating": ["failed", "running", "stopped"],
        "running": ["scaling", "stopped"],
        "scaling": ["failed", "running", "stopped"],
        "failed": [],
        "stopped": [],
    }


def test_a_stale_transition_matches_no_row(personas):
    """The UPDATE is conditional on the status read: a task that lost the race changes nothing."""
    deployment = DeploymentFactory(status="creating")
    services.deployment_stop(deployment=deployment, actor=personas["developer"])
    # The readiness task had read "creating" before the stop; it now finds a stopped deployment.
    assert services.deployment_check_readiness(deployment_id=deployment.pk, expected_status="creating") is None
    deployment.refresh_from_db()
    assert deployment.status == "stopped"
    assert list(deployment.transitions.values_list("to_status", flat=True)) == ["stopped"]


# --- Tasks -----------------------------------------------------------------------------------------


def test_create_becomes_running_by_itself(client_for, create_body, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for("developer").post(f"{API}/deployments", create_body(), format="json")
    assert response.status_code == 201
    deployment = Deployment.objects.get(pk=response.json()["deployment"]["id"])
    assert deployment.status == "running" and deployment.last_health_check is not None
    assert deployment.status_reason.startswith("No host configured")
    steps = deployment.transitions.order_by("created_at", "id")
    assert [(t.from_status, t.to_status, t.actor_username) for t in steps] == [
        ("", "creating", "developer"),
        ("creating", "running", ""),
    ]


def test_tasks_are_idempotent(client_for, create_body, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        deployment_id = (
            client_for("developer").post(f"{API}/deployments", create_body(), format="json").json()["deployment"]["id"]
        )
    before = list(DeploymentTransition.objects.values_list("id", flat=True))
    # Celery redelivers (acks_late): the same task again, and a stray scaling task, change nothing.
    assert tasks.deployment_become_ready.delay(deployment_id).get() is None
    assert tasks.deployment_finish_scaling.delay(deployment_id).get() is None
    assert list(DeploymentTransition.objects.values_list("id", flat=True)) == before
    assert Deployment.objects.get(pk=deployment_id).status == "running"
    # and a task for a deployment that does not exist (deleted row, bad message) is a no-op too
    assert tasks.deployment_become_ready.delay("00000000-0000-0000-0000-000000000000").get() is None


def test_probe_success(client_for, create_body, model_server, django_capture_on_commit_callbacks):
    server = model_server([200])
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for("developer").post(
            f"{API}/deployments", _networked(create_body, server.port), format="json"
        )
    deployment = Deployment.objects.get(pk=response.json()["deployment"]["id"])
    assert deployment.status == "running", deployment.status_reason
    assert server.requests == ["/ready"]
    assert deployment.status_reason == f"Readiness probe http://127.0.0.1:{server.port}/ready answered 200."


def test_probe_failure_fails_with_the_reason(client_for, create_body, model_server, django_capture_on_commit_callbacks):
    server = model_server([503])
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for("developer").post(
            f"{API}/deployments", _networked(create_body, server.port, retries=2), format="json"
        )
    deployment = Deployment.objects.get(pk=response.json()["deployment"]["id"])
    assert deployment.status == "failed"
    assert len(server.requests) == 3  # 1 attempt + 2 retries
    assert "failed after 3 attempt(s): answered HTTP 503" in deployment.status_reason
    assert deployment.last_health_check is not None
    detail = client_for("viewer").get(f"{API}/deployments/{deployment.pk}").json()["deployment"]
    assert detail["status"] == "failed" and "HTTP 503" in detail["statusReason"]


def test_probe_retries_until_ready(client_for, create_body, model_server, django_capture_on_commit_callbacks):
    server = model_server([503, 502, 204])
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for("developer").post(
            f"{API}/deployments", _networked(create_body, server.port, retries=3), format="json"
        )
    assert Deployment.objects.get(pk=response.json()["deployment"]["id"]).status == "running"
    assert len(server.requests) == 3


def test_probe_respects_the_timeout(client_for, create_body, model_server, django_capture_on_commit_callbacks):
    server = model_server([200], delay=1.0)
    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for("developer").post(
            f"{API}/deployments", _networked(create_body, server.port, timeout=0.2), format="json"
        )
    assert time.monotonic() - started < 0.9
    deployment = Deployment.objects.get(pk=response.json()["deployment"]["id"])
    assert deployment.status == "failed" and "timed out after 0.2 s" in deployment.status_reason


def test_probe_of_nothing_listening(client_for, create_body, model_server, django_capture_on_commit_callbacks):
    server = model_server([200])
    port = server.port
    server.close()  # the port is free again: connection refused
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for("developer").post(f"{API}/deployments", _networked(create_body, port), format="json")
    deployment = Deployment.objects.get(pk=response.json()["deployment"]["id"])
    assert deployment.status == "failed" and "ConnectError" in deployment.status_reason


def test_scaling_that_does_not_become_ready_fails(
    client_for, create_body, model_server, django_capture_on_commit_callbacks
):
    server = model_server([200, 500])
    with django_capture_on_commit_callbacks(execute=True):
        deployment_id = (
            client_for("developer")
            .post(f"{API}/deployments", _networked(create_body, server.port), format="json")
            .json()["deployment"]["id"]
        )
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for("developer").post(
            f"{API}/deployments/{deployment_id}/scale", {"replicas": 4}, format="json"
        )
    assert response.status_code == 202
    deployment = Deployment.objects.get(pk=deployment_id)
    assert (deployment.status, deployment.replicas, deployment.target_replicas) == ("failed", 2, None)
    assert [t.to_status for t in deployment.transitions.order_by("created_at", "id")] == [
        "creating",
        "running",
        "scaling",
        "failed",
    ]


# --- Realtime --------------------------------------------------------------------------------------


@pytest.fixture
def listener():
    subscribed = Listener("deployments.read")
    yield subscribed
    subscribed.close()


def test_every_transition_is_published(client_for, create_body, listener, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        deployment_id = (
            client_for("developer").post(f"{API}/deployments", create_body(), format="json").json()["deployment"]["id"]
        )
    with django_capture_on_commit_callbacks(execute=True):
        client_for("developer").post(f"{API}/deployments/{deployment_id}/scale", {"replicas": 3}, format="json")
    with django_capture_on_commit_callbacks(execute=True):
        client_for("developer").delete(f"{API}/deployments/{deployment_id}")
    received = listener.drain()
    assert all(m["type"] == "realtime.event" and m["event"] == "deployment:status" for m in received)
    data = [decode_data(m["text"]) for m in received]
    assert [(d["details"]["from"], d["status"]) for d in data] == [
        (None, "creating"),
        ("creating", "running"),
        ("running", "scaling"),
        ("scaling", "running"),
        ("running", "stopped"),
    ]
    assert {d["deploymentId"] for d in data} == {deployment_id}
    assert all(d["timestamp"].endswith("Z") for d in data)
    assert data[2]["details"]["targetReplicas"] == 3 and data[2]["details"]["actor"] == "developer"
    assert data[3]["details"]["replicas"] == 3 and data[3]["details"]["actor"] is None


def test_nothing_is_published_when_the_request_fails(
    client_for, create_body, listener, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client_for("developer").post(f"{API}/deployments", create_body(version="nope"), format="json")
    assert response.status_code == 400 and callbacks == []
    assert listener.drain() == []


def test_probe_refuses_private_hosts_the_allow_list_does_not_name(
    client_for, create_body, settings, django_capture_on_commit_callbacks
):
    """The readiness probe checks the upstream allow-list first: a deployer cannot make the hub probe
    internal addresses (10.x here; tests allow only loopback besides public addresses)."""
    body = _networked(create_body, 80)
    body["configuration"]["host"] = "10.20.30.40"
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for("developer").post(f"{API}/deployments", body, format="json")
    deployment = Deployment.objects.get(pk=response.json()["deployment"]["id"])
    assert deployment.status == "failed" and "refused" in deployment.status_reason
    assert "GATEWAY_UPSTREAM_ALLOWLIST" in deployment.status_reason
