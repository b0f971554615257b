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


def test_rendered_rows_are_read_once_per_generation(client_for, models, django_assert_max_num_queries, settings):
    settings.CATALOG_CANDIDATES_MAX_MODELS = 0  # the page statement each miss (the candidate lists: below)
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


# --- Candidate lists: pages cut in Python from the database's ordered matches ---------------------------


@pytest.fixture
def tangled_models(personas):
    """A catalog made to find differences: names and ranks that tie, ratings that are no exact decimal
    (4.1, 2.3), NULL ratings, costs at the filters' edges, models without capabilities."""
    rng = random.Random(11)
    made = []
    for i in range(90):
        made.append(
            ModelRegistryFactory(
                name=rng.choice(["legal", "vision", "chat-legal", "support", "a", "B", "b"]) + f"-{i % 7}",
                version=f"{i}.0",
                provider=rng.choice(["openai", "anthropic", "google", "custom"]),
                model_type=rng.choice(["text", "vision", "code", "embedding"]),
                capabilities=rng.sample(["chat", "vision", "embeddings", "code"], k=rng.randint(0, 3)),
                category=rng.choice(["general", "legal", "medical", ""]),
                description=" ".join(rng.sample(WORDS, k=rng.randint(0, 3))),
                tags=rng.sample(WORDS, k=rng.randint(0, 2)),
                baseline_cost_per_1k_tokens=Decimal(rng.randint(0, 40)) / 10_000,
                baseline_avg_latency_ms=rng.choice([100, 1500, 1500.5, 2000, 0.1 + 0.2]),
                avg_rating=rng.choice([None, 4.1, 2.3, 0.0, 5.0, rng.randint(0, 50) / 10]),
                popularity=rng.choice([0, 10, 10, 500]),
                status=rng.choice(["active", "active", "deprecated", "experimental"]),
                owner=personas["admin"] if i % 2 else None,
            )
        )
    return made


def random_query(rng: random.Random) -> str:
    parts = []
    if rng.random() < 0.6:
        parts.append("search=" + rng.choice(["legal", "vision", "chat", "support", "50%25", "b", "medical chat"]))
    for name, values in (
        ("provider", ["openai", "anthropic", "google", "custom"]),
        ("modelType", ["text", "vision", "code", "embedding"]),
        ("capabilities", ["chat", "vision", "embeddings", "code"]),
        ("category", ["general", "legal", "medical", "none-such"]),
        ("status", ["active", "deprecated", "experimental"]),
    ):
        if rng.random() < 0.35:
            parts.append(f"{name}=" + ",".join(rng.sample(values, k=rng.randint(1, 3))))
    for name, choices in (
        ("minRating", ["4.1", "2.3", "0", "5", "3.05"]),
        ("maxCost", ["0.0001", "0.002", "0.0035", "1"]),
        ("maxLatency", ["1500", "1500.5", "0.3", "0.30000000000000004", "100"]),
    ):
        if rng.random() < 0.2:
            parts.append(f"{name}={rng.choice(choices)}")
    if rng.random() < 0.3:
        parts.append("sortBy=" + rng.choice(["name", "createdAt", "updatedAt", "popularity"]))
        if rng.random() < 0.5:
            parts.append("sortOrder=" + rng.choice(["asc", "desc"]))
    parts.append(f"limit={rng.choice([1, 3, 20, 100])}&page={rng.choice([1, 1, 2, 5])}")
    return "&".join(parts)


def test_candidate_lists_cut_the_pages_the_statement_gives(tangled_models):
    rng = random.Random(5)
    lists = listing.CandidateLists(admit_after=1)
    for _ in range(400):
        query = random_query(rng)
        params = QueryDict(query)
        filterset = ModelFilterSet(params, queryset=selectors.model_queryset())
        assert filterset.is_valid(), (query, filterset.errors)
        limit, page = int(params["limit"]), int(params["page"])
        cleaned = filterset.form.cleaned_data
        found = lists.page_ids(cleaned, offset=(page - 1) * limit, limit=limit, generation=1)
        assert found is not None, query
        assert found == listing.page_ids(cleaned, offset=(page - 1) * limit, limit=limit), query
    state = lists._scope.current(1)[None]
    assert 1 < len(state.lists) <= 8 * 13  # one list per search text and sort, not per query
    assert len(state.table) <= len(tangled_models)  # each model's row once, whichever lists hold it
    assert state.entries == sum(len(found) for found in state.lists.values())


def test_the_api_answers_the_same_with_and_without_candidate_lists(client_for, tangled_models, settings, monkeypatch):
    monkeypatch.setattr(listing.CANDIDATES, "admit_after", 1)  # a list from the first request of a search on
    rng = random.Random(6)
    client = client_for("viewer")
    for _ in range(60):
        query = random_query(rng)
        settings.CATALOG_CANDIDATES_MAX_MODELS = 20_000
        listing.RENDERED.clear()
        with_lists = client.get(f"{API}/models?{query}")
        settings.CATALOG_CANDIDATES_MAX_MODELS = 0
        selectors.invalidate_catalog_facets()  # a new generation: no whole answer to hit
        without = client.get(f"{API}/models?{query}")
        assert with_lists.status_code == without.status_code == 200, query
        assert with_lists.headers["X-Catalog-Cache"] == without.headers["X-Catalog-Cache"] == "miss"
        assert with_lists.json() == without.json() == {**without.json(), **generic_answer(query)}, query


def test_candidate_lists_read_once_per_search_and_generation_and_see_the_next_write(
    client_for, tangled_models, django_assert_num_queries
):
    client = client_for("viewer")
    client.get(f"{API}/models?search=legal&limit=5")  # asked once: the page statement, no list yet
    client.get(f"{API}/models?search=legal&limit=100")  # asked again: the candidate list of "legal" and its rows
    with django_assert_num_queries(0):  # another filter, the same search: no statement at all
        body = client.get(f"{API}/models?search=legal&provider=openai,custom&limit=100").json()
    assert body["pagination"]["total"] == len(body["models"]) > 0
    target = next(m for m in tangled_models if m.provider == "google" and "legal" in m.name)
    from catalog.services import model_update

    model_update(model=target, actor=None, provider="openai")  # a catalog write: the next read sees it
    selectors.invalidate_catalog_facets()  # (what its on_commit does)
    body = client.get(f"{API}/models?search=legal&provider=openai,custom&limit=100").json()
    assert str(target.pk) in [m["id"] for m in body["models"]]


def test_candidate_lists_step_aside_for_a_large_catalog_or_an_unknown_filter(tangled_models, settings):
    cleaned = {"search": "legal", "provider": ["openai"]}
    small = listing.CandidateLists(max_models=10, admit_after=1)
    assert small.page_ids(cleaned, offset=0, limit=5, generation=1) is None
    assert small.page_ids(cleaned, offset=0, limit=5, generation=1) is None  # remembered: no second read
    assert len(small._scope.current(1)[None].lists) == 1
    lists = listing.CandidateLists(admit_after=1)
    assert lists.page_ids({**cleaned, "ownerId": ["x"]}, offset=0, limit=5, generation=1) is None
    assert lists.page_ids(cleaned, offset=0, limit=5, generation=None) is None  # no generation: nothing kept
    settings.CATALOG_CANDIDATES_MAX_MODELS = 0
    assert listing.CandidateLists(admit_after=1).page_ids(cleaned, offset=0, limit=5, generation=1) is None


def test_a_search_gets_its_list_the_second_time_it_is_asked_in_a_generation(tangled_models):
    lists = listing.CandidateLists(max_lists=1)  # admit_after=2; at most 16 keys counted
    assert lists.page_ids({"search": "legal"}, offset=0, limit=5, generation=1) is None  # the statement answers
    state = lists._scope.current(1)[None]
    assert not state.lists and state.seen == {(("search", "legal"),): 1}
    assert lists.page_ids({"search": "legal", "provider": ["openai"]}, offset=0, limit=5, generation=1) is not None
    assert list(state.lists) == [(("search", "legal"),)] and not state.seen
    for i in range(40):  # one-off searches: counted, bounded, never read whole
        assert lists.page_ids({"search": f"once-{i}"}, offset=0, limit=5, generation=1) is None
    assert len(state.seen) == 16 and list(state.lists) == [(("search", "legal"),)]
    assert lists.page_ids({"search": "legal"}, offset=0, limit=5, generation=2) is None  # a new generation: anew


def test_candidate_lists_are_bounded(tangled_models):
    lists = listing.CandidateLists(max_lists=2, admit_after=1)
    for word in ("legal", "vision", "chat"):
        assert lists.page_ids({"search": word}, offset=0, limit=5, generation=1) is not None
    assert [dict(key)["search"] for key in lists._scope.current(1)[None].lists] == ["vision", "chat"]  # oldest out
    # in references too: the whole catalog's list (90) and then another leave room for one only
    lists = listing.CandidateLists(max_entries=120, admit_after=1)
    assert lists.page_ids({}, offset=0, limit=5, generation=1)[1] == len(tangled_models)
    assert lists.page_ids({"sortBy": "popularity"}, offset=0, limit=5, generation=1)[1] == len(tangled_models)
    state = lists._scope.current(1)[None]
    assert list(state.lists) == [(("sortBy", "popularity"),)] and state.entries == len(tangled_models)
    # the rows are shared: the same tuple in both lists' places
    both = listing.CandidateLists(admit_after=1)
    both.page_ids({}, offset=0, limit=5, generation=1)
    both.page_ids({"search": "legal"}, offset=0, limit=5, generation=1)
    first, second = both._scope.current(1)[None].lists.values()
    assert second and all(any(row is other for other in first) for row in second)


def test_candidate_lists_keep_their_bounds_and_counts_under_concurrent_requests(monkeypatch):
    """Requests run on a thread pool: admissions, inserts and evictions from many threads at once neither
    fail (a dict changing under an eviction) nor lose count. The statement is stood in for: the race is in
    the bookkeeping."""
    import sys
    import threading

    lists = listing.CandidateLists(max_lists=4, max_entries=50, admit_after=2)
    monkeypatch.setattr(lists, "_read", lambda order, table: [(order["search"],)] * 10)
    errors: list[BaseException] = []

    def hammer(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(3000):
                lists.page_ids({"search": f"w{rng.randrange(40)}"}, offset=0, limit=5, generation=1)
        except BaseException as error:  # collected for the assertion
            errors.append(error)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter allows
    try:
        threads = [threading.Thread(target=hammer, args=(seed,)) for seed in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors, errors[:3]
    state = lists._scope.current(1)[None]
    assert len(state.lists) <= 4 and state.entries == sum(len(found) for found in state.lists.values()) <= 50
    assert len(state.seen) <= 4 * 16
