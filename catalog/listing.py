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
"""

from __future__ import annotations

import uuid
from typing import Any

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


def page_ids(cleaned: dict[str, Any], *, offset: int, limit: int) -> tuple[list[uuid.UUID], int]:
    """The ids of one page in the list's order, and how many models match in all."""
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
