"""Whole ``GET /models`` answers cached per normalised query and catalog generation: a hit is the same
bytes as the answer it stands for, and every write is visible on the next read."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from catalog import services
from tests.conftest import API
from tests.factories import ModelRegistryFactory

pytestmark = pytest.mark.django_db


def get(client, query: str = ""):
    response = client.get(f"{API}/models{query}")
    assert response.status_code == 200, response.content[:300]
    return response


def test_a_repeated_query_is_served_from_the_cache_with_the_same_bytes(client_for, personas):
    ModelRegistryFactory.create_batch(3)
    first = get(client_for("viewer"), "?provider=openai&limit=2")
    second = get(client_for("admin"), "?limit=2&provider=openai")  # another role, parameters reordered
    assert first["X-Catalog-Cache"] == "miss" and second["X-Catalog-Cache"] == "hit"
    assert second.content == first.content
    assert second["Content-Type"] == first["Content-Type"] == "application/json"
    assert get(client_for("viewer"), "?provider=openai&limit=3")["X-Catalog-Cache"] == "miss"  # another query


@pytest.mark.parametrize(
    "write",
    [
        "api_patch",
        "factory_create",
        "service_delete",
        "usage_stats",
    ],
)
def test_every_write_is_visible_on_the_next_read(client_for, personas, write, django_capture_on_commit_callbacks):
    model = ModelRegistryFactory(name="cached-one", description="before")
    ModelRegistryFactory(name="another")
    reader = client_for("viewer")
    get(reader, "?sortBy=popularity")
    assert get(reader, "?sortBy=popularity")["X-Catalog-Cache"] == "hit"
    with django_capture_on_commit_callbacks(execute=True):  # the write commits, as in production
        if write == "api_patch":
            patched = client_for("admin").patch(f"{API}/models/{model.pk}", {"description": "after"}, format="json")
            assert patched.status_code == 200
        elif write == "factory_create":
            ModelRegistryFactory(name="new-one")
        elif write == "service_delete":
            services.model_delete(model=model, actor=personas["admin"])
        else:
            services.model_usage_stats_set({model.pk: (42, 4.5)})
    after = get(reader, "?sortBy=popularity")
    assert after["X-Catalog-Cache"] == "miss"
    body = after.json()
    names = [m["name"] for m in body["models"]]
    if write == "api_patch":
        assert {m["name"]: m["description"] for m in body["models"]}["cached-one"] == "after"
    elif write == "factory_create":
        assert "new-one" in names
    elif write == "service_delete":
        assert "cached-one" not in names
    else:
        assert names[0] == "cached-one"


def test_refusals_are_not_cached(client_for):
    client = client_for("viewer")
    for _ in range(2):
        response = client.get(f"{API}/models?limit=1000")
        assert response.status_code == 400 and "X-Catalog-Cache" not in response


def test_a_lost_generation_counter_never_serves_an_old_answer(client_for):
    """Redis may evict or flush the counter while entries stay: a fresh random generation is taken."""
    ModelRegistryFactory(name="first")
    reader = client_for("viewer")
    get(reader)
    cache.delete("catalog:facets:version")
    ModelRegistryFactory.build(name="ignored")  # nothing saved: still, the old entry must not be trusted
    assert get(reader)["X-Catalog-Cache"] == "miss"
    assert get(reader)["X-Catalog-Cache"] == "hit"


def test_anonymous_and_unknown_tokens_never_reach_the_cache(client_for):
    ModelRegistryFactory()
    get(client_for("viewer"))
    from rest_framework.test import APIClient

    assert APIClient().get(f"{API}/models").status_code == 401
