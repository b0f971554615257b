"""Building experiments for tests."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone


def own_target(model: Any, owner: Any) -> str:
    """The id of a new production deployment of ``model`` owned by ``owner`` (a user or a username): the target
    an own-only developer must name (``deployments.update`` own only)."""
    from django.contrib.auth import get_user_model

    from tests.factories import DeploymentFactory

    if isinstance(owner, str):
        owner = get_user_model().objects.get(username=owner)
    return str(DeploymentFactory(model=model, owner=owner, environment="production").pk)


def experiment_body(model: Any, *, owner: Any = None, **overrides: Any) -> dict[str, Any]:
    """A valid CreateExperimentRequest on ``model`` (two variants of its version, 50/50); with ``owner`` (and no
    ``deploymentId``) it targets a new deployment of the model that ``owner`` owns."""
    if owner is not None and "deploymentId" not in overrides:
        overrides["deploymentId"] = own_target(model, owner)
    now = timezone.now()
    body = {
        "name": "temperature test",
        "description": "Does a cooler temperature rate better?",
        "modelId": str(model.pk),
        "variants": [
            {"name": "control", "version": model.version, "weight": 50, "configuration": {}},
            {"name": "cool", "version": model.version, "weight": 50, "configuration": {"temperature": 0.2}},
        ],
        "traffic": {"type": "percentage", "totalPercentage": 100},
        "duration": {
            "startDate": (now + timedelta(days=1)).isoformat(),
            "endDate": (now + timedelta(days=15)).isoformat(),
        },
        "metrics": {"primary": "user_rating", "secondary": ["response_time"], "statisticalSignificance": 0.95},
        "audience": {"percentage": 100},
    }
    body.update(overrides)
    return body


def create_experiment(owner: Any, model: Any, *, start: bool = False, **overrides: Any):
    from experiments import services
    from experiments.serializers import CreateExperimentRequestSerializer
    from modelhub.roles import Grant, grant_for

    if grant_for(owner.role, "deployments.update") is not Grant.ALL:
        overrides.setdefault("owner", owner)  # an own-only developer experiments on a deployment they own
    serializer = CreateExperimentRequestSerializer(data=experiment_body(model, **overrides))
    serializer.is_valid(raise_exception=True)
    experiment = services.experiment_create(actor=owner, data=dict(serializer.validated_data))
    if start:
        experiment = services.experiment_start(experiment=experiment, actor=owner)
    return experiment
