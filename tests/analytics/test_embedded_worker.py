"""The embedded default's Celery worker and beat: threads of the web process on the in-memory broker."""

import time

import pytest
from django.db import OperationalError
from django.utils import timezone

from analytics.ingest import ingest_events
from analytics.models import MetricBucket
from modelhub import embedded
from modelhub.celery import app
from tests.analytics.helpers import event


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_queued_tasks_run_on_the_embedded_worker(model, settings):
    if settings.REDIS_URL:
        pytest.skip("the embedded worker is for the default without Redis (in-memory broker)")
    from analytics.tasks import rollup

    ingest_events([event(model, at=timezone.now()) for _ in range(5)])
    app.conf.task_always_eager = False
    embedded.start()
    embedded.start()  # idempotent
    try:
        rollup.delay()
        deadline = time.monotonic() + 20
        counts: list[int] = []
        while time.monotonic() < deadline and not counts:
            time.sleep(0.2)
            try:
                counts = list(MetricBucket.objects.filter(granularity="1h").values_list("request_count", flat=True))
            except OperationalError:
                # The test database is SQLite's shared in-memory one, where a reader meets the worker
                # thread's write as "table is locked" (a file database in WAL mode, as served, does not).
                continue
        assert counts == [5]
    finally:
        embedded.stop()
        app.conf.task_always_eager = True
