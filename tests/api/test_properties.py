"""Hypothesis properties for the parsing the OpenAPI schema cannot describe."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from catalog.models import Provider
from modelhub.api.exceptions import InvalidParameter
from modelhub.api.filters import ListField
from modelhub.api.params import parse_iso_datetime
from tests.conftest import API, bearer

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
PROVIDERS = list(Provider.values)


@FAST
@pytest.mark.slow
@given(
    groups=st.lists(st.lists(st.sampled_from(PROVIDERS), min_size=1, max_size=3), min_size=1, max_size=4),
    spaces=st.booleans(),
)
def test_list_values_repeated_or_comma_separated_mean_the_same(groups, spaces):
    from django.http import QueryDict

    sep = ", " if spaces else ","
    query = QueryDict(mutable=True)
    query.setlist("provider", [sep.join(group) for group in groups])
    field = ListField(choices=PROVIDERS)
    flat = [value for group in groups for value in group]
    assert field.clean(field.widget.value_from_datadict(query, {}, "provider")) == list(dict.fromkeys(flat))


aware = st.datetimes(
    min_value=datetime(1971, 1, 1),
    max_value=datetime(2099, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]),
)


@FAST
@pytest.mark.slow
@given(
    moment=aware,
    form=st.sampled_from(["seconds", "milliseconds", "microseconds", "minutes"]),
    zulu=st.booleans(),
    space=st.booleans(),
)
def test_every_iso_form_parses_to_the_same_instant(moment, form, zulu, space):
    text = moment.isoformat(timespec=form)
    expected = moment.replace(
        second=0 if form == "minutes" else moment.second,
        microsecond={"seconds": 0, "minutes": 0, "milliseconds": moment.microsecond // 1000 * 1000}.get(
            form, moment.microsecond
        ),
    )
    if zulu and moment.utcoffset() == timedelta(0):
        text = text.replace("+00:00", "Z")
    if space:
        text = text.replace("T", " ")
    parsed = parse_iso_datetime(text, "from")
    assert parsed.tzinfo is UTC and parsed == expected


@FAST
@pytest.mark.slow
@given(day=st.dates(min_value=datetime(1971, 1, 1).date(), max_value=datetime(2099, 1, 1).date()))
def test_a_date_is_midnight_utc(day):
    assert parse_iso_datetime(day.isoformat(), "to") == datetime(day.year, day.month, day.day, tzinfo=UTC)


@FAST
@pytest.mark.slow
@given(text=st.text(max_size=40))
def test_anything_else_is_invalid_parameter_never_a_crash(text):
    try:
        parsed = parse_iso_datetime(text, "from")
    except InvalidParameter as exc:
        assert exc.details["fields"].keys() == {"from"}
    else:
        assert parsed.tzinfo is UTC


@pytest.mark.django_db
@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@pytest.mark.slow
@given(search=st.text(max_size=260))
def test_any_unicode_search_is_answered_within_the_contract(personas, search):
    client = APIClient(HTTP_AUTHORIZATION=bearer(personas["viewer"]))
    response = client.get(f"{API}/models", {"search": search})
    if len(search) > 200 or "\x00" in search:
        assert response.status_code == 400 and response.json()["error"]["code"] == "INVALID_PARAMETER"
    else:
        assert response.status_code == 200, response.content[:300]


@pytest.mark.django_db
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@pytest.mark.slow
@given(values=st.lists(st.text(min_size=1, max_size=220), min_size=1, max_size=60))
def test_any_free_text_list_filter_is_answered_within_the_contract(personas, values):
    client = APIClient(HTTP_AUTHORIZATION=bearer(personas["viewer"]))
    response = client.get(f"{API}/models", {"category": values, "capabilities": values[:3]})
    assert response.status_code in (200, 400), response.content[:300]
    if response.status_code == 400:
        assert response.json()["error"]["code"] == "INVALID_PARAMETER"


def test_list_parameters_count_values_as_given():
    # found by schemathesis: 60 repeats of 5 roles were accepted although maxItems is 50
    from django.http import QueryDict

    query = QueryDict(mutable=True)
    query.setlist("provider", ["openai"] * 51)
    field = ListField(choices=PROVIDERS)
    with pytest.raises(Exception, match="At most 50"):
        field.clean(field.widget.value_from_datadict(query, {}, "provider"))
