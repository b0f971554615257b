"""Reads of experiments: the API's queryset and shapes, and the gateway's cached assignment plans.

Other apps use only:

* :func:`cached_plan` / :func:`load_plan` - the running experiment of a deployment as a compiled
  :class:`experiments.assignment.Plan` (the gateway, cached ``EXPERIMENTS_PLAN_CACHE_SECONDS``
  per process, cleared by :func:`invalidate_plans` when an experiment changes here).
* :data:`MAX_ATTRIBUTE_CHARS` - the longest attribute value assignment looks at (the gateway cuts to it).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import F, Prefetch, Q, QuerySet
from django.utils import timezone

from deployments import selectors as deployment_selectors
from experiments.assignment import Plan, PlanVariant
from experiments.constants import (
    DEFAULT_MIN_SAMPLE,
    DEFAULT_SIGNIFICANCE,
    DEFAULT_TUNING,
    GUARDRAIL_DEFAULTS,
    MAX_ATTRIBUTE_CHARS,  # noqa: F401 - re-exported for the gateway
    ExperimentStatus,
    TestMode,
)
from experiments.models import Experiment, ExperimentTransition, Variant, VariantSummary
from modelhub.api.dates import iso

logger = logging.getLogger(__name__)


def experiment_queryset() -> QuerySet[Experiment]:
    return (
        Experiment.objects.select_related("owner")
        .annotate(model_name=F("model__name"))
        .prefetch_related(Prefetch("variants", queryset=Variant.objects.order_by("position")))
    )


def analysis_settings(experiment: Experiment) -> dict[str, Any]:
    """The effective analysis settings: the stored extension over the documented defaults."""
    stored = experiment.analysis or {}
    return {
        "mode": stored.get("mode", TestMode.SEQUENTIAL.value),
        "minSampleSize": stored.get("minSampleSize", DEFAULT_MIN_SAMPLE),
        "sequentialTuning": stored.get("sequentialTuning", DEFAULT_TUNING),
        "guardrails": {**GUARDRAIL_DEFAULTS, **(stored.get("guardrails") or {})},
        "autoStop": bool(stored.get("autoStop", False)),
        "cuped": bool(stored.get("cuped", False)),
    }


def experiment_data(experiment: Experiment) -> dict[str, Any]:
    metrics = dict(experiment.metrics or {})
    metrics.setdefault("statisticalSignificance", DEFAULT_SIGNIFICANCE)
    return {
        "id": str(experiment.pk),
        "name": experiment.name,
        "description": experiment.description,
        "modelId": str(experiment.model_id),
        "deploymentId": str(experiment.deployment_id) if experiment.deployment_id else None,
        "status": experiment.status,
        "statusReason": experiment.status_reason,
        "variants": [
            {
                "name": v.name,
                "version": v.version,
                "weight": v.weight,
                "configuration": v.configuration,
                "modelId": str(v.model_id),
            }
            for v in experiment.variants.all()
        ],
        "traffic": experiment.traffic,
        "duration": {"startDate": iso(experiment.start_date), "endDate": iso(experiment.end_date)},
        "metrics": metrics,
        "audience": experiment.audience,
        "analysis": analysis_settings(experiment),
        "weightsVersion": experiment.weights_version,
        "owner": experiment.owner.username if experiment.owner_id and experiment.owner else None,
        "startedAt": iso(experiment.started_at) if experiment.started_at else None,
        "endedAt": iso(experiment.ended_at) if experiment.ended_at else None,
        "createdAt": iso(experiment.created_at),
        "updatedAt": iso(experiment.updated_at),
    }


def transitions(experiment: Experiment, limit: int = 100) -> list[ExperimentTransition]:
    return list(experiment.transitions.order_by("-created_at", "-id")[:limit])


def summaries(experiment_id: Any) -> dict[str, VariantSummary]:
    return {s.variant: s for s in VariantSummary.objects.filter(experiment_id=experiment_id)}


def running_for_models(model_ids: list[Any]) -> list[tuple[Any, Any, set[Any]]]:
    """``[(experiment id, started_at, {model ids})]`` of experiments whose events may be in those models' hours:
    running ones, and those ended within the raw-event retention (late events and feedback still count)."""
    recent = timezone.now() - timedelta(days=settings.ANALYTICS_RETENTION_DAYS["raw"])
    rows = (
        Experiment.objects.filter(Q(model_id__in=model_ids) | Q(variants__model_id__in=model_ids))
        .filter(Q(ended_at__isnull=True) | Q(ended_at__gte=recent))
        .exclude(status=ExperimentStatus.DRAFT)
        .distinct()
        .values_list("pk", "started_at")
    )
    out = []
    for pk, started in rows:
        models = set(Variant.objects.filter(experiment_id=pk).values_list("model_id", flat=True))
        out.append((pk, started, models))
    return out


# --- the gateway's plans -------------------------------------------------------------------------

_plans: dict[uuid.UUID, tuple[float, Plan | None, dict[str, uuid.UUID]]] = {}
_lock = threading.Lock()


def invalidate_plans() -> None:
    with _lock:
        _plans.clear()


def cached_plan(deployment_id: uuid.UUID) -> tuple[bool, Plan | None, dict[str, uuid.UUID]]:
    """``(hit, plan, routes)`` from this process's cache (no database)."""
    entry = _plans.get(deployment_id)
    if entry is None or entry[0] < time.monotonic():
        return False, None, {}
    return True, entry[1], entry[2]


def load_plan(deployment_id: uuid.UUID) -> tuple[Plan | None, dict[str, uuid.UUID]]:
    """The running experiment assigning on this deployment (compiled), and for variants serving another
    model the running deployment of that model in the same environment with the target's owner
    (``{variant name: deployment id}``);
    cached ``EXPERIMENTS_PLAN_CACHE_SECONDS``."""
    targets = deployment_selectors.invocation_targets([deployment_id])
    target = targets.get(deployment_id)
    plan, routes = None, {}
    if target is not None:
        experiment = (
            Experiment.objects.filter(status=ExperimentStatus.RUNNING, model_id=target["modelId"])
            .filter(Q(deployment_id=deployment_id) | Q(deployment__isnull=True))
            .prefetch_related(Prefetch("variants", queryset=Variant.objects.order_by("position")))
            .first()
        )
        if experiment is not None:
            variants = [
                PlanVariant(v.name, v.weight, v.version, str(v.model_id), dict(v.configuration))
                for v in experiment.variants.all()
            ]
            try:
                plan = Plan.build(
                    experiment_id=experiment.pk,
                    seed=experiment.seed,
                    traffic=experiment.traffic,
                    audience=experiment.audience,
                    variants=variants,
                    weights_version=experiment.weights_version,
                )
            except Exception:  # a stored plan the services never checked (e.g. edited in the database)
                logger.exception(
                    "experiment %s has a broken plan; deployment %s serves without it", experiment.pk, deployment_id
                )
                plan, variants = None, []
            others = {v.model_id for v in variants if v.model_id != str(target["modelId"])}
            if others:
                live = deployment_selectors.live_deployments_by_model(others)
                owner = target["ownerId"]
                for v in variants:
                    for deployment in live.get(uuid.UUID(v.model_id), []):
                        # only a deployment of the target's owner: an experiment must not send traffic to (and
                        # spend on) someone else's deployment; without one the variant is not served (not counted)
                        if (
                            deployment.environment == target["environment"]
                            and deployment.status == "running"
                            and owner is not None
                            and deployment.owner_id == owner
                        ):
                            routes[v.name] = deployment.pk
                            break
    ttl = float(getattr(settings, "EXPERIMENTS_PLAN_CACHE_SECONDS", 2.0))
    with _lock:
        _plans[deployment_id] = (time.monotonic() + ttl, plan, routes)
    return plan, routes
