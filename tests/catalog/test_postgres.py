"""What only PostgreSQL gives: ranked full-text search on a GIN index, and constraints in the database."""

import pytest
from django.db import IntegrityError, connection, transaction

from catalog.models import ModelRegistry
from tests.conftest import API, is_postgres
from tests.factories import ModelRegistryFactory

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


@pytest.fixture(autouse=True)
def _only_postgres():
    if not is_postgres():
        pytest.skip("PostgreSQL only (set DATABASE_URL)")


@pytest.fixture
def corpus(personas):
    owner = personas["admin"]
    return {
        "name_hit": ModelRegistryFactory(name="translator-pro", description="General assistant.", tags=[], owner=owner),
        "tag_hit": ModelRegistryFactory(name="polyglot", description="Chat model.", tags=["translator"], owner=owner),
        "desc_hit": ModelRegistryFactory(name="helper", description="Can act as a translator for emails.", owner=owner),
        "vision": ModelRegistryFactory(
            name="seer", description="Sees images.", capabilities=["vision", "chat"], owner=owner
        ),
        "embed": ModelRegistryFactory(
            name="vectorizer", description="Creates embeddings.", category="embeddings", owner=owner
        ),
        "mini": ModelRegistryFactory(name="gpt-4o-mini", description="Small.", owner=owner),
    }


def search(client, q):
    response = client.get(f"{API}/models", {"search": q})
    assert response.status_code == 200, response.json()
    return [m["name"] for m in response.json()["models"]]


def test_ranking_prefers_name_then_tags_then_description(client_for, corpus):
    assert search(client_for("viewer"), "translator") == ["translator-pro", "polyglot", "helper"]


def test_stemming_websearch_syntax_and_partial_names(client_for, corpus):
    client = client_for("viewer")
    assert search(client, "embedding") == ["vectorizer"]  # stemmed: embeddings ~ embedding
    assert sorted(search(client, "translator -emails")) == ["polyglot", "translator-pro"]
    assert search(client, '"act as a translator"') == ["helper"]
    assert search(client, "vision") == ["seer"]
    assert search(client, "4o-mi") == ["gpt-4o-mini"]
    assert search(client, "nothing-matches-this") == []


def test_search_vector_is_maintained_by_the_trigger(corpus):
    model = corpus["desc_hit"]
    ModelRegistry.objects.filter(pk=model.pk).update(description="Now about astronomy.")
    with connection.cursor() as cursor:
        cursor.execute("SELECT search_vector::text FROM catalog_modelregistry WHERE id = %s", [model.pk])
        vector = cursor.fetchone()[0]
    assert "astronomi" in vector and "translat" not in vector


def test_search_uses_the_gin_index(corpus):
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(
            "EXPLAIN SELECT id FROM catalog_modelregistry WHERE search_vector @@ websearch_to_tsquery('english', 'translator')"
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "catalog_model_search_gin" in plan, plan


def test_capabilities_filter_uses_jsonb_containment(client_for, corpus):
    response = client_for("viewer").get(f"{API}/models?capabilities=vision,chat")
    assert [m["name"] for m in response.json()["models"]] == ["seer"]


@pytest.mark.parametrize(
    "column, value",
    [
        ("provider", "azure"),
        ("status", "gone"),
        ("max_tokens", 10**6),
        ("baseline_success_rate", 1.5),
        ("baseline_cost_per_1k_tokens", -1),
    ],
)
def test_database_constraints_hold_without_the_orm(corpus, column, value):
    model = corpus["mini"]
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"UPDATE catalog_modelregistry SET {column} = %s WHERE id = %s", [value, model.pk])


def test_unique_name_version_in_the_database(corpus):
    model = corpus["mini"]
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelRegistry.objects.bulk_create(
            [
                ModelRegistry(
                    name=model.name,
                    version=model.version,
                    provider="openai",
                    model_type="text",
                    max_tokens=1,
                    context_window=1,
                    baseline_avg_latency_ms=1,
                    baseline_cost_per_1k_tokens=0,
                    baseline_success_rate=1,
                )
            ]
        )
