"""The embedded default (no Redis): one process serves HTTP, the websocket and the Celery worker threads
on the in-memory channel layer. Events published on a2wsgi's request threads and on the worker thread
must reach sockets served by the event loop (``modelhub.realtime`` hands each send to that loop)."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from asgiref.sync import async_to_sync
from websockets.asyncio.client import connect

from modelhub import embedded
from modelhub.celery import app
from tests.conftest import API, bearer
from tests.factories import ModelRegistryFactory
from tests.realtime.conftest import REALTIME_PATH, token_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]  # a live uvicorn + the embedded worker


def test_a_deployment_created_over_http_goes_running_and_every_step_reaches_the_socket(
    live_server_url, personas, settings
):
    if settings.REDIS_URL:
        pytest.skip("the embedded default runs without Redis (in-memory layer and broker)")
    model = ModelRegistryFactory(owner=personas["admin"])
    body = {
        "modelId": str(model.pk),
        "version": model.version,
        "environment": "staging",
        "configuration": {"replicas": 1, "resources": {"cpu": "250m", "memory": "512Mi"}},
    }
    developer, viewer = bearer(personas["developer"]), token_for(personas["viewer"])

    async def scenario() -> None:
        ws_url = live_server_url.replace("http://", "ws://") + REALTIME_PATH
        async with connect(f"{ws_url}?token={viewer}") as socket:
            assert json.loads(await asyncio.wait_for(socket.recv(), 5))["event"] == "auth:ok"
            async with httpx.AsyncClient(base_url=live_server_url, headers={"Authorization": developer}) as client:
                response = await client.post(f"{API}/deployments", json=body)
            assert response.status_code == 201, response.text
            deployment_id = response.json()["deployment"]["id"]
            seen = []
            while len(seen) < 2:
                message = json.loads(await asyncio.wait_for(socket.recv(), 10))
                assert message["event"] == "deployment:status" and message["data"]["deploymentId"] == deployment_id
                seen.append(message["data"]["status"])
            assert seen == ["creating", "running"]  # the second one from the worker thread

    app.conf.task_always_eager = False
    embedded.start()
    try:
        async_to_sync(scenario)()
    finally:
        embedded.stop()
        app.conf.task_always_eager = True
