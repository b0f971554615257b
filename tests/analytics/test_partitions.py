"""Raw events partitioned by day (PostgreSQL): layout, requestId idempotency across partitions, upkeep,
retention by whole partitions, and migration 0006 moving an existing table. SQLite keeps one table."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from analytics import partitions, services
from analytics.ingest import ingest_events
from analytics.models import UsageEvent, UsageEventKey
from tests.analytics.helpers import event
from tests.concurrency import race
from tests.conftest import is_postgres
from tests.factories import ModelRegistryFactory

pytestmark = pytest.mark.django_db


def needs_postgres() -> None:
    if not is_postgres():
        pytest.skip("PostgreSQL only: declarative partitioning")


def attached() -> dict:
    with connection.cursor() as cursor:
        return partitions.existing(cursor)


def relation_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        return cursor.fetchone()[0]


def partition_of(request_id: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM analytics_usageevent WHERE request_id = %s", [request_id])
        return cursor.fetchone()[0]


@pytest.mark.postgres
def test_the_events_table_is_partitioned_by_day_ahead_and_back_to_retention():
    needs_postgres()
    now = timezone.now()
    services.ensure_partitions(now=now)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT partstrat, partdefid FROM pg_partitioned_table WHERE partrelid = 'analytics_usageevent'::regclass"
        )
        assert cursor.fetchone() == ("r", 0)  # by range, and no DEFAULT partition
        cursor.execute(
            "SELECT array_agg(a.attname ORDER BY a.attname) FROM pg_index i JOIN pg_attribute a "
            "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
            "WHERE i.indrelid = 'analytics_usageevent'::regclass AND i.indisprimary"
        )
        assert cursor.fetchone()[0] == ["id", "timestamp"]
    days = attached()
    first = (now - timedelta(days=settings.ANALYTICS_RETENTION_DAYS["raw"])).date()
    last = (now + timedelta(days=settings.ANALYTICS_PARTITIONS_AHEAD_DAYS)).date()
    wanted = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    assert set(wanted) <= set(days)
    assert days[now.date()] == f"analytics_usageevent_p{now:%Y%m%d}"
    assert services.ensure_partitions(now=now) == []  # idempotent
    services.prune(now=now)  # whatever older days an earlier test left (the migration test's)
    assert services.ensure_partitions(now=now) == []
    assert services.prune(now=now)["partitionsDropped"] == 0  # upkeep creates nothing that retention drops


def test_a_request_id_resent_with_another_timestamp_is_a_duplicate(model):
    now = timezone.now()
    first = ingest_events([event(model, requestId="same", at=now - timedelta(hours=1))])
    again = ingest_events([event(model, requestId="same", at=now - timedelta(days=3)), event(model, requestId="other")])
    assert (first.accepted, first.duplicates) == (1, 0)
    assert (again.accepted, again.duplicates) == (1, 1)
    assert UsageEvent.objects.filter(request_id="same").count() == 1
    assert UsageEvent.objects.get(request_id="same").timestamp == now - timedelta(hours=1)
    assert set(UsageEventKey.objects.values_list("request_id", flat=True)) == {"same", "other"}
    if is_postgres():
        assert partition_of("same") == f"analytics_usageevent_p{now - timedelta(hours=1):%Y%m%d}"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_ingests_of_one_batch_store_it_once():
    needs_postgres()
    model = ModelRegistryFactory()
    now = timezone.now()
    batch = [event(model, requestId=f"conc-{i}", at=now - timedelta(days=i % 3, minutes=i)) for i in range(300)]
    results, errors = race(lambda _: ingest_events(batch), 2)
    assert not errors
    assert sorted((r.accepted, r.duplicates) for r in results) == [(0, 300), (300, 0)]
    assert UsageEvent.objects.count() == 300
    assert UsageEventKey.objects.count() == 300


@pytest.mark.postgres
def test_a_missing_partition_is_created_on_demand(model):
    needs_postgres()
    at = timezone.now() - timedelta(days=2)
    name = partitions.partition_name(at.date())
    with connection.cursor() as cursor:
        cursor.execute(f'DROP TABLE IF EXISTS "{name}"')  # the upkeep has not run (rolled back with the test)
    result = ingest_events([event(model, requestId="late", at=at)])
    assert (result.accepted, result.rejected) == (1, [])
    assert partition_of("late") == name


def test_prune_drops_old_partitions_and_keeps_recent_rows(model, settings):
    now = timezone.now()
    old = now - timedelta(days=settings.ANALYTICS_RETENTION_DAYS["raw"] + 3)
    # Accepted when it was recent (its partition is created on demand), past retention now.
    assert ingest_events([event(model, requestId="old", at=old)], now=old + timedelta(minutes=1)).accepted == 1
    assert ingest_events([event(model, requestId="recent", at=now - timedelta(hours=2))]).accepted == 1
    old_partition = partitions.partition_name(old.date())
    if is_postgres():
        assert relation_exists(old_partition)
    first = services.prune(now=now)
    assert first["raw"] == 1
    assert list(UsageEvent.objects.values_list("request_id", flat=True)) == ["recent"]
    assert list(UsageEventKey.objects.values_list("request_id", flat=True)) == ["recent"]
    if is_postgres():
        assert first["partitionsDropped"] >= 1
        assert not relation_exists(old_partition)
        cutoff = now - timedelta(days=settings.ANALYTICS_RETENTION_DAYS["raw"])
        assert min(attached()) == cutoff.date()  # the day the cutoff falls in is kept whole: day-granular
    second = services.prune(now=now)
    assert second == {k: 0 for k in first}
    assert list(UsageEvent.objects.values_list("request_id", flat=True)) == ["recent"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_ensure_partitions_twice_and_concurrently():
    needs_postgres()
    now = timezone.now()
    services.ensure_partitions(now=now)
    ahead = [(now + timedelta(days=d)).date() for d in range(2, settings.ANALYTICS_PARTITIONS_AHEAD_DAYS + 1)]
    with connection.cursor() as cursor:
        for day in ahead:
            cursor.execute(f'DROP TABLE "{partitions.partition_name(day)}"')
    results, errors = race(lambda _: services.ensure_partitions(now=now), 4)
    created = [name for names in results for name in names]
    assert not errors
    assert sorted(created) == sorted(partitions.partition_name(day) for day in ahead)  # each once
    assert services.ensure_partitions(now=now) == []
    assert set(ahead) <= set(attached())


_INSERT_AT_0005 = """
INSERT INTO analytics_usageevent (request_id, timestamp, model_id, deployment_id, environment, user_id,
    latency_ms, prompt_tokens, completion_tokens, cost, success, error_code, error_message, confidence_score,
    user_rating, accepted, use_case, experiment_id, variant, prompt_hash, client_request_id, attempt, cached,
    reservation_id, received_at)
VALUES (%s, %s, %s, NULL, 'production', 'u', 12.5, 10, 5, 0.001, true, '', '', NULL, NULL, NULL, '', '', '', '',
    '', 1, false, '', now())
"""


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_migration_0006_moves_an_existing_table_with_rows():
    needs_postgres()
    from django.db.migrations.executor import MigrationExecutor

    before = [("analytics", "0005_usageevent_reservation_id")]
    after = [("analytics", "0006_partition_usage_events")]
    model = ModelRegistryFactory()
    now = timezone.now()
    stamps = {f"mig-{i}": now - timedelta(days=d, hours=i) for i, d in enumerate((60, 20, 3, 1, 0, 0))}
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        with connection.cursor() as cursor:
            assert not partitions.is_partitioned(cursor)
            for request_id, at in stamps.items():
                cursor.execute(_INSERT_AT_0005, [request_id, at, model.pk])
            cursor.execute("SELECT max(id) FROM analytics_usageevent")
            top = cursor.fetchone()[0]
        executor = MigrationExecutor(connection)
        executor.migrate(after)
        with connection.cursor() as cursor:
            assert partitions.is_partitioned(cursor)
            cursor.execute("SELECT count(*) FROM pg_class WHERE relname = 'analytics_usageevent_unpartitioned'")
            assert cursor.fetchone()[0] == 0
            cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'analytics_event_model_ts_idx'")
            assert "INCLUDE (user_id)" in cursor.fetchone()[0]
            cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'analytics_usageeventkey'")
            key_indexes = {name for (name,) in cursor.fetchall()}  # as 0006 left them (0008 changes the second)
            assert len(key_indexes) == 2 and "analytics_usageeventkey_pkey" in key_indexes
            assert any("timestamp" in name for name in key_indexes)
        rows = dict(UsageEvent.objects.values_list("request_id", "timestamp"))
        assert rows == stamps
        for request_id, at in stamps.items():
            assert partition_of(request_id) == f"analytics_usageevent_p{at:%Y%m%d}"  # the 60-day-old one too
        assert set(UsageEventKey.objects.values_list("request_id", flat=True)) == set(stamps)
        # The id sequence carries on; a key already stored is a duplicate after the move.
        result = ingest_events([event(model, requestId="after"), event(model, requestId="mig-3")])
        assert (result.accepted, result.duplicates) == (1, 1)
        assert UsageEvent.objects.get(request_id="after").id > top
        # And back: one plain table again, every row kept; then forward, as the suite expects.
        executor = MigrationExecutor(connection)
        executor.migrate(before)
        with connection.cursor() as cursor:
            assert not partitions.is_partitioned(cursor)
            cursor.execute("SELECT count(*) FROM analytics_usageevent")
            assert cursor.fetchone()[0] == len(stamps) + 1
    finally:  # forward to the latest migrations (going back to 0005 also unapplied what depends on 0006)
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
    with connection.cursor() as cursor:
        assert partitions.is_partitioned(cursor)
    assert UsageEvent.objects.count() == len(stamps) + 1
    services.prune(now=now)  # the days before retention the move created go, as a fresh migration leaves it
    assert min(attached()) == (now - timedelta(days=settings.ANALYTICS_RETENTION_DAYS["raw"])).date()


@pytest.mark.postgres
def test_the_key_table_compares_bytes_and_has_a_brin_index_on_timestamp():
    """Migration 0008: request_id COLLATE "C" (memcmp in the primary key), a BRIN index for retention."""
    needs_postgres()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT collation_name FROM information_schema.columns "
            "WHERE table_name = 'analytics_usageeventkey' AND column_name = 'request_id'"
        )
        assert cursor.fetchone()[0] == "C"
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'analytics_usageeventkey'")
        indexes = dict(cursor.fetchall())
    assert set(indexes) == {"analytics_usageeventkey_pkey", "analytics_event_key_ts_brin"}
    assert "USING brin" in indexes["analytics_event_key_ts_brin"]


@pytest.mark.postgres
def test_bucket_documents_are_json_text_written_and_read_whole():
    """The buckets' JSON columns are PostgreSQL json (as written): read back as the same documents."""
    needs_postgres()
    from analytics.models import MetricBucket
    from analytics.rollup import rollup

    model = ModelRegistryFactory()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'analytics_metricbucket' AND data_type IN ('json', 'jsonb') ORDER BY 1"
        )
        assert cursor.fetchall() == [("errors", "json"), ("latency_sketch", "json"), ("use_cases", "json")]
    at = timezone.now().replace(minute=5, second=0, microsecond=0) - timedelta(hours=2)
    events = [event(model, at=at, latencyMs=120.0, useCase="chat")]
    events += [event(model, at=at, success=False, errorCode="TIMEOUT", errorMessage="slow", useCase="chat")]
    assert not ingest_events(events).rejected
    rollup()
    bucket = MetricBucket.objects.get(model=model, granularity="1h")
    assert bucket.use_cases == {"chat": 2} and bucket.errors["TIMEOUT"]["count"] == 1
    assert sum(bucket.latency_sketch["counts"]) == 2
    assert not ingest_events([event(model, at=at + timedelta(minutes=1), latencyMs=90.0)]).rejected
    rollup()  # the hour rewritten in place (the upsert; json has no equality operator)
    (bucket,) = MetricBucket.objects.filter(model=model, granularity="1h")
    assert bucket.request_count == 3 and sum(bucket.latency_sketch["counts"]) == 3
