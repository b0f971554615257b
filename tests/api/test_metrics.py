"""``/metrics``: Prometheus' format (checked with prometheus-client's own parser), its protection, the
series moving with real requests, and the multiprocess mode merging several server processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.test import Client, override_settings
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import API, assert_error
from tests.live import _free_port


def scrape(client: Client | None = None, **headers) -> dict[tuple[str, tuple], float]:
    response = (client or Client()).get("/metrics", **headers)
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"].startswith("text/plain; version=")
    return samples(response.content.decode())


def samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(found, name: str, **labels) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_requests_are_counted_by_route_pattern_status_and_error_code(client_for, model):
    before = scrape()
    client = client_for("viewer")
    assert client.get(f"{API}/models").status_code == 200
    assert client.get(f"{API}/models/{model.pk}").status_code == 200
    assert_error(client.get(f"{API}/models/00000000-0000-0000-0000-000000000000"), 404, "MODEL_NOT_FOUND")
    after = scrape()
    route = "/api/v1/modelhub/models/{pk}"
    total = "modelhub_http_requests_total"
    assert (
        value(after, total, route="/api/v1/modelhub/models", method="GET", status="200")
        - value(before, total, route="/api/v1/modelhub/models", method="GET", status="200")
        == 1
    )
    assert (
        value(after, total, route=route, method="GET", status="200")
        - value(before, total, route=route, method="GET", status="200")
        == 1
    )
    errors = "modelhub_http_errors_total"
    assert (
        value(after, errors, route=route, code="MODEL_NOT_FOUND")
        - value(before, errors, route=route, code="MODEL_NOT_FOUND")
        == 1
    )
    # The latency histogram: one observation per request, in seconds.
    count = "modelhub_http_request_duration_seconds_count"
    assert value(after, count, route=route, method="GET") - value(before, count, route=route, method="GET") == 2
    # Raw paths never become labels (bounded cardinality).
    assert not any(str(model.pk) in str(labels) for _, labels in after)


def test_dependencies_are_checked_at_scrape_time(db):
    found = scrape()
    assert value(found, "modelhub_dependency_up", dependency="database") == 1.0
    assert value(found, "modelhub_dependency_up", dependency="cache") == 1.0
    assert ("modelhub_dependency_latency_seconds", (("dependency", "database"),)) in found


def test_ingestion_counts_accepted_duplicates_and_rejected(client_for, model):
    from tests.analytics.helpers import event

    before = scrape()
    one = event(model)
    body = {"events": [one, one, {**event(model), "latencyMs": -1}]}
    response = client_for("developer").post(f"{API}/analytics/events", body, format="json")
    assert response.status_code == 200, response.content
    after = scrape()
    name = "modelhub_ingest_events_total"
    delta = {
        r: value(after, name, result=r) - value(before, name, result=r) for r in ("accepted", "duplicate", "rejected")
    }
    assert delta == {"accepted": 1, "duplicate": 1, "rejected": 1}


def test_the_rollup_reports_its_duration_and_last_success(db):
    from analytics.tasks import rollup

    before = time.time()
    rollup()
    found = scrape()
    assert value(found, "modelhub_rollup_last_success_timestamp_seconds") >= before - 1
    assert value(found, "modelhub_rollup_duration_seconds_count") >= 1


def test_celery_tasks_report_their_runtime(db):
    from analytics.tasks import rollup

    before = scrape()
    rollup.delay()  # eager in tests: published and run in this process, signals included
    after = scrape()
    name = "modelhub_celery_task_duration_seconds_count"
    labels = {"task": "analytics.rollup", "state": "SUCCESS"}
    assert value(after, name, **labels) - value(before, name, **labels) == 1


def test_metrics_need_an_allowed_network_or_the_token(db):
    outside = {"REMOTE_ADDR": "203.0.113.9"}
    assert_error(Client().get("/metrics", **outside), 403, "FORBIDDEN")
    with override_settings(METRICS_TOKEN="s3cret-token-for-tests"):
        assert_error(Client().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong", **outside), 403, "FORBIDDEN")
        scrape(HTTP_AUTHORIZATION="Bearer s3cret-token-for-tests", **outside)
    assert Client().post("/metrics").status_code == 405


@pytest.mark.slow
def test_two_server_processes_report_together_in_multiprocess_mode(tmp_path):
    """uvicorn --workers / several containers: every process writes its own files; any one answers all."""
    shared = tmp_path / "metrics"
    root = Path(__file__).resolve().parents[2]
    ports = [_free_port(), _free_port()]
    servers = []
    for i, port in enumerate(ports):
        own = shared / f"web{i}"
        own.mkdir(parents=True)
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "modelhub.settings",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite3'}",
            "REDIS_URL": "",
            "PROMETHEUS_MULTIPROC_DIR": str(own),
            "METRICS_SHARED_DIR": str(shared),
            "LOG_LEVEL": "WARNING",
        }
        servers.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "modelhub.asgi:application",
                    "--port",
                    str(port),
                    "--lifespan",
                    "off",
                    "--no-access-log",
                    "--log-level",
                    "warning",
                ],
                cwd=root,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
    try:
        deadline = time.monotonic() + 30
        for port in ports:
            while True:
                try:
                    httpx.get(f"http://127.0.0.1:{port}/nothing-here", timeout=2)
                    break
                except httpx.HTTPError:
                    assert time.monotonic() < deadline, "server did not start"
                    time.sleep(0.2)

        def not_found_count() -> float:
            found = samples(httpx.get(f"http://127.0.0.1:{ports[0]}/metrics", timeout=10).text)
            return value(found, "modelhub_http_requests_total", route="unmatched", method="GET", status="404")

        # From here on, not from zero: a start-up probe that timed out on a busy machine was still counted.
        before = not_found_count()
        for port, n in zip(ports, (3, 5), strict=True):
            for _ in range(n):
                assert httpx.get(f"http://127.0.0.1:{port}/nothing-here", timeout=5).status_code == 404
        # 3 on the first process, 5 on the second, all answered by the first.
        assert not_found_count() - before == 8
    finally:
        for server in servers:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(10)
