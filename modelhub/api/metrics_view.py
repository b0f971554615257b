"""``GET /metrics``: Prometheus' text format, for a scraper that holds the token or sits on an
allowed network (``METRICS_TOKEN``, ``METRICS_ALLOWED_NETWORKS``; see the README "Operations").

At scrape time it also reports the backing services (``modelhub_dependency_up``, the ``/health``
checks) and the Celery queue's length (Redis broker only).
"""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from modelhub import metrics
from modelhub.api import health
from modelhub.api.exceptions import ErrorCode, error_response


def _allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip(), token):
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in network for network in settings.METRICS_ALLOWED_NETWORKS)


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        return error_response(
            403, ErrorCode.FORBIDDEN, "Metrics need the metrics token or an allowed network (METRICS_ALLOWED_NETWORKS)."
        )
    body, content_type = metrics.exposition()
    return HttpResponse(body, content_type=content_type)


def _dependencies():
    for name, check in health.CHECKS.items():
        result = health._run(name, check)
        yield (
            "modelhub_dependency_up",
            "1 when the backing service answered its /health check at scrape time, else 0.",
            {"dependency": name},
            1.0 if result["status"] == "ok" else 0.0,
        )
        yield (
            "modelhub_dependency_latency_seconds",
            "How long the backing service's /health check took at scrape time.",
            {"dependency": name},
            float(result["latencyMs"]) / 1000,
        )


def _celery_queue():
    if not settings.REDIS_URL:
        return  # the embedded default's in-memory broker has no shared queue to measure
    from modelhub.celery import app

    with app.connection_for_read() as conn:
        client = conn.default_channel.client
        for queue in settings.METRICS_CELERY_QUEUES:
            yield (
                "modelhub_celery_queue_length",
                "Tasks waiting in a Celery queue.",
                {"queue": queue},
                client.llen(queue),
            )


metrics.ON_SCRAPE[:] = [_dependencies, _celery_queue]
