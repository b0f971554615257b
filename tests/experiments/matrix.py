"""The experiments rows' objects and bodies for tests/api/test_role_matrix.py.

``{experiment}`` is a running experiment and ``{draft}`` a draft, both owned by the developer
persona, on the case's model with a production deployment of it as the target (for promote).
"""

from __future__ import annotations

from typing import Any

PLACEHOLDERS = ("experiment", "draft")


def objects(template: str, personas: dict[str, Any], model: Any) -> dict[str, Any]:
    from tests.experiments.helpers import create_experiment
    from tests.factories import DeploymentFactory

    out: dict[str, Any] = {}
    for name, running in (("experiment", True), ("draft", False)):
        if "{" + name + "}" in template:
            owner = personas["developer"]
            target = DeploymentFactory(model=model, owner=owner, environment="production")
            out[name] = create_experiment(owner, model, start=running, deploymentId=str(target.pk)).pk
    return out


def body(name: str, *, model: Any, caller: Any = None) -> dict[str, Any]:
    """``exp-body`` targets a deployment the caller owns (own-only developers may target only those)."""
    from tests.experiments.helpers import experiment_body

    if name == "exp-body":
        return experiment_body(model, owner=caller)
    raise KeyError(name)
