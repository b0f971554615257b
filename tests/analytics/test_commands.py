"""seed_usage_history and the Celery tasks, run as the worker would (eagerly here), twice."""

import pytest
from django.core.management import CommandError, call_command

from analytics import tasks
from analytics.models import MetricBucket, UsageEvent
from tests.factories import ModelRegistryFactory

pytestmark = pytest.mark.django_db


def test_seed_usage_history_feeds_the_pipeline(capsys):
    for i in range(3):
        ModelRegistryFactory(name=f"sim-{i}", supported_tasks=["chat", "summarization"])
    call_command("seed_usage_history", "--hours", "3", "--rate", "0.2", "--models", "3", "--seed", "1")
    out = capsys.readouterr().out
    assert "0 rejected" in out
    events = UsageEvent.objects.count()
    # 0.2/s over 3 hours times the diurnal factor (0.25 at night to 1.0 mid-afternoon UTC): 540-2,160
    assert 500 < events < 2500
    assert UsageEvent.objects.filter(success=False).exists() and UsageEvent.objects.exclude(user_rating=None).exists()
    assert set(UsageEvent.objects.values_list("model__name", flat=True)) == {"sim-0", "sim-1", "sim-2"}
    assert sum(MetricBucket.objects.filter(granularity="1h").values_list("request_count", flat=True)) == events
    call_command("seed_usage_history", "--hours", "3", "--if-empty")
    assert UsageEvent.objects.count() == events  # --if-empty: nothing added
    with pytest.raises(CommandError):
        call_command("seed_usage_history", "--hours", "0")


def test_tasks_delivered_twice_give_the_same_rows(model):
    from analytics.ingest import ingest_events
    from tests.analytics.helpers import event

    ingest_events([event(model, userRating=4) for _ in range(30)])
    first = tasks.rollup.delay().get()
    rows = sorted(MetricBucket.objects.values_list("granularity", "bucket_start", "request_count", "rating_sum"))
    second = tasks.rollup.delay().get()
    assert first["events"] == 30 and second["hours"] == 0
    assert (
        sorted(MetricBucket.objects.values_list("granularity", "bucket_start", "request_count", "rating_sum")) == rows
    )
    assert tasks.check_alerts.delay().get() == tasks.check_alerts.delay().get() == {"opened": 0, "resolved": 0}
    assert tasks.prune.delay().get() == tasks.prune.delay().get()
