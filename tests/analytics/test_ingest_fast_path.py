"""The typed decode (msgspec) against the per-event validator: the same answers whichever path a body takes.

The validator (:func:`analytics.ingest.checks.validate`, on what ``orjson`` parses) is the reference; the
fast path (:func:`analytics.ingest.decode.decode_batch`, then :func:`~analytics.ingest.decode.clean`, and the
validator on :func:`~analytics.ingest.decode.as_item` for what ``clean`` refuses) is checked against it on
generated events, valid and not.
"""

from __future__ import annotations

import io
import uuid
from datetime import timedelta

import orjson
import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.ingest import decode
from analytics.ingest.checks import ALLOWED_FIELDS, validate
from analytics.models import UsageEvent
from analytics.parsers import IngestJSONParser
from tests.analytics.helpers import event
from tests.conftest import API
from tests.factories import ModelRegistryFactory

URL = API + "/analytics/events"
NOW = timezone.now()
OLDEST, NEWEST = NOW - timedelta(days=30), NOW + timedelta(minutes=5)

_texts = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=140)  # NUL included
_junk = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=False), _texts, st.just([1]), st.just({"a": 1})
)
_when = st.one_of(  # minutes from now: around the retention bound, around the skew bound, in between
    st.integers(-31 * 24 * 60, -29 * 24 * 60), st.integers(-10, 10), st.integers(-29 * 24 * 60, 0)
).map(lambda minutes: NOW + timedelta(minutes=minutes, microseconds=7))


def _text(**bounds):  # NUL sends a body the ordinary way (the parser refuses it), so rarely
    return st.text(st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\x00"), **bounds)


_uuid_texts = st.uuids().map(str)


def _numbers(low: float, high: float):  # the bounds and just past them too
    return st.one_of(st.integers(int(low), int(high)), st.floats(low, high), st.sampled_from([low, high, high + 1e-9]))


def _ints(low: int, high: int):
    return st.one_of(st.integers(low, high), st.sampled_from([low, high, low - 1, high + 1]))


# Per field: (values of the right JSON type - within bounds or, for what msgspec cannot check, not -,
# values of any type or out of bounds). An event takes mostly the first kind, so most bodies decode and the
# checks after the decode are what is compared; the second kind sends bodies the ordinary way.
FIELDS = {
    "requestId": (
        st.one_of(_text(min_size=1, max_size=128), st.sampled_from(["", "  ", "\u3000", "x" * 128])),
        st.one_of(st.just("x" * 129), _junk),
    ),
    "timestamp": (
        st.one_of(
            _when.map(lambda d: d.isoformat()),
            _when.map(lambda d: d.isoformat().replace("+00:00", "Z")),
            _when.map(lambda d: d.astimezone(timezone.get_fixed_timezone(-330)).isoformat()),
            _when.map(lambda d: d.replace(tzinfo=None).isoformat()),  # naive: refused after the decode
            _text(min_size=10, max_size=40),
        ),
        st.one_of(_text(max_size=9), _text(min_size=41, max_size=50), _junk),
    ),
    "modelId": (
        st.one_of(_uuid_texts, st.uuids().map(lambda u: u.hex), _text(max_size=36)),
        st.one_of(st.uuids().map(lambda u: "{" + str(u) + "}"), _junk),
    ),
    "deploymentId": (st.one_of(st.none(), _uuid_texts, _text(max_size=36)), _junk),
    "environment": (st.sampled_from(["production", "staging", "development", None]), st.one_of(st.just("qa"), _junk)),
    "userId": (st.one_of(_text(max_size=140), st.just("u" * 255)), st.one_of(st.just("u" * 256), _junk)),
    "latencyMs": (_numbers(0, 86_400_000), st.one_of(st.sampled_from([-0.5, 86_400_001, 1e300]), _junk)),
    "promptTokens": (_ints(0, 100_000_000), st.one_of(st.sampled_from([-1, 100_000_001, 5.0, 2**63 + 1]), _junk)),
    "completionTokens": (_ints(0, 100_000_000), st.one_of(st.sampled_from([-1, 100_000_001, 1.5]), _junk)),
    "cost": (st.one_of(st.none(), _numbers(0, 1_000_000)), st.one_of(st.sampled_from([-1, 1_000_001]), _junk)),
    "success": (st.booleans(), _junk),
    "errorCode": (st.sampled_from(["", "TIMEOUT", None, "E" * 64]), st.one_of(st.just("E" * 65), _junk)),
    "errorMessage": (st.sampled_from(["", "boom", None]), _junk),
    "confidenceScore": (st.one_of(st.none(), _numbers(0, 1)), st.one_of(st.sampled_from([-0.1, 1.1]), _junk)),
    "userRating": (st.one_of(st.none(), _ints(1, 5)), st.one_of(st.sampled_from([0, 6, 4.0, True]), _junk)),
    "accepted": (st.sampled_from([True, False, None]), _junk),
    "useCase": (_text(max_size=100), st.one_of(st.just("c" * 101), _junk)),
    "experimentId": (_text(max_size=64), _junk),
    "variant": (st.sampled_from(["A", "B", ""]), _junk),
    "promptHash": (_text(max_size=128), _junk),
    "clientRequestId": (_text(max_size=128), _junk),
    "attempt": (_ints(1, 100), st.one_of(st.sampled_from([0, 101]), _junk)),
    "cached": (st.sampled_from([True, False, None]), _junk),
    "reservationId": (_text(max_size=64), _junk),
}
assert set(FIELDS) == ALLOWED_FIELDS  # a new field needs a strategy here


def _one_in(n: int):  # (hypothesis favours the bounds of an integer range: 0 would come far more often)
    return st.sampled_from([False] * (n - 1) + [True])


@st.composite
def events(draw):
    """A valid event with a few fields redrawn (mostly of the right type), some left out, rarely an unknown one."""
    item = {
        "requestId": draw(_text(min_size=1, max_size=20).filter(str.strip)),
        "timestamp": (NOW - timedelta(minutes=draw(st.integers(0, 10_000)))).isoformat(),
        "modelId": str(draw(st.uuids())),
        "latencyMs": draw(st.floats(0, 1e6)),
        "promptTokens": draw(st.integers(0, 10_000)),
        "completionTokens": draw(st.integers(0, 10_000)),
        "success": draw(st.booleans()),
    }
    for name in draw(st.lists(st.sampled_from(sorted(FIELDS)), max_size=5)):
        typed, anything = FIELDS[name]
        item[name] = draw(anything if draw(_one_in(10)) else typed)
    for name in draw(st.lists(st.sampled_from(sorted(item)), max_size=2)) if draw(_one_in(10)) else ():
        item.pop(name, None)
    if draw(_one_in(40)):
        item["surprise"] = 1
    return item


def _reference(item):
    row, problems = validate(item, NOW, OLDEST, NEWEST)
    return row, problems.items


def _fast(decoded_event):
    row = decode.clean(decoded_event, OLDEST, NEWEST)
    if row is not None:
        return row, []
    return _reference(decode.as_item(decoded_event))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(events(), min_size=1, max_size=3))
def test_the_typed_decode_answers_as_the_validator_does(batch):
    body = orjson.dumps({"events": batch})
    parsed = orjson.loads(body)["events"]  # what the ordinary path validates
    reference = [_reference(item) for item in parsed]
    decoded = decode.decode_batch(body)
    if decoded is None:
        # It refuses only what the validator refuses too (then the validator reports, event by event).
        assert any(row is None for row, _ in reference), (batch, reference)
        return
    assert [_fast(e) for e in decoded.events] == reference


def test_typed_bodies_take_the_fast_path_and_others_the_ordinary_one():
    good = {"events": [event(ModelRegistryFactory.build())]}
    parser = IngestJSONParser()
    assert isinstance(parser.parse(io.BytesIO(orjson.dumps(good))), decode.DecodedBatch)
    for other in ({"events": [1]}, {"events": [], "x": 1}, {"events": []}, [1, 2], {"events": [{"requestId": 5}]}):
        assert parser.parse(io.BytesIO(orjson.dumps(other))) == other


@pytest.mark.django_db
def test_a_typed_batch_gets_the_same_report_on_both_paths(client_for, model):
    """Events that msgspec takes but later checks refuse (time bounds, UUID text, unknown model, an error on
    a success, a blank id): the fast path reports them by index exactly as the ordinary path does."""

    def batch(tag):
        now = timezone.now()
        return [
            event(model, requestId=f"{tag}-ok-1"),
            event(model, requestId=f"{tag}-future", at=now + timedelta(hours=1)),
            event(model, requestId=f"{tag}-old", at=now - timedelta(days=400)),
            event(model, requestId=f"{tag}-naive", timestamp="2026-11-26T10:00:00"),
            event(model, requestId=f"{tag}-bad-uuid", modelId="not-a-uuid"),
            event(model, requestId=f"{tag}-bad-deployment", deploymentId="123"),
            event(ModelRegistryFactory.build(), requestId=f"{tag}-no-model"),
            event(model, requestId=f"{tag}-error-on-success", success=True, errorMessage="x"),
            event(model, requestId="   "),
            event(model, requestId=f"{tag}-ok-2", cost=3, promptTokens=0),
        ]

    client = client_for("developer")
    fast = client.post(URL, {"events": batch("fast")}, format="json").json()
    # One event of the wrong JSON type sends the whole body the ordinary way; the rest is the same batch.
    slow = client.post(URL, {"events": [*batch("slow"), {"requestId": 5}]}, format="json").json()
    assert (fast["accepted"], slow["accepted"], fast["rejected"], slow["rejected"]) == (2, 2, 8, 9)

    def report(body, tag):
        return [{**e, "requestId": (e["requestId"] or "").replace(tag, "")} for e in body["errors"] if e["index"] < 10]

    assert report(fast, "fast") == report(slow, "slow")
    assert [e["index"] for e in fast["errors"]] == [1, 2, 3, 4, 5, 6, 7, 8]
    stored = dict(UsageEvent.objects.values_list("request_id", "cost"))
    assert set(stored) == {"fast-ok-1", "fast-ok-2", "slow-ok-1", "slow-ok-2"}
    assert stored["fast-ok-2"] == stored["slow-ok-2"] == 3


def test_the_decoded_event_has_every_field_of_the_table():
    assert set(decode.Event.__struct_fields__) == ALLOWED_FIELDS
    assert decode.as_item(
        decode.Event(
            requestId="r",
            timestamp="t" * 10,
            modelId=str(uuid.uuid4()),
            latencyMs=1.0,
            promptTokens=1,
            completionTokens=1,
            success=True,
        )
    ).keys() == {"requestId", "timestamp", "modelId", "latencyMs", "promptTokens", "completionTokens", "success"}
