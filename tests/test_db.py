"""``modelhub.db.CompiledRows``: compiled once per shape, every call's own values (both backends)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from analytics.models import MetricBucket
from modelhub.db import CompiledRows
from tests.conftest import is_postgres
from tests.factories import ModelRegistryFactory

pytestmark = pytest.mark.django_db


def _rows(*, granularity, model_id, start, end):
    return (
        MetricBucket.objects.filter(
            granularity=granularity, model_id=model_id, bucket_start__gte=start, bucket_start__lt=end
        )
        .order_by("bucket_start")
        .values_list("bucket_start", "request_count")
    )


def _bucket(model, at, requests, granularity="1h"):
    from analytics.metrics import Accumulator

    return MetricBucket.objects.create(
        granularity=granularity,
        model=model,
        deployment_key="",
        environment="production",
        bucket_start=at,
        **{**Accumulator().bucket_fields(), "request_count": requests},
    )


def test_each_call_binds_its_own_values():
    hour = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=10)
    a, b = ModelRegistryFactory(), ModelRegistryFactory()
    for i in range(5):
        _bucket(a, hour + timedelta(hours=i), 10 + i)
        _bucket(b, hour + timedelta(hours=i), 100 + i)
    _bucket(a, hour, 7, granularity="1d")
    query = CompiledRows(_rows)
    shape = {"granularity": "1h"}
    first = list(query.rows(shape, model_id=a.pk, start=hour, end=hour + timedelta(hours=2)))
    assert [r[1] for r in first] == [10, 11]
    assert [
        r[1] for r in query.rows(shape, model_id=b.pk, start=hour + timedelta(hours=1), end=hour + timedelta(hours=4))
    ] == [101, 102, 103]
    assert [
        r[1] for r in query.rows({"granularity": "1d"}, model_id=a.pk, start=hour, end=hour + timedelta(days=1))
    ] == [7]
    assert list(query.rows(shape, model_id=a.pk, start=hour + timedelta(days=1), end=hour + timedelta(days=2))) == []
    assert first[0][0] == hour  # an aware UTC datetime on both backends


@pytest.mark.postgres
def test_a_value_the_builder_derived_is_refused():
    """Compiled once on PostgreSQL only: a value the builder computed from another cannot be re-bound."""
    if not is_postgres():
        pytest.skip("SQLite builds the queryset on every call")
    query = CompiledRows(
        lambda *, model_id, start: _rows(
            granularity="1h", model_id=model_id, start=start, end=start + timedelta(hours=1)
        )
    )
    with pytest.raises(ValueError, match="derived"):
        list(query.rows({}, model_id=ModelRegistryFactory().pk, start=timezone.now()))


def _names_containing(*, contains):
    from catalog.models import ModelRegistry

    return ModelRegistry.objects.filter(name__icontains=contains).order_by("name").values_list("name")


def test_like_patterns_are_bound_escaped():
    """``icontains`` reaches the SQL as ``%value%`` with LIKE's special characters escaped: the slot
    escapes each call's value the same way (a ``%`` or ``_`` matches itself, not anything)."""
    for name in ("50%_off", "50xyoff", "plain"):
        ModelRegistryFactory(name=name)
    query = CompiledRows(_names_containing)
    assert [r[0] for r in query.rows({}, contains="50%_")] == ["50%_off"]
    assert [r[0] for r in query.rows({}, contains="50")] == ["50%_off", "50xyoff"]
    assert [r[0] for r in query.rows({}, contains="LAIN")] == ["plain"]


@pytest.mark.postgres
def test_values_the_sql_does_not_carry_and_json_derived_ones_are_refused():
    if not is_postgres():
        pytest.skip("SQLite builds the queryset on every call")
    from catalog.models import ModelRegistry

    unused = CompiledRows(lambda *, name: ModelRegistry.objects.filter(name=name.upper()).values_list("pk"))
    with pytest.raises(ValueError, match="does not take"):
        list(unused.rows({}, name="x"))
    in_json = CompiledRows(lambda *, tag: ModelRegistry.objects.filter(tags__contains=[tag]).values_list("pk"))
    with pytest.raises(ValueError, match="derived|does not take"):  # adapted to JSON: not found as itself
        list(in_json.rows({}, tag="x"))


@pytest.mark.postgres
def test_the_compiled_shapes_are_bounded_least_recently_used_first():
    if not is_postgres():
        pytest.skip("SQLite builds the queryset on every call")
    from catalog.models import ModelRegistry

    query = CompiledRows(
        lambda *, limit, name: ModelRegistry.objects.filter(name=name).values_list("pk")[:limit], max_shapes=2
    )
    for limit in (1, 2, 1, 3):
        list(query.rows({"limit": limit}, name="x"))
    assert [dict(key[0])["limit"] for key in query._compiled] == [1, 3]
