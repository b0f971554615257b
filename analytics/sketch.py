"""Mergeable latency sketches (DDSketch's logarithmic mapping, stored as plain counts).

A latency ``v`` is counted under the key ``ceil(log_gamma(v))`` of DataDog's
``ddsketch`` :class:`~ddsketch.mapping.LogarithmicMapping`; every value in a key's
bucket is within the mapping's relative accuracy (1 %) of the key's representative
value. A sketch is a ``{key: count}`` dict (keys as text in JSON, ``"z"`` for values
too small to index, e.g. 0 ms), so merging two buckets is adding their counts, and a
quantile is a walk over the sorted keys - the DDSketch algorithm, with storage that
PostgreSQL and SQLite both keep as JSON.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ddsketch.mapping import LogarithmicMapping
from django.conf import settings

ZERO_KEY = "z"

MAPPING = LogarithmicMapping(relative_accuracy=settings.ANALYTICS_SKETCH_RELATIVE_ACCURACY)
_MIN_INDEXABLE = MAPPING.min_possible
_key = MAPPING.key
_value = MAPPING.value


def key_for(latency_ms: float) -> str:
    """The sketch key a latency is counted under."""
    if latency_ms < _MIN_INDEXABLE:
        return ZERO_KEY
    return str(_key(latency_ms))


def build(latencies: Iterable[float]) -> dict[str, int]:
    sketch: dict[str, int] = {}
    for latency in latencies:
        k = key_for(latency)
        sketch[k] = sketch.get(k, 0) + 1
    return sketch


def merge_into(target: dict[str, int], other: Mapping[str, int]) -> dict[str, int]:
    """Add ``other``'s counts to ``target`` (in place) and return it."""
    for k, count in other.items():
        target[k] = target.get(k, 0) + count
    return target


def merge(sketches: Iterable[Mapping[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for sketch in sketches:
        merge_into(out, sketch)
    return out


def quantiles(sketch: Mapping[str, int], qs: Iterable[float]) -> list[float]:
    """Quantiles of a sketch (``q`` in [0, 1]); 0.0 for an empty sketch.

    Like DDSketch: the value at rank ``q * (n - 1)``, reported as its bucket's
    representative value, so the result is within the relative accuracy of the
    exact lower quantile of the values counted.
    """
    qs = list(qs)
    total = sum(sketch.values())
    if total == 0:
        return [0.0 for _ in qs]
    zero = sketch.get(ZERO_KEY, 0)
    keyed = sorted((int(k), c) for k, c in sketch.items() if k != ZERO_KEY)
    out: list[float] = []
    for q in qs:
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile {q} outside [0, 1]")
        rank = q * (total - 1)
        if rank < zero:
            out.append(0.0)
            continue
        seen = zero
        value = _value(keyed[-1][0]) if keyed else 0.0
        for k, count in keyed:
            seen += count
            if seen > rank:
                value = _value(k)
                break
        out.append(value)
    return out
