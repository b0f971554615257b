"""Fixtures for the deployments tests: a valid request body and deployments owned by personas."""

from __future__ import annotations

import copy

import pytest

from tests.factories import DeploymentFactory

CONFIG = {"replicas": 2, "resources": {"cpu": "500m", "memory": "1Gi"}}


@pytest.fixture
def create_body(model):
    def make(**overrides):
        body = {
            "modelId": str(model.pk),
            "version": model.version,
            "environment": "staging",
            "configuration": copy.deepcopy(CONFIG),
        }
        configuration = overrides.pop("configuration", None)
        if configuration is not None:
            body["configuration"].update(configuration)
        body.update(overrides)
        return body

    return make


@pytest.fixture
def mine(personas, model):
    """A running deployment owned by the developer persona."""
    return DeploymentFactory(model=model, owner=personas["developer"], replicas=2)


@pytest.fixture
def theirs(personas, model):
    """A running deployment owned by the manager persona (not the developer's)."""
    return DeploymentFactory(model=model, owner=personas["manager"], replicas=2)
