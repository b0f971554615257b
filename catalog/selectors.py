"""Reads from the catalog: list query, facets, the detail payload."""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.postgres.search import SearchQuery, SearchRank
from django.core.cache import cache
from django.db import connection
from django.db.models import Case, F, IntegerField, Q, QuerySet, Value, When
from django.utils import timezone

from catalog.constants import ModelStatus
from catalog.models import ModelRegistry
from modelhub import metrics
from modelhub.registry import Slot

_FACETS_VERSION_KEY = "catalog:facets:version"


def model_queryset() -> QuerySet[ModelRegistry]:
    """The base queryset every catalog read starts from.

    The owner's username comes as an annotation (one join, one column - no N+1 and
    no whole user row); the search vector is never needed in Python.
    """
    return ModelRegistry.objects.defer("search_vector").annotate(owner_username=F("owner__username"))


def _json_text(value: str) -> str:
    """How a string appears inside a JSON array as the database stores it."""
    return json.dumps(value)


def filter_json_list_contains_all(qs: QuerySet, field: str, values: list[str]) -> QuerySet:
    """Rows whose JSON list ``field`` contains every one of ``values``.

    PostgreSQL answers with ``@>`` on jsonb (GIN-indexable); SQLite has no JSON
    containment, so it matches each value as a quoted JSON string in the
    stored text - exact for lists of strings, which the model enforces.
    """
    if connection.vendor == "postgresql":
        return qs.filter(**{f"{field}__contains": values})
    for value in values:
        qs = qs.filter(**{f"{field}__icontains": _json_text(value)})
    return qs


def search_models(qs: QuerySet, text: str) -> QuerySet:
    """Full-text search over name, description, tags, capabilities and category.

    PostgreSQL: ``websearch_to_tsquery`` against the trigger-maintained, GIN
    indexed ``search_vector`` (name weighted A; category, tags, capabilities B;
    description C), plus a substring match on the name so partial names
    ("4o-mi") still find their model; annotated ``rank`` orders by relevance.
    SQLite: every word must appear in one of the fields; rank favours name hits.
    """
    text = text.strip()
    if not text:
        return qs
    if connection.vendor == "postgresql":
        query = SearchQuery(text, search_type="websearch", config="english")
        return qs.filter(Q(search_vector=query) | Q(name__icontains=text)).annotate(
            rank=SearchRank(F("search_vector"), query)
            + Case(When(name__iexact=text, then=Value(1.0)), default=Value(0.0))
        )
    for word in text.split()[:20]:
        qs = qs.filter(
            Q(name__icontains=word)
            | Q(description__icontains=word)
            | Q(category__icontains=word)
            | Q(tags__icontains=word)
            | Q(capabilities__icontains=word)
        )
    return qs.annotate(
        rank=Case(
            When(name__iexact=text, then=Value(3)),
            When(name__icontains=text, then=Value(2)),
            default=Value(1),
            output_field=IntegerField(),
        )
    )


# --- Facets (filters.available) ----------------------------------------------------


# Facets are also kept in process memory for a few seconds: they are read on every list
# request, and two Redis round trips per request showed in the catalog benchmark. A write
# clears this process's copy at once; other processes follow within FACETS_LOCAL_SECONDS.
FACETS_LOCAL_SECONDS = 2.0
_local_facets: tuple[float, dict[str, list[str]]] | None = None


def invalidate_catalog_facets() -> None:
    """Called after a catalog write commits: the catalog's generation moves on, so the next list
    recomputes its facets and no cached list answer (:func:`cached_list`) is served again."""
    global _local_facets
    _local_facets = None
    try:
        cache.incr(_FACETS_VERSION_KEY)
    except ValueError:
        _new_generation()


def _new_generation() -> int:
    """A fresh generation when the counter is missing (never set, flushed or evicted): random, so it
    cannot meet a generation that cached answers were stored under before."""
    generation = secrets.randbits(62)
    if not cache.add(_FACETS_VERSION_KEY, generation, None):
        return cache.get(_FACETS_VERSION_KEY) or generation
    return generation


# --- whole list answers, cached per normalised query and catalog generation ------------------------
# ``GET /models`` answers every reader the same (models.read is every role's, and nothing in it is
# per user), so the rendered bytes of a page are cached under its query; the generation (bumped by
# every catalog write after it commits) is read with the entry in one round trip, and an entry of an
# older generation is never served: a write is visible on the next read, in every process.


def list_cache_key(params: Any) -> str:
    """The cache key of a list query: its parameters in a canonical order (values in given order)."""
    items = sorted((name, tuple(params.getlist(name))) for name in params)
    return "catalog:list:" + hashlib.sha256(repr(items).encode()).hexdigest()[:40]


def cached_list(key: str) -> tuple[int, bytes | None]:
    """``(generation, cached answer or None)`` for a list key."""
    found = cache.get_many([_FACETS_VERSION_KEY, key])
    generation = found.get(_FACETS_VERSION_KEY)
    if generation is None:
        return _new_generation(), None
    entry = found.get(key)
    hit = entry is not None and entry[0] == generation
    metrics.cache_lookups.labels("catalog_list", "hit" if hit else "miss").inc()
    return generation, entry[1] if hit else None


def store_list(key: str, generation: int, content: bytes) -> None:
    cache.set(key, (generation, content), settings.CATALOG_LIST_CACHE_SECONDS)


def catalog_facets() -> dict[str, list[str]]:
    """Values present in the catalog for each list filter, cached until the next write."""
    global _local_facets
    now = time.monotonic()
    local = _local_facets
    if local is not None and local[0] > now:
        metrics.cache_lookups.labels("catalog_facets", "hit").inc()
        return local[1]
    facets = _shared_facets()
    _local_facets = (now + FACETS_LOCAL_SECONDS, facets)
    return facets


def _shared_facets() -> dict[str, list[str]]:
    version = cache.get(_FACETS_VERSION_KEY)
    if version is None:
        version = _new_generation()
    key = f"catalog:facets:{version}"
    facets = cache.get(key)
    metrics.cache_lookups.labels("catalog_facets", "miss" if facets is None else "hit").inc()
    if facets is None:
        facets = _compute_facets()
        cache.set(key, facets, settings.CATALOG_FACETS_CACHE_SECONDS)
    return facets


def _compute_facets() -> dict[str, list[str]]:
    providers: set[str] = set()
    model_types: set[str] = set()
    categories: set[str] = set()
    statuses: set[str] = set()
    capabilities: set[str] = set()
    rows = ModelRegistry.objects.values_list("provider", "model_type", "category", "status", "capabilities")
    for provider, model_type, category, status, caps in rows.iterator(chunk_size=2000):
        providers.add(provider)
        model_types.add(model_type)
        statuses.add(status)
        if category:
            categories.add(category)
        capabilities.update(caps or [])
    return {
        "providers": sorted(providers),
        "modelTypes": sorted(model_types),
        "capabilities": sorted(capabilities),
        "categories": sorted(categories),
        "statuses": sorted(statuses),
    }


# --- Detail ---------------------------------------------------------------------------

MODEL_DETAIL = Slot(
    "catalog.model_detail",
    "Providers ``(model, detail, now) -> None`` that fill sections of ``ModelDetailResponse`` owned by "
    "higher apps (deployments: ``deployments``; analytics: ``performance``, ``usage``, ``lastUsed``).",
)


def model_detail(model: ModelRegistry) -> dict[str, Any]:
    """The spec's ``ModelDetailResponse`` minus ``model`` (the view serializes that).

    The sections belong to the apps above the catalog, which fill them through :data:`MODEL_DETAIL`;
    what no provider fills stays empty.
    """
    detail: dict[str, Any] = {
        "deployments": [],
        "performance": {},
        "usage": {"totalRequests": 0, "totalCost": 0.0, "uniqueUsers": 0, "popularUseCases": []},
    }
    MODEL_DETAIL.notify(model, detail, timezone.now())
    return detail


# --- Lookups for the apps above -----------------------------------------------------------


def model_by_id(model_id: Any) -> ModelRegistry | None:
    """The model with this id (a UUID or its text), or None - also for a malformed id."""
    try:
        return ModelRegistry.objects.get(pk=uuid.UUID(str(model_id)))
    except (ValueError, ModelRegistry.DoesNotExist):
        return None


def model_locked(model_id: Any) -> ModelRegistry | None:
    """The model, row-locked until the transaction ends (``SELECT ... FOR UPDATE``), or None."""
    return ModelRegistry.objects.select_for_update().filter(pk=model_id).first()


def deployable_models(*, limit: int) -> list[ModelRegistry]:
    """Models that are not deprecated, by name and version (at most ``limit``)."""
    return list(ModelRegistry.objects.exclude(status=ModelStatus.DEPRECATED).order_by("name", "version")[:limit])


def models_in_bulk(ids: Iterable[Any]) -> dict[Any, ModelRegistry]:
    return ModelRegistry.objects.in_bulk(list(ids))


def model_ids() -> list[uuid.UUID]:
    return list(ModelRegistry.objects.values_list("pk", flat=True))


def model_names(ids: Iterable[Any]) -> dict[Any, str]:
    return dict(ModelRegistry.objects.filter(pk__in=list(ids)).values_list("pk", "name"))


def model_count() -> int:
    return ModelRegistry.objects.count()


class GenerationDict:
    """A process-local dict for one catalog generation, and for at most ``CATALOG_LIST_CACHE_SECONDS``: a
    new generation (or the time up) starts a fresh dict, so a thread still filling the old one fills a dict
    nobody reads again. What the rendered list rows and the model prices are kept in."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # requests run on a thread pool
        self._generation: int | None = None
        self._expires = 0.0
        self._items: dict[Any, Any] = {}

    def current(self, generation: int | None) -> dict[Any, Any] | None:
        """The dict of ``generation``; None keeps nothing (None)."""
        if generation is None:
            return None
        now = time.monotonic()
        with self._lock:
            if generation != self._generation or now >= self._expires:
                self._generation, self._items = generation, {}
                self._expires = now + settings.CATALOG_LIST_CACHE_SECONDS
            return self._items

    def clear(self) -> None:
        with self._lock:
            self._generation, self._items = None, {}


def _memo_generation() -> int | None:
    """The catalog generation a process-local memo is read under (read before the rows: a write after it
    moves it on), or None when the cache is unreachable (the database answers, and nothing is kept)."""
    try:
        generation = cache.get(_FACETS_VERSION_KEY)
        return generation if generation is not None else _new_generation()
    except Exception:
        return None


class _PriceMemo:
    """This process's ``{model id: costPer1kTokens}`` for one catalog generation (a :class:`GenerationDict`,
    bounded in size). Ingestion prices every batch with it: the query it saves was 8 % of an ingesting
    server's CPU (Django building it each time). Every save or delete of a model moves the generation on
    (``CatalogConfig.ready``), so a price change is used from the next batch on."""

    def __init__(self, max_rows: int = 20_000) -> None:
        self.max_rows = max_rows
        self._scope = GenerationDict()

    def get(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, Decimal]:
        generation = _memo_generation()
        if generation is None:
            return self._read(ids)
        prices = self._scope.current(generation)
        found = {pk: prices[pk] for pk in ids if pk in prices}
        if len(found) < len(ids):
            fetched = self._read([pk for pk in ids if pk not in found])
            if len(prices) + len(fetched) <= self.max_rows:
                prices.update(fetched)
            found.update(fetched)
        return found

    @staticmethod
    def _read(ids: list[uuid.UUID]) -> dict[uuid.UUID, Decimal]:
        return dict(ModelRegistry.objects.filter(pk__in=ids).values_list("pk", "baseline_cost_per_1k_tokens"))


_PRICES = _PriceMemo()


def model_prices(ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Decimal]:
    """``{id: baseline costPer1kTokens}`` for those of ``ids`` that are models (ids not models are left out,
    and asked of the database again each time)."""
    ids = list(ids)
    if not ids:
        return {}
    return _PRICES.get(ids)


# What the analytics figures of a model read of its row (performance, insights): the rest stays unread.
FIGURE_FIELDS = ("id", "name", "version", "baseline_avg_latency_ms", "baseline_cost_per_1k_tokens")


_FIGURE_MODELS = GenerationDict()
_FIGURE_MODELS_MAX = 20_000


def model_for_figures(model_id: Any) -> ModelRegistry | None:
    """:func:`model_by_id` with only :data:`FIGURE_FIELDS` loaded, kept per process for the catalog generation
    (every save or delete of a model moves it on). The instance is shared: read those fields only."""
    try:
        pk = uuid.UUID(str(model_id))
    except ValueError:
        return None
    generation = _memo_generation()
    kept = _FIGURE_MODELS.current(generation)
    if kept is not None and (model := kept.get(pk)) is not None:
        return model
    model = ModelRegistry.objects.only(*FIGURE_FIELDS).filter(pk=pk).first()
    if model is not None and kept is not None and len(kept) < _FIGURE_MODELS_MAX:
        kept[pk] = model
    return model
