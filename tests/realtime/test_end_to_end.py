"""End to end on PostgreSQL + Redis: two uvicorn processes serving modelhub.asgi:application and a
Celery worker, all on the Redis channel layer and broker. A plain websocket client on one server and a
Socket.IO client on the other see every step of a deployment driven through the API:
creating -> running (the worker's readiness task) -> scaling -> running (worker) -> stopped."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import socketio
from asgiref.sync import async_to_sync
from django.conf import settings
from websockets.asyncio.client import connect

from tests.conftest import API, bearer, needs_redis
from tests.factories import ModelRegistryFactory
from tests.realtime.conftest import NAMESPACE, free_port, token_for

ROOT = Path(__file__).resolve().parents[2]


def _environment() -> dict[str, str]:
    from django.db import connection

    db = connection.settings_dict
    return {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "SECRET_KEY": settings.SECRET_KEY,
        "JWT_SIGNING_KEY": settings.JWT_SIGNING_KEY,
        "DJANGO_SETTINGS_MODULE": "modelhub.settings",
        "RATE_LIMITS_ENABLED": "false",
        "DB_POOL_MIN_SIZE": "1",
        "DB_POOL_MAX_SIZE": "4",
        "LOG_LEVEL": "WARNING",
        "EMBEDDED_WORKER": "false",
    }


def _spawn(command: list[str], env: dict, log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _wait_until(check, what: str, procs: list[subprocess.Popen], logs: list[Path], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        for proc, log in zip(procs, logs, strict=True):
            assert proc.poll() is None, f"{log.name} exited:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"{what} not ready:\n" + "\n".join(log.read_text()[-2000:] for log in logs)
        time.sleep(0.2)


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}{API}/health", timeout=2).status_code in (200, 503)
    except httpx.HTTPError:
        return False


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_every_deployment_step_reaches_websocket_and_socketio_clients_on_other_processes(personas, tmp_path):
    from django.db import connection

    needs_redis()
    if connection.vendor != "postgresql":
        pytest.skip("needs a database the server processes can share (PostgreSQL)")
    model = ModelRegistryFactory(owner=personas["admin"])
    env = _environment()
    ports = [free_port(), free_port()]
    logs = [tmp_path / f"uvicorn-{port}.log" for port in ports] + [tmp_path / "worker.log"]
    procs = [
        _spawn(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "modelhub.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            env,
            log,
        )
        for port, log in zip(ports, logs, strict=False)
    ]
    procs.append(
        _spawn(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "modelhub",
                "worker",
                "--pool",
                "solo",
                "--concurrency",
                "1",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel",
                "INFO",
            ],
            env,
            logs[2],
        )
    )
    try:
        _wait_until(lambda: all(_healthy(port) for port in ports), "servers", procs, logs)
        _wait_until(lambda: "ready." in logs[2].read_text(), "worker", procs, logs)
        tokens = {
            "developer": bearer(personas["developer"]),
            "analyst": token_for(personas["analyst"]),
            "viewer": token_for(personas["viewer"]),
        }
        async_to_sync(_scenario)(ports, tokens, {"modelId": str(model.pk), "version": model.version})
    finally:
        for proc in procs:
            os.killpg(proc.pid, 15)
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)


async def _scenario(ports: list[int], tokens: dict[str, str], model: dict[str, str]) -> None:
    api = f"http://127.0.0.1:{ports[0]}{API}"
    developer = {"Authorization": tokens["developer"]}

    # A plain websocket client on server 0 (an analyst), a Socket.IO client on server 1 (a viewer).
    websocket = await connect(
        f"ws://127.0.0.1:{ports[0]}/modelhub/realtime",
        additional_headers={"Authorization": f"Bearer {tokens['analyst']}"},
    )
    hello = json.loads(await asyncio.wait_for(websocket.recv(), 10))
    assert hello["event"] == "auth:ok" and hello["data"]["role"] == "analyst"
    sio_events: asyncio.Queue = asyncio.Queue()
    sio = socketio.AsyncClient(reconnection=False)

    async def on_status(data):
        await sio_events.put(data)

    sio.on("deployment:status", on_status, namespace=NAMESPACE)
    await sio.connect(
        f"http://127.0.0.1:{ports[1]}",
        namespaces=[NAMESPACE],
        auth={"token": tokens["viewer"]},
        transports=["websocket"],
        wait_timeout=10,
    )

    async def next_ws() -> dict:
        while True:
            message = json.loads(await asyncio.wait_for(websocket.recv(), 20))
            if message["event"] == "deployment:status" and message["data"]["deploymentId"] == deployment_id:
                return message["data"]

    async def next_sio() -> dict:
        while True:
            data = await asyncio.wait_for(sio_events.get(), 20)
            if data["deploymentId"] == deployment_id:
                return data

    async def expect(status: str, **details) -> None:
        for received in (await next_ws(), await next_sio()):
            assert received["status"] == status, received
            assert received["timestamp"].endswith("Z")
            for key, value in details.items():
                assert received["details"][key] == value, received

    async with httpx.AsyncClient(headers=developer, timeout=20) as client:
        body = {
            **model,
            "environment": "staging",
            "configuration": {"replicas": 2, "resources": {"cpu": "500m", "memory": "1Gi"}},
        }
        response = await client.post(f"{api}/deployments", json=body)
        assert response.status_code == 201, response.text
        deployment_id = response.json()["deployment"]["id"]
        await expect("creating", **{"from": None})
        await expect("running", **{"from": "creating"})  # published by the Celery worker's readiness task

        response = await client.post(f"{api}/deployments/{deployment_id}/scale", json={"replicas": 3})
        assert response.status_code in (200, 202), response.text
        await expect("scaling", targetReplicas=3)
        await expect("running", **{"from": "scaling", "replicas": 3})

        response = await client.delete(f"{api}/deployments/{deployment_id}")
        assert response.status_code in (200, 204), response.text
        await expect("stopped", **{"from": "running"})

    await websocket.close()
    await sio.disconnect()
