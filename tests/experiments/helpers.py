"""Building experiments for tests."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone


def experiment_body(model: Any, **overrides: Any) -> dict[str, Any]:
    """A valid CreateExperimentRequest on ``model`` (two variants of its version, 50/50)."""
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

    serializer = CreateExperimentRequestSerializer(data=experiment_body(model, **overrides))
    serializer.is_valid(raise_exception=True)
    experiment = services.experiment_create(actor=owner, data=dict(serializer.validated_data))
    if start:
        experiment = services.experiment_start(experiment=experiment, actor=owner)
    return experiment
