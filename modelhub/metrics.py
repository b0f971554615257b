"""Operational metrics in Prometheus' format (``prometheus-client``), served at ``/metrics``.

One process (the embedded default, tests): the library's default registry. Several processes
(uvicorn ``--workers``, Celery worker and beat, in one container or several): the library's
multiprocess mode - every process writes its samples to files under ``PROMETHEUS_MULTIPROC_DIR``
(the library's own variable, read when it is imported) and ``/metrics`` merges the files of every
process. ``METRICS_SHARED_DIR`` names a directory whose subdirectories are all merged: give each
service its own subdirectory there (each wipes only its own on start, ``scripts/metrics-dir``), so
the web, worker and beat containers of ``docker-compose.yml`` report through any web process.

Labels stay bounded: routes are URL patterns (``/api/v1/modelhub/models/{id}``), never raw paths;
models are labelled by provider and name (a registry holds thousands at most, not millions).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

logger = logging.getLogger(__name__)
MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
if MULTIPROCESS:  # a process that ends cleanly drops its live gauges (open sockets) from the merge
    import atexit

    from prometheus_client import multiprocess as _multiprocess

    atexit.register(lambda: _multiprocess.mark_process_dead(os.getpid()))
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
TASK_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 120.0)

# --- HTTP (the API, the console, the admin) ---------------------------------------------------------
http_requests = Counter(
    "modelhub_http_requests",
    "HTTP requests answered, by route pattern, method and status.",
    ["route", "method", "status"],
)
http_duration = Histogram(
    "modelhub_http_request_duration_seconds",
    "Time to answer an HTTP request, by route pattern and method.",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
http_errors = Counter(
    "modelhub_http_errors", "HTTP answers with status >= 400, by route pattern and error code.", ["route", "code"]
)
rate_limited = Counter("modelhub_rate_limit_rejections", "Requests refused by a rate limit (429), by where.", ["scope"])

# --- the gateway -------------------------------------------------------------------------------------
gateway_upstream_duration = Histogram(
    "modelhub_gateway_upstream_duration_seconds",
    "Upstream attempts of gateway calls, by provider, model and outcome (ok, error).",
    ["provider", "model", "outcome"],
    buckets=LATENCY_BUCKETS,
)
gateway_tokens = Counter(
    "modelhub_gateway_tokens",
    "Tokens of gateway calls, by provider, model and kind (prompt, completion).",
    ["provider", "model", "kind"],
)
gateway_cost = Counter(
    "modelhub_gateway_cost_usd",
    "Cost of gateway calls in US dollars (the catalog's prices), by provider and model.",
    ["provider", "model"],
)

# --- usage ingestion and the rollup --------------------------------------------------------------
ingest_events = Counter(
    "modelhub_ingest_events", "Usage events offered for storage, by result (accepted, duplicate, rejected).", ["result"]
)
usage_cost = Counter(
    "modelhub_usage_cost_usd",
    "Cost of stored usage events in US dollars, by provider and model.",
    ["provider", "model"],
)
rollup_duration = Histogram("modelhub_rollup_duration_seconds", "Duration of one rollup run.", buckets=TASK_BUCKETS)
rollup_last_success = Gauge(
    "modelhub_rollup_last_success_timestamp_seconds",
    "When the last rollup run finished (Unix time); lag = time() - this.",
    multiprocess_mode="max",
)
rollup_events = Counter("modelhub_rollup_events", "Raw events the rollup read.")

# --- Celery ---------------------------------------------------------------------------------------
task_duration = Histogram(
    "modelhub_celery_task_duration_seconds",
    "Celery task runtime, by task and final state.",
    ["task", "state"],
    buckets=TASK_BUCKETS,
)

# --- caches and realtime ---------------------------------------------------------------------------
cache_lookups = Counter(
    "modelhub_cache_lookups", "Lookups of the hub's caches, by cache and result (hit, miss).", ["cache", "result"]
)
realtime_connections = Gauge(
    "modelhub_realtime_connections", "Open realtime sockets, by transport.", ["transport"], multiprocess_mode="livesum"
)
realtime_messages = Counter("modelhub_realtime_messages", "Realtime events written to sockets, by event.", ["event"])

# --- scraped on demand: dependency health and queue length ------------------------------------------
# Providers ``() -> Iterable[(name, labels, value)]`` for gauges computed when /metrics is read.
ON_SCRAPE: list[Callable[[], Iterable[tuple[str, str, dict[str, str], float]]]] = []


class _ScrapeCollector:
    """Gauges computed at scrape time (database and Redis health, Celery queue length)."""

    def collect(self):
        families: dict[str, GaugeMetricFamily] = {}
        for provider in ON_SCRAPE:
            try:
                samples = list(provider())
            except Exception:  # a failing provider must not break the scrape; its gauges are absent
                logger.warning("metrics provider %s failed", getattr(provider, "__name__", provider), exc_info=True)
                continue
            for name, documentation, labels, value in samples:
                family = families.get(name)
                if family is None:
                    family = families[name] = GaugeMetricFamily(name, documentation, labels=sorted(labels))
                family.add_metric([labels[k] for k in sorted(labels)], value)
        yield from families.values()


def _directories() -> list[Path]:
    from django.conf import settings

    shared, own = settings.METRICS_SHARED_DIR, os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    found: list[Path] = []
    if shared and Path(shared).is_dir():
        found = [p for p in sorted(Path(shared).iterdir()) if p.is_dir()]
    if own and Path(own) not in found:
        found.append(Path(own))
    return found


def exposition() -> tuple[bytes, str]:
    """The text exposition of every metric (merged across processes in multiprocess mode)."""
    if MULTIPROCESS:
        registry = CollectorRegistry()
        registry.register(_MergedFiles())
    else:
        registry = CollectorRegistry()
        registry.register(_DefaultRegistry())
    registry.register(_ScrapeCollector())
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _MergedFiles:
    """Every process's sample files, of every directory, merged into one family per metric (as the
    library's ``MultiProcessCollector`` does for one directory)."""

    def collect(self):
        files = [str(f) for directory in _directories() for f in sorted(directory.glob("*.db"))]
        return MultiProcessCollector.merge(files, accumulate=True)


class _DefaultRegistry:
    """The process's default registry, as one collector of a scrape registry."""

    def collect(self):
        yield from REGISTRY.collect()
