"""Experiments, their variants, the audit trail, sticky assignments and the result aggregates."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from experiments.constants import ExperimentStatus


def _seed() -> str:
    return uuid.uuid4().hex


class Experiment(models.Model):
    """The spec's ``CreateExperimentRequest`` plus its lifecycle.

    ``status`` changes only through :mod:`experiments.services` (conditional UPDATEs, each an
    :class:`ExperimentTransition`). ``seed`` keys the assignment hashes; it never changes, so a
    user keeps their variant for the experiment's life. ``deployment`` is the target the gateway
    assigns on and ``/promote`` changes (an extension; empty = every deployment of the model).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, max_length=5000)
    model = models.ForeignKey("catalog.ModelRegistry", on_delete=models.PROTECT, related_name="experiments")
    deployment = models.ForeignKey(
        "deployments.Deployment", on_delete=models.PROTECT, null=True, blank=True, related_name="experiments"
    )
    status = models.CharField(
        max_length=16,
        choices=[(s.value, s.value) for s in ExperimentStatus],
        default=ExperimentStatus.DRAFT,
    )
    status_reason = models.CharField(max_length=500, blank=True)
    seed = models.CharField(max_length=64, default=_seed, editable=False)
    traffic = models.JSONField(default=dict)  # {type, totalPercentage, rules?}
    start_date = models.DateTimeField()
    end_date = models.DateTimeField()
    metrics = models.JSONField(default=dict)  # {primary, secondary, statisticalSignificance}
    audience = models.JSONField(default=dict)  # {percentage, filters?}
    analysis = models.JSONField(default=dict)  # extension: {mode, minSampleSize, tuning, guardrails, autoStop}
    weights_version = models.PositiveIntegerField(default=1)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="experiments"
    )
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    aggregated_at = models.DateTimeField(null=True, blank=True)
    pre_period_at = models.DateTimeField(null=True, blank=True)  # CUPED: when the pre-period sums were taken
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=[s.value for s in ExperimentStatus]), name="experiments_status_valid"
            ),
            models.CheckConstraint(condition=Q(end_date__gt=models.F("start_date")), name="experiments_dates_order"),
            # At most one running experiment per model (the overlap rule, README "Experiments").
            models.UniqueConstraint(
                fields=["model"], condition=Q(status=ExperimentStatus.RUNNING), name="experiments_one_running_per_model"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "start_date"], name="experiments_status_start_idx"),
            models.Index(fields=["status", "end_date"], name="experiments_status_end_idx"),
            models.Index(fields=["model", "status"], name="experiments_model_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"


class Variant(models.Model):
    """One arm. The first variant (position 0) is the control. ``model`` is the model it serves
    (the experiment's unless the variant names another - an extension to compare providers)."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="variants")
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=64)
    version = models.CharField(max_length=64)
    model = models.ForeignKey("catalog.ModelRegistry", on_delete=models.PROTECT, related_name="+")
    weight = models.FloatField()
    configuration = models.JSONField(default=dict)

    class Meta:
        ordering = ["experiment", "position"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "name"], name="experiments_variant_name_unique"),
            models.UniqueConstraint(fields=["experiment", "position"], name="experiments_variant_position_unique"),
            models.CheckConstraint(condition=Q(weight__gte=0, weight__lte=100), name="experiments_variant_weight"),
        ]

    def __str__(self) -> str:
        return f"{self.experiment_id}:{self.name}"


class ExperimentTransition(models.Model):
    """One lifecycle step or promotion: who, when, from, to, why (``actor`` NULL for the system)."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="transitions")
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16)
    action = models.CharField(max_length=32, default="transition")  # transition | update | promote
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    actor_username = models.CharField(max_length=150, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.experiment_id}: {self.from_status or '-'} -> {self.to_status} ({self.action})"


class Assignment(models.Model):
    """A unit's variant, stored on first exposure (from the tagged usage events and from /assign),
    with the weights version it was drawn under. Never updated: the first exposure sticks."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="assignments")
    unit_id = models.CharField(max_length=255)
    variant = models.CharField(max_length=64)
    weights_version = models.PositiveIntegerField(default=1)
    assigned_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["experiment", "unit_id"], name="experiments_assignment_unique")]

    def __str__(self) -> str:
        return f"{self.experiment_id}:{self.unit_id} -> {self.variant}"


class ExperimentUnitHour(models.Model):
    """Per experiment × variant × unit × hour sums of the tagged usage events. Recomputed from the
    hour's raw rows and upserted (never incremented), so recomputing twice gives the same rows."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="+", db_index=False)
    variant = models.CharField(max_length=64)
    unit_id = models.CharField(max_length=255)
    hour = models.DateTimeField()
    requests = models.BigIntegerField(default=0)
    successes = models.BigIntegerField(default=0)
    latency_sum = models.FloatField(default=0)
    cost_sum = models.FloatField(default=0)
    tokens_sum = models.BigIntegerField(default=0)
    rated = models.BigIntegerField(default=0)
    rating_sum = models.BigIntegerField(default=0)
    feedback = models.BigIntegerField(default=0)
    accepted = models.BigIntegerField(default=0)
    scored = models.BigIntegerField(default=0)
    confidence_sum = models.FloatField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "hour", "variant", "unit_id"], name="experiments_unit_hour_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.experiment_id}:{self.variant}:{self.unit_id}@{self.hour:%Y-%m-%dT%H}"


class VariantHourSketch(models.Model):
    """The latency sketch (analytics' DDSketch counts) of one variant's events in one hour."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="+", db_index=False)
    variant = models.CharField(max_length=64)
    hour = models.DateTimeField()
    sketch = models.JSONField(default=dict)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["experiment", "hour", "variant"], name="experiments_sketch_unique")
        ]

    def __str__(self) -> str:
        return f"{self.experiment_id}:{self.variant}@{self.hour:%Y-%m-%dT%H}"


class VariantSummary(models.Model):
    """Per variant: units, and for every per-unit sum s its Σs, Σs² and the cross sums the ratio metrics
    need, plus the merged latency sketch - recomputed from the unit-hour rows after each aggregation.
    The results endpoint reads only these rows."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="summaries", db_index=False)
    variant = models.CharField(max_length=64)
    units = models.BigIntegerField(default=0)
    sums = models.JSONField(default=dict)
    sketch = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["experiment", "variant"], name="experiments_summary_unique")]

    def __str__(self) -> str:
        return f"{self.experiment_id}:{self.variant} ({self.units} units)"


class PreUnit(models.Model):
    """CUPED's covariate: a unit's sums over the pre-period (``PRE_PERIOD_DAYS`` before the start) of the
    experiment's models' untagged events; taken once, at the first aggregation after the start."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="+", db_index=False)
    unit_id = models.CharField(max_length=255)
    requests = models.BigIntegerField(default=0)
    successes = models.BigIntegerField(default=0)
    latency_sum = models.FloatField(default=0)
    cost_sum = models.FloatField(default=0)
    tokens_sum = models.BigIntegerField(default=0)
    rated = models.BigIntegerField(default=0)
    rating_sum = models.BigIntegerField(default=0)
    feedback = models.BigIntegerField(default=0)
    accepted = models.BigIntegerField(default=0)
    scored = models.BigIntegerField(default=0)
    confidence_sum = models.FloatField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["experiment", "unit_id"], name="experiments_preunit_unique")]

    def __str__(self) -> str:
        return f"{self.experiment_id}:{self.unit_id} (pre-period)"


class DirtyHour(models.Model):
    """An (experiment, hour) whose aggregates must be recomputed (marked by the analytics rollup)."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="+", db_index=False)
    hour = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["experiment", "hour"], name="experiments_dirty_unique")]

    def __str__(self) -> str:
        return f"{self.experiment_id}@{self.hour:%Y-%m-%dT%H}"
