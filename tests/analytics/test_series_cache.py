"""The per-process series cache of the performance API: kept under the figure generations, never stale.

A series is loaded once per (window, scope) and generation; a rollup of its model (once committed) or a
retention pass moves the generation on, so the next read is the database's answer again.
"""

from __future__ import annotations

import importlib
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from analytics import generations
from analytics.ingest import ingest_events
from analytics.rollup import rollup
from analytics.services import prune
from tests.analytics.helpers import event
from tests.conftest import API
from tests.factories import ModelRegistryFactory

pytestmark = pytest.mark.django_db

performance = importlib.import_module("analytics.selectors.performance")  # the module (the package exports a function)

HOUR = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)


@pytest.fixture(autouse=True)
def _empty_cache():
    performance.SERIES.clear()
    yield
    performance.SERIES.clear()


def url(model, hours: int = 6, granularity: str = "1h", **extra) -> str:
    from urllib.parse import urlencode

    params = {"from": (HOUR - timedelta(hours=2)).isoformat(), "to": (HOUR + timedelta(hours=hours)).isoformat()}
    return f"{API}/analytics/models/{model.pk}/performance?" + urlencode(
        {**params, "granularity": granularity, **extra}
    )


def roll(model, n: int, *, at=HOUR, **fields) -> None:
    """``n`` events in the hour ``at``, rolled up with the commit callbacks run (as outside a test)."""
    assert not ingest_events([event(model, at=at + timedelta(minutes=i), **fields) for i in range(n)]).rejected
    rollup()


def total(client, model, **extra) -> int:
    response = client.get(url(model, **extra))
    assert response.status_code == 200, response.content
    return response.json()["metrics"]["requests"]["total"]


def bucket_reads(queries) -> int:
    return sum("analytics_metricbucket" in q["sql"] for q in queries)


def test_a_second_read_is_served_without_the_statement_and_a_rollup_is_visible_on_the_next(
    client_for, django_capture_on_commit_callbacks
):
    model = ModelRegistryFactory()
    client = client_for("analyst")
    with django_capture_on_commit_callbacks(execute=True):
        roll(model, 5)
    assert total(client, model) == 5
    with CaptureQueriesContext(connection) as queries:
        assert total(client, model) == 5
    assert bucket_reads(queries) == 0  # kept
    with django_capture_on_commit_callbacks(execute=True):
        roll(model, 3, at=HOUR + timedelta(hours=1))
    with CaptureQueriesContext(connection) as queries:
        assert total(client, model) == 8  # the rollup moved the model's generation on
    assert bucket_reads(queries) == 1


def test_a_rollup_of_another_model_keeps_this_one(client_for, django_capture_on_commit_callbacks):
    mine, other = ModelRegistryFactory(), ModelRegistryFactory()
    client = client_for("analyst")
    with django_capture_on_commit_callbacks(execute=True):
        roll(mine, 2)
    assert total(client, mine) == 2
    with django_capture_on_commit_callbacks(execute=True):
        roll(other, 4)
    with CaptureQueriesContext(connection) as queries:
        assert total(client, mine) == 2
    assert bucket_reads(queries) == 0


def test_the_generation_moves_only_when_the_rollup_commits(client_for, django_capture_on_commit_callbacks):
    model = ModelRegistryFactory()
    with django_capture_on_commit_callbacks(execute=True):
        roll(model, 1)
    before = generations.current(model.pk)
    with django_capture_on_commit_callbacks(execute=False) as pending:
        roll(model, 1, at=HOUR + timedelta(hours=1))
    assert generations.current(model.pk) == before  # not committed yet: readers keep the old answer
    for callback in pending:
        callback()
    after = generations.current(model.pk)
    assert after[0] == before[0] and after[1] != before[1]


def test_a_rollup_committed_while_a_series_loads_is_seen_by_the_next_read(
    client_for, django_capture_on_commit_callbacks, monkeypatch
):
    """The generation is read before the statement: a series loaded across a commit is kept under the old one."""
    model = ModelRegistryFactory()
    client = client_for("analyst")
    with django_capture_on_commit_callbacks(execute=True):
        roll(model, 2)
    load = performance._load

    def load_then_roll(*args, **kwargs):
        loaded = load(*args, **kwargs)
        with django_capture_on_commit_callbacks(execute=True):
            roll(model, 5, at=HOUR + timedelta(hours=1))  # commits after this read's statement
        return loaded

    monkeypatch.setattr(performance, "_load", load_then_roll)
    assert total(client, model) == 2
    monkeypatch.setattr(performance, "_load", load)
    assert total(client, model) == 7


def test_retention_moves_every_model_on(django_capture_on_commit_callbacks, settings):
    model = ModelRegistryFactory()
    with django_capture_on_commit_callbacks(execute=True):
        roll(model, 1)
    epoch = generations.current(model.pk)[0]
    later = timezone.now() + timedelta(days=settings.ANALYTICS_RETENTION_DAYS["1m"] + 1)
    with django_capture_on_commit_callbacks(execute=True):
        deleted = prune(now=later)  # the hour's 1m buckets are past their retention then
    assert deleted["1m"] >= 1
    moved = generations.current(model.pk)[0]
    assert moved != epoch
    with django_capture_on_commit_callbacks(execute=True):
        assert prune(now=later)["1m"] == 0  # nothing more to delete: the epoch stays
    assert generations.current(model.pk)[0] == moved


def test_a_lost_token_is_made_anew_and_the_series_loaded_again(client_for, django_capture_on_commit_callbacks):
    model = ModelRegistryFactory()
    client = client_for("analyst")
    with django_capture_on_commit_callbacks(execute=True):
        roll(model, 3)
    assert total(client, model) == 3
    first = generations.current(model.pk)
    cache.delete(generations.model_key(model.pk))  # evicted, or a restarted Redis
    with CaptureQueriesContext(connection) as queries:
        assert total(client, model) == 3
    assert bucket_reads(queries) == 1
    assert generations.current(model.pk)[1] != first[1]


def test_kept_series_are_bounded_in_points_and_time(client_for, django_capture_on_commit_callbacks, settings):
    model = ModelRegistryFactory()
    client = client_for("analyst")
    with django_capture_on_commit_callbacks(execute=True):
        roll(model, 1)
    settings.ANALYTICS_SERIES_CACHE_POINTS = 40  # a series of 8 hourly points with its previous window: 16
    for hours in (6, 7, 8):
        total(client, model, hours=hours)
    assert len(performance.SERIES) == 2 and performance.SERIES.points <= 40  # the least recently used went
    with CaptureQueriesContext(connection) as queries:
        total(client, model, hours=6)
    assert bucket_reads(queries) == 1
    total(client, model, granularity="5m")  # 120 points with the previous window: never kept
    assert performance.SERIES.points <= 40
    settings.ANALYTICS_SERIES_CACHE_SECONDS = -1  # off: every read is a statement
    with CaptureQueriesContext(connection) as queries:
        total(client, model, hours=6)
        total(client, model, hours=6)
    assert bucket_reads(queries) == 2


def test_an_entry_expires(client_for, django_capture_on_commit_callbacks, monkeypatch):
    model = ModelRegistryFactory()
    client = client_for("analyst")
    with django_capture_on_commit_callbacks(execute=True):
        roll(model, 1)
    total(client, model)
    clock = performance.time.monotonic() + 301
    monkeypatch.setattr(performance.time, "monotonic", lambda: clock)
    with CaptureQueriesContext(connection) as queries:
        total(client, model)
    assert bucket_reads(queries) == 1


def test_scopes_are_kept_apart(client_for, django_capture_on_commit_callbacks):
    model = ModelRegistryFactory()
    client = client_for("analyst")
    with django_capture_on_commit_callbacks(execute=True):
        roll(model, 2, environment="production")
        roll(model, 3, environment="staging")
    assert total(client, model) == 5
    assert total(client, model, environment="staging") == 3
    assert total(client, model, environment="production") == 2


def test_an_unreachable_cache_serves_every_read_from_the_database(settings, caplog, django_capture_on_commit_callbacks):
    model = ModelRegistryFactory()
    roll(model, 2)
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    with caplog.at_level("WARNING", logger="analytics.generations"):
        assert generations.current(model.pk) is None
        with django_capture_on_commit_callbacks(execute=True):
            generations.models_written([model.pk])  # logged, not raised
        window = performance.Window.aligned(HOUR - timedelta(hours=2), HOUR + timedelta(hours=6), "1h")
        for _ in range(2):
            series = performance.load_series(model.pk, window, deployment_key=None, environment=None)
            assert series.total.requests == 2
    assert len(performance.SERIES) == 0
    assert any("unreadable" in r.getMessage() for r in caplog.records)
    assert any("not moved on" in r.getMessage() for r in caplog.records)


def test_the_model_row_kept_for_figures_follows_every_catalog_write(client_for, django_capture_on_commit_callbacks):
    from catalog import selectors as catalog_selectors

    model = ModelRegistryFactory(baseline_avg_latency_ms=100)
    assert catalog_selectors.model_for_figures(model.pk).baseline_avg_latency_ms == 100
    with CaptureQueriesContext(connection) as queries:
        assert catalog_selectors.model_for_figures(str(model.pk)).pk == model.pk
    assert len(queries) == 0  # kept
    with django_capture_on_commit_callbacks(execute=True):
        model.baseline_avg_latency_ms = 250
        model.save()
    assert catalog_selectors.model_for_figures(model.pk).baseline_avg_latency_ms == 250
    pk, address = model.pk, url(model)
    with django_capture_on_commit_callbacks(execute=True):
        model.delete()
    assert catalog_selectors.model_for_figures(pk) is None
    assert client_for("analyst").get(address).status_code == 404
    assert catalog_selectors.model_for_figures("not-a-uuid") is None


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_the_generation_moves_after_the_buckets_are_written(monkeypatch):
    """``on_commit`` runs at once in autocommit: registered after the writes, the bump sees them."""
    from decimal import Decimal

    from analytics.metrics import Accumulator
    from analytics.models import MetricBucket
    from analytics.rollup import write_buckets

    model = ModelRegistryFactory()
    seen = []
    set_tokens = generations._set

    def record(values):
        seen.append(MetricBucket.objects.filter(model=model).count())
        set_tokens(values)

    monkeypatch.setattr(generations, "_set", record)
    acc = Accumulator()
    acc.add_event(HOUR, 120.0, 10, 5, Decimal("0.001"), True, "", "", None, None, None, "chat", "u1")
    key = {"granularity": "1h", "model_id": model.pk, "deployment_key": "", "environment": "production"}
    write_buckets(
        [{**key, "bucket_start": HOUR, **acc.bucket_fields()}], [(model.pk, "1h", HOUR, HOUR + timedelta(hours=1))]
    )
    assert seen == [1]
