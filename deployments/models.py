"""Deployments of registered models and the log of their lifecycle transitions."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q

from deployments import config as config_schema
from deployments.constants import Environment


class DeploymentStatus(models.TextChoices):
    CREATING = "creating", "Creating"
    RUNNING = "running", "Running"
    SCALING = "scaling", "Scaling"
    FAILED = "failed", "Failed"
    STOPPED = "stopped", "Stopped"


# States in which a deployment holds (or is acquiring) resources; limits count these.
LIVE_STATUSES = (DeploymentStatus.CREATING, DeploymentStatus.RUNNING, DeploymentStatus.SCALING)

# The state machine: status -> the statuses it may move to. failed and stopped are final.
TRANSITIONS: dict[str, frozenset[str]] = {
    DeploymentStatus.CREATING: frozenset({DeploymentStatus.RUNNING, DeploymentStatus.FAILED, DeploymentStatus.STOPPED}),
    DeploymentStatus.RUNNING: frozenset({DeploymentStatus.SCALING, DeploymentStatus.STOPPED}),
    DeploymentStatus.SCALING: frozenset({DeploymentStatus.RUNNING, DeploymentStatus.FAILED, DeploymentStatus.STOPPED}),
    DeploymentStatus.FAILED: frozenset(),
    DeploymentStatus.STOPPED: frozenset(),
}


def _in(field: str, choices: type[models.TextChoices]) -> Q:
    return Q(**{f"{field}__in": choices.values})


class Deployment(models.Model):
    """One deployment of a registered model version into an environment: the spec's ``DeploymentConfig``.

    ``status`` changes only through :mod:`deployments.services` (conditional UPDATEs,
    each recorded as a :class:`DeploymentTransition`). ``configuration`` holds the
    nested config sections with a ``schemaVersion`` (see :mod:`deployments.config`);
    read it through :attr:`config`, which upgrades older stored versions.
    ``replicas`` is the current replica count; ``target_replicas`` is what a scaling
    in progress is moving to. Deployments are never deleted through the API: a stopped
    deployment stays for history, and the model it deploys is protected while it exists.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    model = models.ForeignKey("catalog.ModelRegistry", on_delete=models.PROTECT, related_name="deployments")
    version = models.CharField(max_length=64)
    environment = models.CharField(max_length=16, choices=Environment.choices)
    status = models.CharField(max_length=16, choices=DeploymentStatus.choices, default=DeploymentStatus.CREATING)
    status_reason = models.CharField(max_length=500, blank=True)
    replicas = models.PositiveIntegerField(default=1)
    target_replicas = models.PositiveIntegerField(null=True, blank=True)
    configuration = models.JSONField(default=dict)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="deployments"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_health_check = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=_in("environment", Environment), name="deployments_environment_valid"),
            models.CheckConstraint(condition=_in("status", DeploymentStatus), name="deployments_status_valid"),
            models.CheckConstraint(
                condition=Q(replicas__gte=1, replicas__lte=config_schema.MAX_REPLICAS),
                name="deployments_replicas_range",
            ),
            models.CheckConstraint(
                condition=Q(target_replicas__isnull=True) | Q(status=DeploymentStatus.SCALING),
                name="deployments_target_only_while_scaling",
            ),
        ]
        indexes = [
            models.Index(fields=["model", "environment", "status"], name="deployments_model_env_idx"),
            models.Index(fields=["owner", "status"], name="deployments_owner_status_idx"),
            models.Index(fields=["status"], name="deployments_status_idx"),
            models.Index(fields=["created_at"], name="deployments_created_idx"),
            models.Index(fields=["updated_at"], name="deployments_updated_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.model_id}@{self.version} ({self.environment}, {self.status})"

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES

    @property
    def config(self) -> dict[str, Any]:
        """The stored configuration upgraded to the current schema version (nested sections)."""
        return config_schema.upgrade(self.configuration or {})


class DeploymentTransition(models.Model):
    """One lifecycle step of a deployment: who, when, from, to, why (and the replicas involved).

    ``from_status`` is empty for the creation itself. ``actor`` is NULL for the
    system (the Celery tasks that finish creation and scaling).
    """

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="transitions")
    from_status = models.CharField(max_length=16, choices=DeploymentStatus.choices, blank=True)
    to_status = models.CharField(max_length=16, choices=DeploymentStatus.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    actor_username = models.CharField(max_length=150, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    replicas = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.deployment_id}: {self.from_status or '-'} -> {self.to_status}"

    @property
    def kind(self) -> str:
        """``scaling`` for the steps of a scale, ``deployment`` for the rest (dashboard activity types)."""
        if self.to_status == DeploymentStatus.SCALING or self.from_status == DeploymentStatus.SCALING:
            return "scaling"
        return "deployment"
