"""Rollups: recomputed (never incremented), idempotent, late events, concurrency, percentile accuracy, retention."""

import math
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from analytics import services, sketch
from analytics.ingest import ingest_events
from analytics.metrics import Window, bucket_start
from analytics.models import DirtyHour, MetricBucket, UsageEvent
from analytics.rollup import rollup
from analytics.selectors import load_series
from tests.analytics.helpers import event, mark_all_dirty
from tests.concurrency import race
from tests.conftest import is_postgres
from tests.factories import ModelRegistryFactory

pytestmark = pytest.mark.django_db

HOUR = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)


def snapshot() -> list[tuple]:
    """Every bucket, as text. Floats to 12 significant digits: a float sum depends on the order of its terms
    in the last bits, and the order rows are read in depends on the plan (which models an hour's read asks
    for, which partitions a range spans); counts, decimals, sketches, minima and maxima are exact."""
    fields = [f.name for f in MetricBucket._meta.concrete_fields if f.name != "id"]

    def text(value: object) -> str:
        return f"{value:.12g}" if isinstance(value, float) else str(value)

    return sorted(tuple(text(v) for v in row) for row in MetricBucket.objects.values_list(*fields))


def ingest(events):
    result = ingest_events(events)
    assert not result.rejected, result.rejected
    return result


def test_buckets_hold_what_the_events_say(model):
    ingest(
        [
            event(
                model,
                at=HOUR + timedelta(minutes=1, seconds=5),
                latencyMs=100.0,
                promptTokens=10,
                completionTokens=5,
                userId="a",
                userRating=5,
                accepted=True,
                confidenceScore=0.9,
                useCase="chat",
                cost=0.5,
            ),
            event(
                model,
                at=HOUR + timedelta(minutes=1, seconds=40),
                latencyMs=300.0,
                promptTokens=30,
                completionTokens=1,
                userId="b",
                success=False,
                errorCode="TIMEOUT",
                errorMessage="took too long",
                cost=0.25,
                accepted=False,
            ),
            event(
                model,
                at=HOUR + timedelta(minutes=7),
                latencyMs=200.0,
                promptTokens=20,
                completionTokens=7,
                userId="a",
                userRating=3,
                cost=0.25,
                useCase="chat",
            ),
        ]
    )
    report = rollup()
    assert report.hours == 1 and report.events == 3
    assert not DirtyHour.objects.exists()
    minute = MetricBucket.objects.get(granularity="1m", bucket_start=HOUR + timedelta(minutes=1))
    assert (minute.request_count, minute.success_count, minute.failure_count) == (2, 1, 1)
    assert (minute.latency_min, minute.latency_max, minute.latency_sum) == (100.0, 300.0, 400.0)
    assert (
        minute.prompt_tokens_sum,
        minute.prompt_tokens_max,
        minute.completion_tokens_sum,
        minute.completion_tokens_max,
    ) == (40, 30, 6, 5)
    assert minute.cost_sum == Decimal("0.75")
    assert (minute.accepted_count, minute.rejected_count, minute.rating_sum, minute.rating_count) == (1, 1, 5, 1)
    assert minute.errors["TIMEOUT"]["count"] == 1 and minute.errors["TIMEOUT"]["message"] == "took too long"
    assert minute.distinct_users == 2 and minute.use_cases == {"chat": 1}
    five = MetricBucket.objects.get(granularity="5m", bucket_start=HOUR)
    assert five.request_count == 2  # minute 7 is in the next 5-minute bucket
    for granularity, start in (("15m", HOUR), ("1h", HOUR), ("1d", bucket_start(HOUR, "1d"))):
        bucket = MetricBucket.objects.get(granularity=granularity, bucket_start=start)
        assert bucket.request_count == 3 and bucket.distinct_users == 2 and bucket.cost_sum == Decimal("1.00")
        assert bucket.rating_sum == 8 and bucket.rating_count == 2 and bucket.use_cases == {"chat": 2}
        assert sum(sketch.from_json(bucket.latency_sketch).values()) == 3


def test_running_twice_or_rerolling_a_day_gives_identical_rows(model):
    other = ModelRegistryFactory()
    rng = random.Random(7)
    ingest(
        [
            event(
                m,
                at=HOUR + timedelta(seconds=rng.randrange(7200)),
                latencyMs=rng.uniform(10, 900),
                userId=str(rng.randrange(30)),
                success=rng.random() > 0.1,
                **({} if rng.random() > 0.1 else {}),
            )
            for m in (model, other)
            for _ in range(300)
        ]
    )
    rollup()
    first = snapshot()
    assert rollup().hours == 0  # nothing dirty: a re-delivered task does nothing
    assert snapshot() == first
    assert mark_all_dirty() == 4  # 2 models x 2 hours
    rollup()
    assert snapshot() == first
    # Re-running after the marks were claimed but with every hour dirty again, twice over.
    mark_all_dirty()
    mark_all_dirty()
    rollup()
    assert snapshot() == first


def test_late_events_mark_their_bucket_for_recomputation(model):
    ingest([event(model, at=HOUR + timedelta(minutes=10))])
    rollup()
    late = HOUR - timedelta(hours=20)  # an hour (and maybe a day) already rolled up
    ingest([event(model, at=HOUR + timedelta(minutes=12)), event(model, at=late)])
    assert DirtyHour.objects.count() == 2
    rollup()
    assert MetricBucket.objects.get(granularity="1h", bucket_start=HOUR).request_count == 2
    assert MetricBucket.objects.get(granularity="1h", bucket_start=bucket_start(late, "1h")).request_count == 1
    days = MetricBucket.objects.filter(granularity="1d")
    assert sum(days.values_list("request_count", flat=True)) == 3


def test_duplicate_events_do_not_change_buckets(model):
    events = [event(model, at=HOUR + timedelta(minutes=i)) for i in range(10)]
    ingest(events)
    rollup()
    first = snapshot()
    assert ingest_events(events).duplicates == 10
    rollup()
    assert snapshot() == first


def _lognormal_latencies(n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    values = [rng.lognormvariate(math.log(250), 0.8) for _ in range(n)]
    for i in range(0, n, 97):  # tail outliers: timeouts and cold starts
        values[i] = rng.uniform(10_000, 60_000)
    values[5] = 0.0  # a cached answer
    return values


def exact_quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))]


def test_percentiles_from_merged_buckets_are_within_two_percent(model):
    latencies = _lognormal_latencies(6000, seed=11)
    start = HOUR - timedelta(hours=4)  # 6,000 events 3.3 s apart: 5.5 hours, all in the past whatever the time
    events = [event(model, at=start + timedelta(seconds=i * 3.3), latencyMs=v) for i, v in enumerate(latencies)]
    for i in range(0, len(events), 1000):
        ingest(events[i : i + 1000])
    rollup()
    assert MetricBucket.objects.filter(granularity="1m").count() > 300  # merged from hundreds of minute buckets
    for granularity in ("1m", "5m", "1h"):
        series = load_series(
            model.pk,
            Window.aligned(start, start + timedelta(hours=6), granularity),
            deployment_key=None,
            environment=None,
        )
        assert series.total.requests == len(latencies)
        for q in (0.5, 0.95, 0.99):
            approx = sketch.quantiles(series.total.sketch, (q,))[0]
            exact = exact_quantile(latencies, q)
            assert abs(approx - exact) / exact <= 0.02, (granularity, q, approx, exact)


def test_sketch_merge_is_adding_counts():
    a, b = _lognormal_latencies(2000, 1), _lognormal_latencies(3000, 2)
    merged = sketch.merge([sketch.build(a), sketch.build(b)])
    assert merged == sketch.build(a + b)
    for q in (0.01, 0.5, 0.9, 0.999):
        exact = exact_quantile(a + b, q)
        assert abs(sketch.quantiles(merged, (q,))[0] - exact) <= 0.01 * exact + 1e-9
    assert sketch.quantiles({}, (0.5,)) == [0.0]
    with pytest.raises(ValueError):
        sketch.quantiles(merged, (1.5,))


def test_prune_is_idempotent_and_respects_retention(model, settings):
    from analytics.tasks import prune

    now = timezone.now()
    ingest([event(model, at=now - timedelta(hours=1))])
    old = now - timedelta(days=settings.ANALYTICS_RETENTION_DAYS["raw"] + 2)
    UsageEvent.objects.update()  # nothing else: the old row is written directly below (ingest refuses it)
    row = UsageEvent.objects.get()
    row.pk, row.request_id, row.timestamp = None, "old", old
    services.ensure_partitions_between(old.date(), old.date())  # PostgreSQL: the old day's partition
    row.save()
    rollup()
    mark_all_dirty()
    rollup()  # the old hour is past raw retention: its buckets are not recomputed
    MetricBucket.objects.filter(granularity="1h").update(bucket_start=now - timedelta(days=200))
    first = prune()
    assert first["raw"] == 1 and first["1h"] >= 1
    assert prune() == {k: 0 for k in first}
    assert UsageEvent.objects.count() == 1


def test_popularity_and_rating_come_from_rollups(model):
    other = ModelRegistryFactory()
    ingest([event(model, userRating=5), event(model, userRating=3), event(other)])
    rollup()
    model.refresh_from_db()
    other.refresh_from_db()
    assert (model.popularity, model.avg_rating) == (2, 4.0)
    assert (other.popularity, other.avg_rating) == (1, None)


@pytest.mark.django_db(transaction=True)
def test_concurrent_rollups_do_not_interfere():
    if not is_postgres():
        pytest.skip("PostgreSQL: concurrent transactions and the advisory lock")
    models = [ModelRegistryFactory() for _ in range(3)]
    rng = random.Random(3)
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=6)
    events = [
        event(
            m,
            at=base + timedelta(seconds=rng.randrange(6 * 3600)),
            latencyMs=rng.uniform(1, 500),
            userId=str(rng.randrange(50)),
        )
        for m in models
        for _ in range(400)
    ]
    for i in range(0, len(events), 1000):
        ingest(events[i : i + 1000])
    _, errors = race(lambda _: rollup(chunk_hours=2), 4)
    assert not errors
    concurrent = snapshot()
    MetricBucket.objects.all().delete()
    mark_all_dirty()
    rollup()
    assert snapshot() == concurrent
    assert sum(MetricBucket.objects.filter(granularity="1d").values_list("request_count", flat=True)) == len(events)


def test_an_hour_is_read_once_for_its_models_and_a_day_recomputed_once(model):
    """Hour-major chunks: an hour's models share one read; the days are recomputed after the hours, once each."""
    other = ModelRegistryFactory()
    day = bucket_start(HOUR, "1d")
    hours = [h for h in (day + timedelta(hours=i) for i in range(24)) if h < timezone.now() - timedelta(hours=1)][-3:]
    ingest([event(m, at=h + timedelta(minutes=5 * i)) for m in (model, other) for h in hours for i in range(4)])
    report = rollup(chunk_hours=1)  # six chunks of one model-hour each
    assert (report.hours, report.days, report.events) == (6, 2, 24)
    for m in (model, other):
        assert MetricBucket.objects.get(granularity="1d", model=m, bucket_start=day).request_count == 12
    # The stale buckets of a model with no events left in a dirty hour go; its neighbour's stay.
    UsageEvent.objects.filter(
        model_id=other.pk, timestamp__gte=hours[0], timestamp__lt=hours[0] + timedelta(hours=1)
    ).delete()
    assert mark_all_dirty() == 5  # other's first hour has no rows left to mark from
    DirtyHour.objects.get_or_create(model_id=other.pk, hour=hours[0])
    rollup()
    assert not MetricBucket.objects.filter(model=other, granularity="1h", bucket_start=hours[0]).exists()
    assert MetricBucket.objects.get(model=model, granularity="1h", bucket_start=hours[0]).request_count == 4
    assert MetricBucket.objects.get(granularity="1d", model=other, bucket_start=day).request_count == 8


def test_marks_made_after_a_run_began_wait_for_the_next_run(model):
    """Ingestion re-marks the current hour all the time: a run takes what was dirty when it began."""
    ingest([event(model, at=HOUR + timedelta(minutes=1))])
    DirtyHour.objects.update(marked_at=timezone.now() + timedelta(seconds=30))  # as if re-marked mid-run
    assert rollup().hours == 0
    assert DirtyHour.objects.count() == 1
    DirtyHour.objects.update(marked_at=timezone.now() - timedelta(seconds=1))
    assert rollup().hours == 1 and not DirtyHour.objects.exists()


def test_a_run_that_fails_between_hours_and_days_leaves_the_days_marked(model, monkeypatch):
    from analytics import rollup as rollups
    from analytics.models import DirtyDay

    ingest([event(model, at=HOUR + timedelta(minutes=i)) for i in range(3)])
    real = rollups.compute_days

    def crash(*args, **kwargs):
        raise RuntimeError("worker lost")

    monkeypatch.setattr(rollups, "compute_days", crash)
    with pytest.raises(RuntimeError):
        rollup()
    assert not DirtyHour.objects.exists()  # the hours were committed ...
    assert DirtyDay.objects.count() == 1  # ... and so was their day's mark
    assert not MetricBucket.objects.filter(granularity="1d").exists()
    monkeypatch.setattr(rollups, "compute_days", real)
    report = rollup()
    assert (report.hours, report.days) == (0, 1)
    assert MetricBucket.objects.get(granularity="1d", bucket_start=bucket_start(HOUR, "1d")).request_count == 3
    assert not DirtyDay.objects.exists()


def test_the_inlined_sketch_key_is_the_mappings_key():
    """``sketch.key_for`` does ddsketch's LogarithmicMapping.key arithmetic inline (the rollup's inner loop)."""
    rng = random.Random(5)
    values = [0.0, 1e-300, sketch.MAPPING.min_possible, 0.001, 0.5, 1.0, 2.0, 1e12, sketch.MAPPING.max_possible]
    values += [math.exp(rng.gauss(5, 2)) for _ in range(20_000)] + [rng.uniform(0, 10) for _ in range(5_000)]
    for value in values:
        expected = sketch.ZERO if value < sketch.MAPPING.min_possible else sketch.MAPPING.key(value)
        assert sketch.key_for(value) == expected, value


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_open_ingest_neither_blocks_another_nor_loses_its_events_to_a_rollup():
    """Dirty-hour marks are append-only: a batch of the same hours as one still open does not wait for it,
    and a rollup run while a batch is open leaves that batch's mark for the next run (nothing lost)."""
    if not is_postgres():
        pytest.skip("PostgreSQL: concurrent transactions")
    import threading

    from django.db import connections, transaction

    model = ModelRegistryFactory()
    at = HOUR + timedelta(minutes=5)
    stored, release, errors = threading.Event(), threading.Event(), []

    def open_batch() -> None:
        try:
            with transaction.atomic():
                ingest([event(model, requestId=f"open-{i}", at=at) for i in range(3)])
                stored.set()
                assert release.wait(30)
        except Exception as exc:  # asserted on below
            errors.append(exc)
        finally:
            connections.close_all()

    holder = threading.Thread(target=open_batch)
    holder.start()
    try:
        assert stored.wait(30)
        # The same (model, hour) from another connection: done at once (an upsert of one shared mark waited).
        results, failures = race(lambda _: ingest([event(model, requestId="second", at=at)]), 1)
        assert not failures and results[0].accepted == 1
        rollup()
        assert MetricBucket.objects.get(granularity="1h", bucket_start=HOUR).request_count == 1
        assert not DirtyHour.objects.exists()  # as this connection sees it: the open batch's mark is not committed
    finally:
        release.set()
        holder.join(30)
    assert not errors
    assert rollup().hours == 1
    assert MetricBucket.objects.get(granularity="1h", bucket_start=HOUR).request_count == 4
    assert not DirtyHour.objects.exists()


def test_an_hour_marked_by_many_batches_is_recomputed_once(model):
    for i in range(4):
        ingest([event(model, requestId=f"many-{i}", at=HOUR + timedelta(minutes=i))])
    assert DirtyHour.objects.count() == 4  # one mark per batch
    report = rollup()
    assert report.hours == 1 and report.events == 4
    assert MetricBucket.objects.get(granularity="1h", bucket_start=HOUR).request_count == 4
    assert not DirtyHour.objects.exists()


def test_a_resent_batch_marks_no_hour(model):
    batch = [event(model, requestId=f"resent-{i}", at=HOUR + timedelta(minutes=i)) for i in range(3)]
    ingest(batch)
    rollup()
    assert ingest(batch).duplicates == 3
    assert not DirtyHour.objects.exists()  # nothing stored, nothing to recompute
