"""``catalog.listing``: a miss answered from compiled page statements and pre-rendered rows must be the
answer the generic path (filterset queryset -> serializer -> renderer) gives, for every kind of query."""

from __future__ import annotations

import itertools
import math
import random
from decimal import Decimal

import pytest
from django.db import connection
from django.http import QueryDict
from django.test.utils import CaptureQueriesContext

from catalog import listing, selectors
from catalog.filters import ModelFilterSet
from catalog.models import ModelRegistry
from catalog.serializers import ModelRegistrySerializer
from modelhub.api.renderers import render_json
from tests.conftest import API
from tests.factories import ModelRegistryFactory

pytestmark = pytest.mark.django_db

WORDS = ["legal", "vision", "medical", "support", "50%_off", "chat"]


@pytest.fixture
def models(personas):
    rng = random.Random(7)
    made = []
    for i in range(40):
        made.append(
            ModelRegistryFactory(
                name=f"{rng.choice(WORDS)}-{i:02d}" if i % 3 else f"plain-{i:02d}",
                provider=rng.choice(["openai", "anthropic", "google", "custom"]),
                model_type=rng.choice(["text", "vision", "code"]),
                capabilities=rng.sample(["chat", "vision", "embeddings", "code"], k=rng.randint(1, 3)),
                category=rng.choice(["general", "legal", "medical"]),
                description=" ".join(rng.sample(WORDS, k=2)),
                tags=rng.sample(WORDS, k=1),
                baseline_cost_per_1k_tokens=Decimal(rng.randint(1, 50)) / 10_000,
                baseline_avg_latency_ms=rng.randint(100, 2000),
                avg_rating=rng.randint(0, 50) / 10,
                popularity=rng.randint(0, 1000),
                owner=personas["admin"] if i % 2 else None,
            )
        )
    return made


QUERIES = [
    "",
    "search=legal",
    "search=legal&provider=openai,google&modelType=text",
    "search=50%25_off",  # LIKE's special characters in the search: escaped in the bound pattern
    "search=50%25",
    "search=vision&limit=3&page=2",
    "search=vision&limit=3&page=99",  # past the end: the total still right
    "search=nothing-matches-this",
    "search=chat&sortBy=popularity",
    "provider=anthropic&modelType=code,vision&limit=5",
    "provider=anthropic&modelType=code,vision&limit=5&page=2",
    "provider=custom&limit=100",
    "capabilities=chat,vision",
    "capabilities=code&search=support",
    "category=legal,medical&status=active",
    "minRating=2.5&maxCost=0.003&maxLatency=1500",
    "sortBy=createdAt&sortOrder=asc&limit=7&page=3",
    "sortBy=name&sortOrder=desc&page=50",
]


def generic_answer(query: str) -> dict:
    """What the generic list path answers for ``query`` (the reference the fast path must equal)."""
    params = QueryDict(query)
    filterset = ModelFilterSet(params, queryset=selectors.model_queryset())
    assert filterset.is_valid(), filterset.errors
    limit = int(params.get("limit", 20))
    page = int(params.get("page", 1))
    qs = filterset.qs
    total = qs.count()
    rows = list(qs[(page - 1) * limit : page * limit])
    pages = math.ceil(total / limit) if total else 0
    return {
        "models": ModelRegistrySerializer(rows, many=True).data,
        "pagination": {
            "page": page,
            "limit": limit,
            "total": total,
            "totalPages": pages,
            "hasNext": page < pages,
            "hasPrev": page > 1,
        },
    }


@pytest.mark.parametrize("cached", [True, False], ids=["row-cache", "no-cache"])
def test_every_kind_of_query_answers_what_the_generic_path_answers(client_for, models, cached, settings):
    if not cached:
        settings.CATALOG_LIST_CACHE_SECONDS = 0
    client = client_for("viewer")
    for _ in range(2):  # the second round: compiled statements and rendered rows reused
        for query in QUERIES:
            response = client.get(f"{API}/models?{query}")
            assert response.status_code == 200, (query, response.content[:300])
            body = response.json()
            expected = render_json(generic_answer(query))
            assert render_json({k: body[k] for k in ("models", "pagination")}) == expected, query
            assert body["filters"]["available"] == selectors.catalog_facets()


def test_the_same_shape_with_other_values_reuses_the_statement_and_binds_them(client_for, models):
    client = client_for("viewer")
    providers = ["openai", "anthropic", "google", "custom"]
    for word, pair in itertools.product(WORDS, itertools.combinations(providers, 2)):
        query = f"search={word.replace('%', '%25')}&provider={','.join(pair)}&limit=4"
        body = client.get(f"{API}/models?{query}").json()
        expected = generic_answer(query)
        assert [m["id"] for m in body["models"]] == [m["id"] for m in expected["models"]], query
        assert body["pagination"] == expected["pagination"], query


def test_rendered_rows_are_read_once_per_generation(client_for, models, django_assert_max_num_queries):
    client = client_for("viewer")
    client.get(f"{API}/models?limit=100")  # renders every row into this process's cache
    with CaptureQueriesContext(connection) as captured:
        assert client.get(f"{API}/models?provider=openai,google&limit=100").status_code == 200
    reads = [q["sql"] for q in captured.captured_queries if "catalog_modelregistry" in q["sql"]]
    assert len(reads) == 1, reads  # the page statement only: no row was read again
    # a write moves the generation on: the next miss reads (and renders) its rows again, the write in them
    from catalog.services import model_usage_stats_set

    target = next(m for m in models if m.provider in ("openai", "google"))
    model_usage_stats_set({target.pk: (5000, 4.0)})
    selectors.invalidate_catalog_facets()  # what the write's on_commit does
    with django_assert_max_num_queries(4):
        body = client.get(f"{API}/models?provider=openai,google&limit=100&sortBy=popularity").json()
    assert body["models"][0]["id"] == str(target.pk)
    # a shown field changed: the row is rendered again in the new generation, not served from the old one
    ModelRegistry.objects.filter(pk=target.pk).update(description="changed after rendering")
    selectors.invalidate_catalog_facets()
    body = client.get(f"{API}/models?provider=openai,google&limit=100&sortBy=popularity").json()
    assert body["models"][0]["description"] == "changed after rendering"


def test_a_deleted_model_between_the_page_and_its_rows_is_left_out(models):
    ids = [m.pk for m in models[:3]]
    models[1].delete()
    rows = listing.RenderedRows().get(ids, generation=None)
    assert rows == [
        render_json(ModelRegistrySerializer.render(selectors.model_queryset().get(pk=ids[i]))) for i in (0, 2)
    ]


def test_the_row_cache_is_bounded(models):
    rows = listing.RenderedRows(max_rows=10)
    ids = [m.pk for m in models]
    assert len(rows.get(ids[:8], generation=1)) == 8
    assert len(rows.get(ids[8:20], generation=1)) == 12  # answered, but not kept: 8 + 12 > 10
    assert len(rows._scope.current(1)) == 8
    assert len(rows._scope.current(2)) == 0  # another generation starts empty


def test_shape_and_values_round_trip():
    cleaned = {
        "search": "legal",
        "provider": ["openai", "google"],
        "modelType": None,
        "capabilities": ["chat"],
        "category": ["a"],
        "status": None,
        "minRating": Decimal("3"),
        "maxCost": None,
        "maxLatency": None,
        "sortBy": "",
        "sortOrder": "",
    }
    shape, values = listing.shape_and_values(cleaned)
    assert values == {"search": "legal", "provider.0": "openai", "provider.1": "google", "category.0": "a"}
    assert listing._cleaned(shape, values) == {k: v for k, v in cleaned.items() if v not in (None, "", [])}
    other_shape, _ = listing.shape_and_values({**cleaned, "search": "medical", "provider": ["custom", "x"]})
    assert other_shape == shape  # other words, other providers: the same statement
