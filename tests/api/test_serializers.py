"""Every compiled output serializer gives the same JSON through DRF's path and its fast path.

The serializers are found, not listed: every app's ``serializers`` module (or package) is
imported and every :class:`~modelhub.api.compiled.CompiledSerializer` subclass is checked. Each
needs a builder in ``BUILDERS`` (objects as the views serialize them, from the factories and
the selectors' querysets), so a new output serializer fails here until it has one. JSON is
compared with sorted keys: object key order carries no meaning in JSON (stored configuration
sections keep the order they were written in).
"""

from __future__ import annotations

import importlib
import pkgutil
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from django.apps import apps
from rest_framework import serializers

from modelhub.api.compiled import CompiledSerializer, compile_serializer, compiled_serializers, generic_representation
from modelhub.api.renderers import _default
from tests.factories import DeploymentFactory, ModelRegistryFactory, UserFactory

ROOT = Path(__file__).resolve().parents[2]
WHEN = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)


def _import_project_serializers() -> None:
    for config in apps.get_app_configs():
        path = Path(config.path)
        if not path.is_relative_to(ROOT) or path.is_relative_to(ROOT / ".venv"):
            continue
        try:
            module = importlib.import_module(f"{config.name}.serializers")
        except ModuleNotFoundError as exc:
            if exc.name != f"{config.name}.serializers":
                raise
            continue
        if hasattr(module, "__path__"):  # a package: inputs, outputs, ...
            for info in pkgutil.iter_modules(module.__path__, f"{module.__name__}."):
                importlib.import_module(info.name)


_import_project_serializers()
COMPILED = compiled_serializers()


# --- Builders: serializer -> the objects the views give it ---------------------------------------


def _models() -> list[Any]:
    from catalog.selectors import model_queryset

    owner = UserFactory(username="model-owner", role="admin")
    ModelRegistryFactory(
        name="with-everything",
        owner=owner,
        tags=["a", "b"],
        input_formats=["text"],
        output_formats=["json"],
        supported_parameters={"temperature": {"min": 0, "max": 2, "default": 1.0}, "stop": {"type": "list"}},
        compliance=["soc2"],
        baseline_cost_per_1k_tokens=Decimal("0.123456"),
        baseline_avg_tokens_per_request=321,
        last_validated_at=WHEN,
        license="MIT",
        documentation="https://example.com/docs",
    )
    ModelRegistryFactory(name="ownerless", owner=None, baseline_cost_per_1k_tokens=Decimal(0))
    return list(model_queryset().order_by("name"))


def _deployments() -> list[Any]:
    from deployments.config import nest
    from deployments.models import Deployment
    from deployments.selectors import deployment_queryset

    DeploymentFactory()
    DeploymentFactory(
        status="scaling",
        replicas=2,
        target_replicas=4,
        status_reason="Scaling to 4.",
        last_health_check=WHEN,
        owner=None,
        configuration=nest(
            {
                "replicas": 2,
                "resources": {"memory": "2Gi", "cpu": "1", "gpu": "nvidia-tesla-t4"},
                "scaling": {"minReplicas": 1, "maxReplicas": 8, "targetCPUUtilization": 60},
                "temperature": 0.2,
                "maxTokens": 512,
                "topP": 1,
                "stopSequences": ["\n\n", "END"],
                "host": "llm.internal",
                "path": "/healthz",
                "timeout": 2.5,
                "logLevel": "debug",
                "authorization": ["team-a"],
                "rateLimiting": {"burstLimit": 5},
            }
        ),
    )
    legacy = DeploymentFactory()
    # A configuration stored before schema version 2 (flat, unknown keys kept as legacy on upgrade).
    Deployment.objects.filter(pk=legacy.pk).update(
        configuration={"replicas": 1, "resources": {"cpu": "250m", "memory": "512Mi"}, "logLevel": "warning", "x": 1}
    )
    return list(deployment_queryset().order_by("created_at", "id"))


def _users() -> list[Any]:
    from modelhub.accounts.selectors import user_queryset

    UserFactory(username="fresh")
    UserFactory(username="known", first_name="Ada", last_name="Lovelace", role="manager", last_login=WHEN)
    inactive = UserFactory(username="gone", email="")
    inactive.is_active = False
    inactive.save()
    return list(user_queryset())


def _alerts() -> list[Any]:
    from analytics.models import Alert
    from analytics.selectors import alert_queryset

    model = ModelRegistryFactory()
    Alert.objects.create(
        type="latency_p95", severity="warning", model=model, message="p95 latency 2100 ms", metric_value=2100.5,
        threshold=2000, opened_at=WHEN, last_checked_at=WHEN,
    )  # fmt: skip
    Alert.objects.create(
        type="error_rate", severity="critical", status="acknowledged", model=model, message="errors 12%",
        metric_value=0.12, threshold=0.05, opened_at=WHEN, last_checked_at=WHEN, acknowledged_at=WHEN,
    )  # fmt: skip
    return list(alert_queryset())


def _api_keys() -> list[Any]:
    from gateway.models import ApiKey
    from gateway.services import api_key_create
    from gateway.views import api_key_queryset

    owner = UserFactory(username="key-owner", role="developer")
    api_key_create(owner=owner, name="plain")
    scoped, _ = api_key_create(
        owner=owner, name="scoped", deployment_ids=[uuid.uuid4(), uuid.uuid4()], expires_at=WHEN + timedelta(days=3650)
    )
    ApiKey.objects.filter(pk=scoped.pk).update(last_used_at=WHEN)
    revoked, _ = api_key_create(owner=owner, name="revoked")
    ApiKey.objects.filter(pk=revoked.pk).update(revoked_at=WHEN, expires_at=WHEN)
    expired, _ = api_key_create(owner=owner, name="expired")
    ApiKey.objects.filter(pk=expired.pk).update(expires_at=WHEN - timedelta(days=1))
    return list(api_key_queryset().order_by("name"))


# Keyed by "module.QualName" so a renamed or moved serializer is noticed here.
BUILDERS: dict[str, Callable[[], list[Any]]] = {
    "catalog.serializers.ModelRegistrySerializer": _models,
    "deployments.serializers.outputs.DeploymentSerializer": _deployments,
    "deployments.serializers.outputs.DeploymentListItemSerializer": _deployments,
    "modelhub.accounts.serializers.UserSerializer": _users,
    "analytics.serializers.AlertSerializer": _alerts,
    "gateway.serializers.ApiKeySerializer": _api_keys,
}
# Builders ready for serializers that are not compiled yet (they still write to_representation by hand).
PENDING: set[str] = set()


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _json(value: Any) -> bytes:
    return orjson.dumps(
        value, default=_default, option=orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS | orjson.OPT_SORT_KEYS
    )


def test_the_output_serializers_are_found():
    found = {_name(cls) for cls in COMPILED}
    assert found >= set(BUILDERS) - PENDING, "a builder for a serializer that is gone or moved"


@pytest.mark.django_db
@pytest.mark.parametrize("serializer_class", COMPILED, ids=_name)
def test_fast_path_gives_the_json_of_drfs_path(serializer_class):
    builder = BUILDERS.get(_name(serializer_class))
    assert builder is not None, f"{_name(serializer_class)}: add a builder to BUILDERS in {__file__}"
    instances = builder()
    assert instances
    with generic_representation():
        generic = [serializer_class(instance).data for instance in instances]
        generic_many = serializer_class(instances, many=True).data
    fast = [serializer_class(instance).data for instance in instances]
    fast_many = serializer_class(instances, many=True).data
    assert _json(generic_many) == _json(generic)  # (the check itself reads DRF's path both ways)
    for one_generic, one_fast in zip(generic, fast, strict=True):
        assert _json(one_fast) == _json(one_generic), compile_serializer(serializer_class).source
    assert _json(fast_many) == _json(generic)
    assert _json(serializer_class.render_many(instances)) == _json(generic)
    assert list(fast[0]) == list(generic[0])  # and the fields in their declared order


def test_generic_representation_really_is_drfs_path():
    from catalog.serializers import ModelRegistrySerializer

    with generic_representation():
        assert ModelRegistrySerializer.to_representation is serializers.Serializer.to_representation
    assert ModelRegistrySerializer.to_representation is CompiledSerializer.to_representation


# Serializers (by class name) still writing to_representation by hand, and why.
HAND_WRITTEN: dict[str, str] = {}


def _project_serializers() -> list[type[serializers.BaseSerializer]]:
    found, pending = [], list(serializers.BaseSerializer.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        module = cls.__module__.split(".")[0]
        if module in {"catalog", "deployments", "analytics", "modelhub"} and cls not in found:
            found.append(cls)
    return found


def test_no_output_shape_is_written_twice():
    hand_written = sorted(
        _name(cls)
        for cls in _project_serializers()
        if "to_representation" in cls.__dict__
        and not issubclass(cls, CompiledSerializer)
        and cls.__name__ not in HAND_WRITTEN
        and "computed_from" not in cls.__dict__
        and cls.__module__ != "modelhub.api.compiled"  # the machinery itself
    )
    assert not hand_written, f"declare these as CompiledSerializer (modelhub.api.compiled): {hand_written}"


# --- The compiler on shapes the project does not use yet ------------------------------------------


class _Item(serializers.Serializer):
    label = serializers.CharField()
    at = serializers.DateTimeField(allow_null=True)

    class Meta:
        compiled_from = "mapping"


class _Everything(CompiledSerializer):
    id = serializers.UUIDField()
    maybeId = serializers.UUIDField(source="maybe_id", allow_null=True)
    ratio = serializers.FloatField()
    price = serializers.DecimalField(max_digits=8, decimal_places=2, coerce_to_string=False)
    text = serializers.DecimalField(max_digits=8, decimal_places=2, source="price", coerce_to_string=True)
    plain = serializers.DecimalField(max_digits=8, decimal_places=2, source="price")  # the project default: float
    items = _Item(many=True)
    innerName = serializers.CharField(source="inner.name")  # a dotted source: DRF's own lookup
    date = serializers.DateField(source="day")  # no fast conversion: the field's own to_representation
    flags = serializers.DictField(child=serializers.BooleanField())

    class Meta:
        ref_name = "TestOnlyEverything"


class _Thing:
    def __init__(self, **values: Any):
        self.__dict__.update(values)


def test_the_compiler_covers_dotted_sources_mappings_and_fallbacks():
    things = [
        _Thing(
            id=uuid.uuid4(),
            maybe_id=None,
            ratio=1,
            price=Decimal("2.50"),
            items=[{"label": "a", "at": WHEN}, {"label": "b", "at": None}],
            day=(WHEN + timedelta(days=1)).date(),
            flags={"x": True},
            inner=_Thing(name="one"),
        ),
        _Thing(
            id=uuid.uuid4(),
            maybe_id=uuid.uuid4(),
            ratio=0.5,
            price=Decimal("0.01"),
            items=[{"label": "c"}],
            day=WHEN.date(),
            flags={},
            inner=_Thing(name="two"),
        ),
    ]
    with generic_representation():
        generic = _Everything(things, many=True).data
    assert _json(_Everything(things, many=True).data) == _json(generic)
    assert generic[0]["text"] == "2.50" and generic[1]["maybeId"] == str(things[1].maybe_id)
    assert generic[1]["items"] == [{"label": "c", "at": None}]  # an absent allow_null key reads as None
    with pytest.raises(KeyError):  # an absent required key is an error on both paths
        _Everything.render(_Thing(**{**things[1].__dict__, "items": [{"at": None}]}))


def test_sort_columns_come_from_the_serializers():
    from catalog.filters import ModelFilterSet
    from deployments.filters import DeploymentFilterSet

    assert ModelFilterSet.sort_columns == {
        "name": "name",
        "createdAt": "created_at",
        "updatedAt": "updated_at",
        "popularity": "popularity",  # not shown: the column itself
    }
    assert DeploymentFilterSet.sort_columns == {
        "createdAt": "created_at",
        "updatedAt": "updated_at",
        "name": "model_name",
    }
