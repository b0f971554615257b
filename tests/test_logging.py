"""Structured logs: LOG_FORMAT=json gives one JSON object per line with the request id and the access
log's fields; a Celery task that a request queued logs under that request's id."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from types import SimpleNamespace

import pytest
from django.conf import settings

from modelhub.api.request_id import active_request_id, reset_request_id, set_request_id
from tests.conftest import API


@pytest.fixture
def json_log():
    """The settings' logging with the json formatter, captured."""
    stream = io.StringIO()
    config = json.loads(json.dumps(settings.LOGGING))
    config["handlers"]["console"]["formatter"] = "json"
    logging.config.dictConfig(config)
    handler = logging.getLogger().handlers[0]
    handler.setStream(stream)
    yield stream
    logging.config.dictConfig(settings.LOGGING)


def test_the_access_log_is_one_json_object_per_request(json_log, client_for):
    response = client_for("viewer").get(f"{API}/models", HTTP_X_REQUEST_ID="req-logged-1")
    assert response.status_code == 200
    lines = [json.loads(line) for line in json_log.getvalue().splitlines() if line.strip()]
    access = [line for line in lines if line["logger"] == "modelhub.access"]
    assert len(access) == 1
    record = access[0]
    assert record["requestId"] == "req-logged-1" and record["level"] == "INFO" and "time" in record
    assert record["http"]["route"] == "/api/v1/modelhub/models"
    assert record["http"]["status"] == 200 and record["http"]["method"] == "GET"
    assert record["http"]["user"] and record["http"]["durationMs"] >= 0


def test_a_task_queued_by_a_request_logs_under_its_request_id():
    from modelhub import celery as celery_module

    token = set_request_id("req-that-queued")
    try:
        headers: dict = {}
        celery_module._carry_request_id(headers=headers)  # before_task_publish
    finally:
        reset_request_id(token)
    assert headers == {"modelhub_request_id": "req-that-queued"}
    assert active_request_id() is None
    # On the worker: the header becomes the log context of the run, and is dropped after it.
    task = SimpleNamespace(name="analytics.rollup", request=SimpleNamespace(modelhub_request_id="req-that-queued"))
    celery_module._task_started(task_id="t1", task=task)
    assert active_request_id() == "req-that-queued"
    celery_module._task_finished(task_id="t1", task=task, state="SUCCESS")
    assert active_request_id() is None


def test_outside_a_request_no_header_is_added():
    from modelhub import celery as celery_module

    headers: dict = {}
    celery_module._carry_request_id(headers=headers)
    assert headers == {}
