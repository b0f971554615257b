"""``GET /models`` on a whole-answer cache miss: the catalog's hottest read, built for its rate (#15).

The generic list path (filterset -> ORM queryset -> 25 model instances with seven JSON columns each ->
serializer -> renderer) cost ~6.6 ms of server CPU per page where ``GET /auth/me`` costs 1.6 ms. Here a
miss takes three cheaper steps, with the same validation and the same answer, byte for byte:

1. **Parameters** are validated by the catalog's filterset as before (unknown, repeated, empty and invalid
   parameters are the same ``INVALID_PARAMETER`` errors), but its queryset is never built per request.
2. **The page's ids and the total** come from one statement compiled once per *shape*
   (:class:`modelhub.db.CompiledRows`): which filters are given, how many values each list has, the
   numbers, the sort, the page. The search text and the list values are bound as parameters, so two
   searches for different words with the same filters run the same SQL. A search counts its matches
   with ``COUNT(*) OVER ()`` in that statement (it ranks every match anyway); a plain list counts with a
   second compiled statement (an index-ordered ``LIMIT`` scan beats a window over every row).
3. **The rows** are this process's pre-rendered JSON of each model (:class:`RenderedRows`), kept for one
   catalog generation - the number every catalog write bumps after it commits (see
   ``catalog.selectors.invalidate_catalog_facets``) - and for at most ``CATALOG_LIST_CACHE_SECONDS``, the
   same bound on staleness as the whole-answer cache; rows it lacks are read (one query) and rendered.

Queries per miss: the page (+ the count of a plain list, or of a search paged past its end), + the rows
this process has not rendered in this generation. A model deleted between steps 2 and 3 is left out of
the page.

Before step 2, :class:`CandidateLists` answers most misses without the database: the catalog is small
(thousands of models, not millions), and what makes a page's statement cost is its search and its order,
not its filters. So per catalog generation this process keeps, per (search text, sortBy, sortOrder),
every matching model's id and filter columns *in the list's order, as the database ordered them* (one
statement, the same filterset with only the search and the sort), and applies ``provider``, ``modelType``,
``category``, ``status``, ``capabilities``, ``minRating``, ``maxCost`` and ``maxLatency`` in Python. A
filter keeps the order, so the page and the total are the database's; ``tests/catalog/test_listing.py``
checks them against the compiled statement over generated catalogs and queries. A catalog larger than
``CATALOG_CANDIDATES_MAX_MODELS`` or a parameter the lists do not know goes to step 2.
"""

from __future__ import annotations

import json
import sys
import threading
import uuid
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import BigIntegerField, Count, Func, QuerySet, Value, Window

from catalog.filters import ModelFilterSet
from catalog.models import ModelRegistry
from catalog.selectors import GenerationDict, model_queryset
from catalog.serializers import ModelRegistrySerializer
from modelhub.api.renderers import render_json
from modelhub.db import CompiledRows

# List filters whose values are bound as parameters (strings compared with = or IN). Everything else
# that is given (the numbers, the capabilities - a JSON containment on PostgreSQL - and the sort) is part
# of the shape: those change rarely, and the shapes kept are bounded (CompiledRows.max_shapes).
_BOUND_LISTS = ("provider", "modelType", "category", "status")


def shape_and_values(cleaned: dict[str, Any]) -> tuple[tuple, dict[str, str]]:
    """A filterset's cleaned data split into what changes the SQL and what only its parameters."""
    shape: list[tuple[str, Any]] = []
    values: dict[str, str] = {}
    for name, value in cleaned.items():
        if value in (None, "", []):
            continue
        if name == "search":
            shape.append((name, True))
            values[name] = value
        elif name in _BOUND_LISTS:
            shape.append((name, len(value)))
            values.update((f"{name}.{i}", item) for i, item in enumerate(value))
        else:
            shape.append((name, tuple(value) if isinstance(value, list) else value))
    return tuple(shape), values


def _cleaned(filters: tuple, values: dict[str, str]) -> dict[str, Any]:
    """The inverse of :func:`shape_and_values`."""
    cleaned: dict[str, Any] = {}
    for name, spec in filters:
        if name == "search":
            cleaned[name] = values[name]
        elif name in _BOUND_LISTS:
            cleaned[name] = [values[f"{name}.{i}"] for i in range(spec)]
        else:
            cleaned[name] = list(spec) if isinstance(spec, tuple) else spec
    return cleaned


def _filtered(filters: tuple, values: dict[str, str]) -> QuerySet:
    base = ModelRegistry.objects.all()  # no owner join: the ids need none
    return ModelFilterSet(queryset=base).apply(base, _cleaned(filters, values))


def _page_statement(*, filters: tuple, offset: int, limit: int, windowed: bool, **values: str) -> QuerySet:
    qs = _filtered(filters, values)
    if windowed:
        return qs.annotate(_total=Window(Count("pk"))).values_list("pk", "_total")[offset : offset + limit]
    return qs.values_list("pk")[offset : offset + limit]


def _count_statement(*, filters: tuple, **values: str) -> QuerySet:
    # COUNT(1) as a plain function: an aggregate expression in values_list() would add a GROUP BY.
    return _filtered(filters, values).order_by().values_list(Func(Value(1), function="COUNT", output_field=_BIGINT))


_BIGINT = BigIntegerField()
_PAGE = CompiledRows(_page_statement)
_COUNT = CompiledRows(_count_statement)


def page_ids(
    cleaned: dict[str, Any], *, offset: int, limit: int, generation: int | None = None
) -> tuple[list[uuid.UUID], int]:
    """The ids of one page in the list's order, and how many models match in all: from this process's
    candidate lists of ``generation`` when they can answer (:class:`CandidateLists`), else from the
    compiled statement."""
    found = CANDIDATES.page_ids(cleaned, offset=offset, limit=limit, generation=generation)
    if found is not None:
        return found
    filters, values = shape_and_values(cleaned)
    windowed = bool(cleaned.get("search"))
    rows = list(_PAGE.rows({"filters": filters, "offset": offset, "limit": limit, "windowed": windowed}, **values))
    ids = [_uuid(row[0]) for row in rows]
    if windowed and rows:
        return ids, rows[0][1]
    if windowed and not offset:
        return ids, 0
    if not windowed and len(ids) < limit and (ids or not offset):
        return ids, offset + len(ids)  # the last page: the total follows without counting
    (total,) = next(_COUNT.rows({"filters": filters}, **values))
    return ids, total


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


# What decides a candidate list (everything else given is applied to it in Python).
_ORDER_KEYS = ("search", "sortBy", "sortOrder")
# A candidate's columns, in this order: the id, then what the filters below read.
_COLUMNS = (
    "pk",
    "provider",
    "model_type",
    "category",
    "status",
    "capabilities",
    "avg_rating",
    "baseline_cost_per_1k_tokens",
    "baseline_avg_latency_ms",
)
_ID, _PROVIDER, _TYPE, _CATEGORY, _STATUS, _CAPABILITIES, _RATING, _COST, _LATENCY = range(len(_COLUMNS))
_ANY_OF = {"provider": _PROVIDER, "modelType": _TYPE, "category": _CATEGORY, "status": _STATUS}
# (column, the column's Python type): a bound is converted to the column's type first, as the database
# does (``avg_rating >= 4.1`` compares two doubles; Python would compare a double with the exact Decimal
# 4.1 otherwise). NULL matches no comparison, in SQL and here.
_BOUNDS = {"minRating": (_RATING, float), "maxCost": (_COST, Decimal), "maxLatency": (_LATENCY, float)}
# The kinds of test that are not "any of" (whose kind is its number of values, >= 1); sorted after them.
_ALL, _AT_LEAST, _AT_MOST = 1_000_001, 1_000_002, 1_000_003
_TOO_MANY = object()  # a list's marker: the catalog is larger than the lists are for


def _candidate_statement(*, filters: tuple, **values: str) -> QuerySet:
    return _filtered(filters, values).values_list(*_COLUMNS)


_CANDIDATES = CompiledRows(_candidate_statement)


class _Generation:
    """One generation's candidate lists: ``table`` holds each model's row once, the lists refer to it."""

    __slots__ = ("entries", "lists", "lock", "seen", "table")

    def __init__(self) -> None:
        # Requests run on a thread pool: the lists' and the counts' bookkeeping (an eviction takes the oldest
        # key and pops it - two steps another thread's insert must not come between) is done under it.
        self.lock = threading.Lock()
        self.table: dict[Any, tuple] = {}
        self.lists: dict[tuple, list[tuple] | object] = {}  # insertion order: the oldest first
        self.entries = 0  # references held by the lists
        self.seen: dict[tuple, int] = {}  # how often a key without a list was asked (the oldest first)


class CandidateLists:
    """Per catalog generation (a :class:`GenerationDict`), per search text and sort: every match, in the
    list's order, with its filter columns; pages are cut from them in Python (see the module docstring).

    A list is built the ``admit_after``-th time its search and sort are asked in a generation (2: a search
    asked once - most of a search box's long tail - runs the page statement, which reads 25 ids, instead
    of reading every match).

    Bounded: a model's row is kept once per generation however many lists hold it (at most the catalog's
    size); the lists hold references, at most ``max_entries`` of them in all and ``max_lists`` lists (the
    oldest go first); the keys counted towards admission at most ``max_lists * 16``; and no list for a
    catalog of more than ``max_models`` models (the statement asks for one row more; such a list is
    remembered as too large, so it is asked once per generation)."""

    def __init__(
        self, max_lists: int = 256, max_models: int | None = None, max_entries: int = 1_000_000, admit_after: int = 2
    ) -> None:
        self.max_lists, self.max_entries, self.admit_after = max_lists, max_entries, admit_after
        self._max_models = max_models
        self._scope = GenerationDict()

    @property
    def max_models(self) -> int:
        return settings.CATALOG_CANDIDATES_MAX_MODELS if self._max_models is None else self._max_models

    def page_ids(
        self, cleaned: dict[str, Any], *, offset: int, limit: int, generation: int | None
    ) -> tuple[list[uuid.UUID], int] | None:
        """``(ids, total)`` of the page, or None when the lists cannot answer (nothing kept without a
        generation, a parameter they do not filter by, a catalog too large)."""
        scope = self._scope.current(generation)
        if scope is None or self.max_models <= 0:
            return None
        order: dict[str, Any] = {}
        tests: list[tuple[int, Any, Any]] = []  # (filter kind, column, argument)
        for name, value in cleaned.items():
            if value in (None, "", []):
                continue
            if name in _ORDER_KEYS:
                order[name] = value
            elif name in _ANY_OF:
                tests.append((len(value), _ANY_OF[name], frozenset(value)))
            elif name == "capabilities":
                tests.append((_ALL, _CAPABILITIES, frozenset(value)))
            elif name in _BOUNDS:
                column, kind = _BOUNDS[name]
                tests.append((_AT_LEAST if name == "minRating" else _AT_MOST, column, kind(value)))
            else:
                return None
        state: _Generation = scope.setdefault(None, _Generation())  # setdefault: one winner among threads
        key = tuple(sorted(order.items()))
        candidates = state.lists.get(key)
        if candidates is None:
            with state.lock:
                asked = state.seen.pop(key, 0) + 1
                if asked < self.admit_after:
                    while len(state.seen) >= self.max_lists * 16:
                        state.seen.pop(next(iter(state.seen)))
                    state.seen[key] = asked
                    return None
            candidates = self._read(order, state.table)  # outside the lock: a statement
            size = len(candidates) if isinstance(candidates, list) else 0
            with state.lock:
                replaced = state.lists.pop(key, None)  # another thread read the same list meanwhile
                state.entries -= len(replaced) if isinstance(replaced, list) else 0
                while state.lists and (len(state.lists) >= self.max_lists or state.entries + size > self.max_entries):
                    oldest = state.lists.pop(next(iter(state.lists)))  # the oldest list of this generation
                    state.entries -= len(oldest) if isinstance(oldest, list) else 0
                state.lists[key] = candidates
                state.entries += size
        if candidates is _TOO_MANY:
            return None
        matches = _matching(candidates, tests)
        return [row[_ID] for row in matches[offset : offset + limit]], len(matches)

    def _read(self, order: dict[str, Any], table: dict[Any, tuple]) -> list[tuple] | object:
        filters, values = shape_and_values(order)
        rows = []
        for row in _CANDIDATES.rows({"filters": filters}, **values):
            if len(rows) == self.max_models:
                return _TOO_MANY
            kept = table.get(row[_ID])
            if kept is None:
                kept = table[row[_ID]] = (
                    _uuid(row[_ID]),
                    *map(_intern, row[1:_CAPABILITIES]),
                    _capabilities(row[_CAPABILITIES]),
                    *row[_RATING:],
                )
            rows.append(kept)
        return rows

    def clear(self) -> None:
        self._scope.clear()


def _intern(value: Any) -> Any:
    return sys.intern(value) if isinstance(value, str) else value


def _capabilities(value: Any) -> frozenset[str]:
    if isinstance(value, str):  # a JSON column read without its decoder (a raw compiled statement)
        value = json.loads(value)
    items = frozenset(item for item in value if isinstance(item, str)) if isinstance(value, list) else frozenset()
    if len(_CAPABILITY_SETS) > 10_000:  # bounded whatever the catalogs seen
        _CAPABILITY_SETS.clear()
    return _CAPABILITY_SETS.setdefault(items, items)  # one object per distinct set (a catalog has few)


_CAPABILITY_SETS: dict[frozenset[str], frozenset[str]] = {}


def _matching(rows: list[tuple], tests: list[tuple[int, Any, Any]]) -> list[tuple]:
    """The rows that pass every test, in their order: one comprehension per test (no call per row), the
    "any of" tests with the fewest values first (they are the most selective)."""
    for kind, column, argument in sorted(tests, key=lambda test: test[0]):
        if kind == _ALL:
            rows = [row for row in rows if argument <= row[_CAPABILITIES]]
        elif kind == _AT_LEAST:
            rows = [row for row in rows if row[column] is not None and row[column] >= argument]
        elif kind == _AT_MOST:
            rows = [row for row in rows if row[column] is not None and row[column] <= argument]
        else:  # "any of": the kind is how many values
            rows = [row for row in rows if row[column] in argument]
    return rows


CANDIDATES = CandidateLists()


class RenderedRows:
    """This process's JSON of catalog models, for one catalog generation at a time (bounded)."""

    def __init__(self, max_rows: int = 20_000) -> None:
        self.max_rows = max_rows
        self._scope = GenerationDict()

    def get(self, ids: list[uuid.UUID], generation: int | None) -> list[bytes]:
        """The JSON of each of ``ids`` that still exists, in order; ``generation`` None: nothing is kept."""
        rows = self._scope.current(generation)
        found = [rows.get(i) for i in ids] if rows is not None else [None] * len(ids)
        missing = [i for i, row in zip(ids, found, strict=True) if row is None]
        if missing:
            render = ModelRegistrySerializer.render
            fetched = {m.pk: render_json(render(m)) for m in model_queryset().filter(pk__in=missing)}
            if rows is not None and len(rows) + len(fetched) <= self.max_rows:
                rows.update(fetched)
            found = [row if row is not None else fetched.get(i) for i, row in zip(ids, found, strict=True)]
        return [row for row in found if row is not None]

    def clear(self) -> None:
        self._scope.clear()


RENDERED = RenderedRows()


def page_body(results_key: str, rows: list[bytes], pagination: dict[str, Any], extra: dict[str, Any]) -> bytes:
    """``{results_key: [rows], "pagination": ..., **extra}`` as the renderer would write it."""
    parts = [b'{"', results_key.encode(), b'":[', b",".join(rows), b'],"pagination":', render_json(pagination)]
    for key, value in extra.items():
        parts += [b",", render_json(key), b":", render_json(value)]
    parts.append(b"}")
    return b"".join(parts)
