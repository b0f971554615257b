"""Celery tasks of the deployment lifecycle; queued by the services after commit, taking ids.

Both are safe to run twice (Celery redelivers with ``acks_late``): they act only on a
deployment still in the status they were queued for, through the same conditional
transition the API uses.
"""

from __future__ import annotations

from celery import shared_task

from deployments import services
from deployments.models import DeploymentStatus


@shared_task(name="deployments.become_ready", acks_late=True, ignore_result=True)
def deployment_become_ready(deployment_id: str) -> str | None:
    """``creating -> running`` once the readiness check passes, ``-> failed`` (with the reason) if not."""
    done = services.deployment_check_readiness(deployment_id=deployment_id, expected_status=DeploymentStatus.CREATING)
    return done.status if done else None


@shared_task(name="deployments.finish_scaling", acks_late=True, ignore_result=True)
def deployment_finish_scaling(deployment_id: str) -> str | None:
    """``scaling -> running`` with the target replicas once ready again, ``-> failed`` if not."""
    done = services.deployment_check_readiness(deployment_id=deployment_id, expected_status=DeploymentStatus.SCALING)
    return done.status if done else None


@shared_task(name="deployments.enforce_entitlements", acks_late=True, ignore_result=True)
def deployments_enforce_entitlements() -> int:
    """Beat (every 5 minutes): stop deployments whose marketplace entitlement ended past the grace period."""
    return len(services.deployments_enforce_entitlements())
