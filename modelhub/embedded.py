"""The embedded default's background jobs: a Celery worker and beat as threads of the web process.

``scripts/run`` sets ``EMBEDDED_WORKER=true``; :mod:`modelhub.asgi` then calls :func:`start`.
The broker is kombu's in-memory transport (shared by the threads of one process, so it
needs no server), and the worker runs in the same process as the websocket consumers, so
events published by tasks reach clients through the in-memory channel layer. Production
runs ``celery worker`` and ``celery beat`` as their own processes on Redis instead.
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings

logger = logging.getLogger(__name__)
_started = threading.Event()
_lock = threading.Lock()
_handles: dict[str, object] = {}


def start() -> None:
    """Start the worker and beat threads once per process (idempotent)."""
    with _lock:
        if _started.is_set():
            return
        from celery.beat import EmbeddedService
        from celery.worker import WorkController

        from modelhub.celery import app

        if not app.conf.broker_url.startswith("memory://"):
            raise RuntimeError("the embedded worker runs on the in-memory broker only")
        worker = WorkController(
            app=app,
            pool="solo",
            concurrency=1,
            hostname="embedded@localhost",
            loglevel=settings.LOG_LEVEL,
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
        )
        thread = threading.Thread(target=worker.start, name="celery-worker", daemon=True)
        thread.start()
        # celery.beat.Scheduler keeps the schedule in memory (no shelve file next to the code).
        beat = EmbeddedService(app, thread=True, scheduler_cls="celery.beat:Scheduler")
        beat.daemon = True
        beat.start()
        _handles.update(worker=worker, thread=thread, beat=beat)
        _started.set()
        logger.info("embedded Celery worker and beat started (in-memory broker)")


def stop(timeout: float = 10.0) -> None:
    """Stop the threads :func:`start` started (tests; the server just exits)."""
    with _lock:
        if not _started.is_set():
            return
        _handles["beat"].stop()
        _handles["worker"].stop(in_sighandler=False)
        _handles["thread"].join(timeout)
        _handles.clear()
        _started.clear()
