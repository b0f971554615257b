"""Every concrete field of a filterset's model has a filter, or a written reason here why not
(NetBox's ``utilities/testing/filtersets.py`` does the same for its filtersets).

A filter covers a field when its ``field_name`` starts at that field (``modelId`` ->
``model_id`` covers ``model``). A new model field therefore fails this test until it gets a
filter or a line below; a reason for a field that is gone or has since got a filter fails too,
so the table stays true. The filtersets are found by importing every project app's
``filters`` module, so a new app's filterset is checked without being listed.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import django_filters
import pytest
from django.apps import apps
from django.db import models

ROOT = Path(__file__).resolve().parents[2]

SPEC_ONLY = "not a query parameter of the spec's {query}"

# FilterSet class name -> model field name -> why it has no filter.
REASONS: dict[str, dict[str, str]] = {
    "ModelFilterSet": {
        "id": "the detail route reads one model by id; " + SPEC_ONLY.format(query="CatalogQuery"),
        "name": "matched by `search` (full-text, name weight A, plus a substring match on the name)",
        "description": "matched by `search` (full-text, weight C)",
        "tags": "matched by `search` (full-text, weight B)",
        "version": "a model's versions are found by name through `search`; " + SPEC_ONLY.format(query="CatalogQuery"),
        "supported_tasks": "JSON list; " + SPEC_ONLY.format(query="CatalogQuery"),
        "input_formats": "JSON list; " + SPEC_ONLY.format(query="CatalogQuery"),
        "output_formats": "JSON list; " + SPEC_ONLY.format(query="CatalogQuery"),
        "supported_parameters": "JSON configuration (parameter schemas), nothing to compare against",
        "compliance": "JSON list of governance attestations; " + SPEC_ONLY.format(query="CatalogQuery"),
        "max_tokens": "a capacity figure; " + SPEC_ONLY.format(query="CatalogQuery"),
        "context_window": "a capacity figure; " + SPEC_ONLY.format(query="CatalogQuery"),
        "max_batch_size": "a capacity figure; " + SPEC_ONLY.format(query="CatalogQuery"),
        "baseline_success_rate": "baseline metric; the spec filters only on cost (`maxCost`) and latency (`maxLatency`)",
        "baseline_avg_tokens_per_request": "baseline metric; the spec filters only on cost and latency",
        "license": "free text; " + SPEC_ONLY.format(query="CatalogQuery"),
        "documentation": "a URL; " + SPEC_ONLY.format(query="CatalogQuery"),
        "security_level": "governance attribute, managed in the admin; " + SPEC_ONLY.format(query="CatalogQuery"),
        "owner": "the registering user; " + SPEC_ONLY.format(query="CatalogQuery"),
        "created_at": "an ordering (`sortBy=createdAt`), not a filter, in the spec",
        "updated_at": "an ordering (`sortBy=updatedAt`), not a filter, in the spec",
        "popularity": "an ordering (`sortBy=popularity`), not a filter, in the spec; an internal counter of the rollups",
        "last_validated_at": "governance timestamp, shown in the admin; " + SPEC_ONLY.format(query="CatalogQuery"),
        "search_vector": "internal: the tsvector `search` queries (kept by a trigger), not data",
    },
    "DeploymentFilterSet": {
        "id": "the detail route reads one deployment by id; " + SPEC_ONLY.format(query="DeploymentQuery"),
        "version": "fixed by the model (`modelId` selects it): each registered version is its own model id",
        "status_reason": "free text explaining `status`, which is the filter",
        "replicas": "a count; " + SPEC_ONLY.format(query="DeploymentQuery"),
        "target_replicas": "internal: the count a scaling task is moving to",
        "configuration": "JSON configuration",
        "owner": "every reader sees every deployment; " + SPEC_ONLY.format(query="DeploymentQuery"),
        "created_at": "an ordering (`sortBy=createdAt`), not a filter, in the spec",
        "updated_at": "an ordering (`sortBy=updatedAt`), not a filter, in the spec",
        "last_health_check": "a probe timestamp; " + SPEC_ONLY.format(query="DeploymentQuery"),
    },
    "AlertFilterSet": {
        "id": "the detail route reads one alert by id",
        "message": "free text describing the alert",
        "metric_value": "the measured figure that opened the alert; filter by `type` and `severity`",
        "threshold": "the rule's configured threshold (settings), the same for every alert of a type",
        "opened_at": "a lifecycle timestamp; `status` is the filter over the lifecycle",
        "last_checked_at": "internal: when the rules last evaluated the alert",
        "acknowledged_at": "a lifecycle timestamp; `status=acknowledged` is the filter",
        "acknowledged_by": "who acknowledged, shown on the alert; `status=acknowledged` is the filter",
        "resolved_at": "a lifecycle timestamp; `status=resolved` is the filter",
    },
    "ApiKeyFilterSet": {
        "id": "the detail route reads one key by id",
        "name": "a label for people; an ordering (`sortBy=name`), not a filter",
        "prefix": "identifies one key to a person (the admin searches it); the detail route reads one key by id",
        "secret_hash": "the key's SHA-256: never a query parameter",
        "deployment_ids": "JSON list: what the key may invoke, shown on the key",
        "expires_at": "`status=expired` / `status=active` is the filter",
        "revoked_at": "`status=revoked` is the filter",
        "last_used_at": "a usage timestamp written by the usage drain, shown on the key",
        "created_at": "an ordering (`sortBy=createdAt`), not a filter",
    },
    "ExperimentFilterSet": {
        "id": "the detail route reads one experiment by id",
        "description": "free text; `search` matches the name",
        "deployment": "the target deployment, shown in the resource; experiments are found by `modelId`",
        "status_reason": "free text explaining `status`, which is the filter",
        "seed": "internal: the assignment hash key, never shown",
        "traffic": "JSON definition",
        "start_date": "an ordering (`sortBy=startDate`), not a filter",
        "end_date": "shown in `duration`; `status` says whether it has passed",
        "metrics": "JSON definition",
        "audience": "JSON definition",
        "analysis": "JSON settings (extension)",
        "weights_version": "always 1: weights cannot change once running (README)",
        "owner": "every reader sees every experiment, as with deployments",
        "started_at": "shown in the resource and results; `status` is the filter",
        "ended_at": "shown in the resource and results; `status` is the filter",
        "aggregated_at": "internal: when the results' aggregates were last recomputed",
        "pre_period_at": "internal: when CUPED's pre-period sums were taken",
        "created_at": "an ordering (`sortBy=createdAt`), not a filter",
        "updated_at": "an ordering (`sortBy=updatedAt`), not a filter",
    },
    "UserFilterSet": {
        "id": "the detail route reads one user by id",
        "username": "matched by `search` (substring)",
        "email": "matched by `search` (substring)",
        "password": "a password hash: never a query parameter",
        "last_login": "Django auth bookkeeping, not part of the API",
        "is_superuser": "follows `role` (admin); `role` is the filter",
        "is_staff": "follows `role` (admin, manager: the Django admin); `role` is the filter",
        "first_name": "unused by the hub (the API has no name fields)",
        "last_name": "unused by the hub (the API has no name fields)",
        "date_joined": "Django auth bookkeeping, not part of the API",
        "groups": "Django auth groups: the hub's permissions come from `role`, not groups",
        "user_permissions": "Django per-user permissions: the hub's permissions come from `role`",
    },
}


def _project_filtersets() -> list[type[django_filters.FilterSet]]:
    found = []
    for config in apps.get_app_configs():
        if not Path(config.path).is_relative_to(ROOT) or Path(config.path).is_relative_to(ROOT / ".venv"):
            continue
        try:
            module = importlib.import_module(f"{config.name}.filters")
        except ModuleNotFoundError as exc:
            if exc.name != f"{config.name}.filters":
                raise
            continue
        found += [
            obj
            for obj in vars(module).values()
            if isinstance(obj, type)
            and issubclass(obj, django_filters.FilterSet)
            and obj.__module__ == module.__name__
            and obj._meta.model is not None
        ]
    return sorted(found, key=lambda cls: cls.__name__)


FILTERSETS = _project_filtersets()


def _model_fields(model: type[models.Model]) -> list[models.Field]:
    return [*model._meta.concrete_fields, *model._meta.many_to_many]


def _covered(filterset: type[django_filters.FilterSet]) -> set[str]:
    """Model field names (and attnames: ``model_id``) that some filter's ``field_name`` starts at."""
    return {f.field_name.split("__", 1)[0] for f in filterset.base_filters.values() if f.field_name}


def test_the_project_filtersets_are_found():
    assert {fs.__name__ for fs in FILTERSETS} >= set(REASONS)
    assert set(REASONS) >= {fs.__name__ for fs in FILTERSETS}, "a new filterset: add its entry to REASONS"


@pytest.mark.parametrize("filterset", FILTERSETS, ids=lambda fs: fs.__name__)
def test_every_model_field_has_a_filter_or_a_reason(filterset):
    covered = _covered(filterset)
    reasons = REASONS.get(filterset.__name__, {})
    missing = [
        field.name
        for field in _model_fields(filterset._meta.model)
        if field.name not in covered and field.attname not in covered and field.name not in reasons
    ]
    assert not missing, f"{filterset.__name__}: fields with neither a filter nor a reason in REASONS: {missing}"


@pytest.mark.parametrize("filterset", FILTERSETS, ids=lambda fs: fs.__name__)
def test_every_reason_is_for_a_real_field_without_a_filter(filterset):
    fields = {field.name: field for field in _model_fields(filterset._meta.model)}
    covered = _covered(filterset)
    reasons = REASONS.get(filterset.__name__, {})
    gone = sorted(set(reasons) - set(fields))
    filtered = sorted(name for name in reasons if name in fields and {name, fields[name].attname} & covered)
    assert not gone, f"{filterset.__name__}: REASONS names fields the model no longer has: {gone}"
    assert not filtered, f"{filterset.__name__}: REASONS names fields that now have a filter: {filtered}"
    assert all(reason.strip() for reason in reasons.values())
