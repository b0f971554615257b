"""Kubernetes quantities, the stored configuration's schema versions and its upgrade path."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps as django_apps

from deployments import config
from deployments.models import Deployment
from tests.conftest import API
from tests.factories import DeploymentFactory


@pytest.mark.parametrize(
    "value, millicores",
    [("2", 2000), ("500m", 500), ("0.5", 500), (".25", 250), ("1.5", 1500), ("1m", 1), ("256", 256_000), ("100m", 100)],
)
def test_cpu_quantities(value, millicores):
    assert config.cpu_millicores(value) == millicores


@pytest.mark.parametrize("value", ["", "2 ", "-1", "1e3", "0.0001", "0.5m", "0", "0m", "257", "2c", "1Gi", "500M"])
def test_bad_cpu_quantities(value):
    with pytest.raises(ValueError):
        config.cpu_millicores(value)


@pytest.mark.parametrize(
    "value, size",
    [
        ("512Mi", 512 * 1024**2),
        ("4Gi", 4 * 1024**3),
        ("1G", 10**9),
        ("1.5Gi", 1536 * 1024**2),
        ("2000k", 2_000_000),
        ("1048576", 1024**2),
        ("64Ti", 64 * 1024**4),
        ("1Mi", 1024**2),
    ],
)
def test_memory_quantities(value, size):
    assert config.memory_bytes(value) == size


@pytest.mark.parametrize("value", ["512m", "512MB", "1gi", "1000", "1023Ki", "65Ti", "1.5", "4 Gi", "Gi", "1Ei"])
def test_bad_memory_quantities(value):
    with pytest.raises(ValueError):
        config.memory_bytes(value)


# A configuration as the first deployments prototype stored it (schema version 1: the flat request shape).
V1 = {
    "replicas": 3,
    "resources": {"cpu": "1", "memory": "2Gi"},
    "scaling": {"minReplicas": 2, "maxReplicas": 5},
    "temperature": 0.5,
    "port": 9000,
    "timeout": 10,
    "retries": 1,
    "enableMetrics": True,
    "metricsInterval": 30,
    "logLevel": "warning",
    "authentication": True,
    "authorization": ["ops"],
    "rateLimiting": {"requestsPerMinute": 100},
    "canary": True,
}
V2 = {
    "schemaVersion": 2,
    "runtime": {
        "resources": {"cpu": "1", "memory": "2Gi"},
        "scaling": {"minReplicas": 2, "maxReplicas": 5, "targetCPUUtilization": 80, "targetMemoryUtilization": 80},
    },
    "parameters": {"temperature": 0.5},
    "networking": {"port": 9000, "timeout": 10, "retries": 1},
    "monitoring": {"enableMetrics": True, "metricsInterval": 30, "enableTracing": False, "logLevel": "warn"},
    "security": {
        "authentication": True,
        "authorization": ["ops"],
        "rateLimiting": {"requestsPerMinute": 100, "burstLimit": 60},
    },
    "legacy": {"canary": True},
}


def test_v1_upgrades_to_v2():
    assert config.upgrade(V1) == V2
    assert config.upgrade({**V1, "schemaVersion": 1}) == V2


def test_upgrading_the_current_version_changes_nothing():
    assert config.upgrade(V2) is V2
    assert config.upgrade(config.upgrade(V1)) == V2


def test_a_newer_version_is_refused_not_misread():
    with pytest.raises(ValueError, match="newer"):
        config.upgrade({"schemaVersion": config.CURRENT_SCHEMA_VERSION + 1})


def test_an_empty_v1_configuration_gets_every_default():
    upgraded = config.upgrade({})
    assert upgraded["schemaVersion"] == 2
    assert upgraded["networking"] == {"port": 8080, "timeout": 30, "retries": 3}
    assert upgraded["runtime"]["scaling"]["maxReplicas"] == 10


@pytest.mark.django_db
def test_a_v1_row_is_read_upgraded_and_patched(client_for, personas):
    deployment = DeploymentFactory(owner=personas["developer"], replicas=3, configuration=V1)
    body = client_for("viewer").get(f"{API}/deployments/{deployment.pk}").json()["deployment"]
    assert body["configuration"]["schemaVersion"] == 2
    assert body["configuration"]["monitoring"]["logLevel"] == "warn"
    assert body["configuration"]["runtime"]["replicas"] == 3
    response = client_for("developer").patch(
        f"{API}/deployments/{deployment.pk}", {"configuration": {"topP": 0.9}}, format="json"
    )
    assert response.status_code == 200, response.json()
    deployment.refresh_from_db()
    assert deployment.configuration["schemaVersion"] == 2  # written back in the current version
    assert deployment.configuration["parameters"] == {"temperature": 0.5, "topP": 0.9}


@pytest.mark.django_db
def test_the_data_migration_upgrades_stored_rows():
    old = DeploymentFactory(replicas=3, configuration=V1)
    current = DeploymentFactory()
    current_config = dict(current.configuration)
    migration = importlib.import_module("deployments.migrations.0002_upgrade_configurations")
    migration.upgrade_stored_configurations(django_apps, None)
    old.refresh_from_db()
    current.refresh_from_db()
    assert old.configuration == V2
    assert current.configuration == current_config
    assert Deployment.objects.get(pk=old.pk).config == V2


def test_merge_is_patch_semantics():
    current = {"replicas": 2, "resources": {"cpu": "1", "memory": "1Gi", "gpu": "1"}, "temperature": 0.2, "port": 80}
    patch = {"resources": {"gpu": None, "memory": "2Gi"}, "temperature": None, "topK": 5}
    assert config.merge(current, patch) == {
        "replicas": 2,
        "resources": {"cpu": "1", "memory": "2Gi"},
        "port": 80,
        "topK": 5,
    }
    assert current["resources"]["gpu"] == "1"  # the input is not modified
