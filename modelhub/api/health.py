"""``GET /health``: each backing service ``ok`` or ``down`` with its latency."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="health")


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def check_cache() -> None:
    key = f"health:{uuid.uuid4().hex}"
    cache.set(key, "1", 5)
    if cache.get(key) != "1":
        raise RuntimeError("cache did not return what was written")
    cache.delete(key)


def check_channel_layer() -> None:
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")

    async def roundtrip() -> None:
        import asyncio

        channel = await layer.new_channel()
        await layer.send(channel, {"type": "health.ping"})
        message = await asyncio.wait_for(layer.receive(channel), timeout=settings.HEALTH_CHECK_TIMEOUT_SECONDS)
        if message.get("type") != "health.ping":
            raise RuntimeError("channel layer returned a different message")

    async_to_sync(roundtrip)()


def check_broker() -> None:
    from modelhub.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=settings.HEALTH_CHECK_TIMEOUT_SECONDS)


CHECKS: dict[str, Callable[[], None]] = {
    "database": check_database,
    "cache": check_cache,
    "channelLayer": check_channel_layer,
    "broker": check_broker,
}


def _run(name: str, check: Callable[[], None]) -> dict[str, object]:
    started = time.perf_counter()
    try:
        if name == "database":  # the request's own connection; it must run on this thread
            check()
        else:
            _pool.submit(check).result(timeout=settings.HEALTH_CHECK_TIMEOUT_SECONDS)
        result: dict[str, object] = {"status": "ok"}
    except FutureTimeout:
        result = {"status": "down", "error": "timed out"}
    except Exception as exc:
        result = {"status": "down", "error": type(exc).__name__}
    result["latencyMs"] = round((time.perf_counter() - started) * 1000, 2)
    return result


_check_schema = inline_serializer(
    "HealthCheck",
    {
        "status": serializers.ChoiceField(choices=["ok", "down"]),
        "latencyMs": serializers.FloatField(),
        "error": serializers.CharField(required=False),
    },
)


class HealthView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        tags=["health"],
        summary="Liveness of the database, cache, channel layer and broker",
        responses={
            (200, "application/json"): inline_serializer(
                "HealthResponse",
                {
                    "status": serializers.ChoiceField(choices=["ok", "degraded"]),
                    "checks": inline_serializer("HealthChecks", {name: _check_schema for name in CHECKS}),
                },
            ),
        },
    )
    def get(self, request: Request) -> Response:
        checks = {name: _run(name, check) for name, check in CHECKS.items()}
        healthy = all(c["status"] == "ok" for c in checks.values())
        return Response({"status": "ok" if healthy else "degraded", "checks": checks}, status=200 if healthy else 503)
