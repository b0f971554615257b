"""Mergeable latency sketches (DDSketch's logarithmic mapping, stored as plain counts).

A latency ``v`` is counted under the key ``ceil(log_gamma(v))`` of DataDog's
``ddsketch`` :class:`~ddsketch.mapping.LogarithmicMapping`; every value in a key's
bucket is within the mapping's relative accuracy (1 %) of the key's representative
value. A sketch is a ``{key: count}`` dict, so merging two buckets is adding their
counts, and a quantile is a walk over the sorted keys - the DDSketch algorithm, with
storage that PostgreSQL and SQLite both keep as JSON (``{"keys": [...], "counts": [...]}``;
values too small to index, e.g. 0 ms, count under the key ``ZERO``).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from itertools import accumulate

from ddsketch.mapping import LogarithmicMapping
from django.conf import settings

ZERO = -(10**9)  # the key of latencies too small to index: sorts before every real key

MAPPING = LogarithmicMapping(relative_accuracy=settings.ANALYTICS_SKETCH_RELATIVE_ACCURACY)
_MIN_INDEXABLE = MAPPING.min_possible
_value = MAPPING.value


# LogarithmicMapping.key(v) is int(ceil(log(v, 2) * multiplier) + offset) over two method calls; the rollup
# calls it once per event, so key_for does the same arithmetic inline (a test holds it to MAPPING.key).
_MULTIPLIER = MAPPING._multiplier
_OFFSET = MAPPING._offset
_log = math.log
_ceil = math.ceil


def key_for(latency_ms: float) -> int:
    """The sketch key a latency is counted under (``MAPPING.key``, inlined)."""
    if latency_ms < _MIN_INDEXABLE:
        return ZERO
    return int(_ceil(_log(latency_ms, 2) * _MULTIPLIER) + _OFFSET)


def build(latencies: Iterable[float]) -> dict[int, int]:
    sketch: dict[int, int] = {}
    for latency in latencies:
        k = key_for(latency)
        sketch[k] = sketch.get(k, 0) + 1
    return sketch


def merge_into(target: dict[int, int], other: Mapping[int, int]) -> dict[int, int]:
    """Add ``other``'s counts to ``target`` (in place) and return it."""
    get = target.get
    for k, count in other.items():
        target[k] = get(k, 0) + count
    return target


def merge_stored_into(target: dict[int, int], stored: Mapping[str, list[int]]) -> dict[int, int]:
    """Add a stored sketch's counts (``{"keys", "counts"}``, see :func:`to_json`) to ``target`` (in place)."""
    get = target.get
    for k, count in zip(stored.get("keys", ()), stored.get("counts", ()), strict=True):
        target[k] = get(k, 0) + count
    return target


def merge(sketches: Iterable[Mapping[int, int]]) -> dict[int, int]:
    out: dict[int, int] = {}
    for sketch in sketches:
        merge_into(out, sketch)
    return out


def to_json(sketch: Mapping[int, int]) -> dict[str, list[int]]:
    """Stored form: ``{"keys": [sorted keys], "counts": [...]}`` (integers parse fast; ``ZERO`` is a key too)."""
    items = sorted(sketch.items())
    return {"keys": [k for k, _ in items], "counts": [c for _, c in items]}


def from_json(stored: Mapping[str, list[int]]) -> dict[int, int]:
    return dict(zip(stored.get("keys", ()), stored.get("counts", ()), strict=True))


def quantiles(sketch: Mapping[int, int], qs: Iterable[float]) -> list[float]:
    """Quantiles of a sketch (``q`` in [0, 1]); 0.0 for an empty sketch.

    Like DDSketch: the value at rank ``q * (n - 1)``, reported as its bucket's
    representative value, so the result is within the relative accuracy of the
    exact lower quantile of the values counted.
    """
    qs = list(qs)
    for q in qs:
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile {q} outside [0, 1]")
    if not sketch:
        return [0.0 for _ in qs]
    items = sorted(sketch.items())
    cumulative = list(accumulate(count for _, count in items))
    total = cumulative[-1]
    if total == 0:
        return [0.0 for _ in qs]
    out: list[float] = []
    for q in qs:
        # The first key whose cumulative count passes rank q * (n - 1).
        index = min(bisect_right(cumulative, q * (total - 1)), len(items) - 1)
        key = items[index][0]
        out.append(0.0 if key == ZERO else _value(key))
    return out
