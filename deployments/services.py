"""Writes to deployments: create, reconfigure, scale, stop, and the lifecycle steps the tasks take.

Every status change goes through :func:`_transition`, a conditional
``UPDATE ... WHERE id = %s AND status = <the status just read>``: of two concurrent
requests or tasks that try to move the same deployment, exactly one changes it and
the other sees the new status (and either retries the check against it or answers
409). Each change is logged as a :class:`DeploymentTransition` and published as
``deployment:status`` after commit. The API, the Django admin and the Celery tasks
all come through here.

Longer than 350 lines on purpose: every write of a deployment goes through the one state machine
(``_transition``) defined here; splitting it would spread that rule over modules.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from catalog import selectors as catalog_selectors
from catalog.constants import ModelStatus
from deployments import config as config_schema
from deployments import readiness
from deployments.models import LIVE_STATUSES, TRANSITIONS, Deployment, DeploymentStatus, DeploymentTransition
from marketplace import selectors as marketplace_selectors
from modelhub import realtime
from modelhub.api.dates import iso as _iso
from modelhub.api.exceptions import AppError, Conflict, ErrorCode, InvalidRequest, NotFound
from modelhub.registry import Slot

if TYPE_CHECKING:
    from catalog.models import ModelRegistry

logger = logging.getLogger(__name__)

DEPLOYMENT_CHANGED = Slot(
    "deployments.changed",
    "Providers ``() -> None`` called after a deployment transition commits (analytics pushes a dashboard update).",
)


class DeploymentLimitExceeded(AppError):
    status_code = 409
    code = ErrorCode.DEPLOYMENT_LIMIT_EXCEEDED
    default_message = "The limit of live deployments is reached."


class IllegalTransition(Conflict):
    """409: the deployment's current status does not allow the requested change."""

    def __init__(self, current: str, requested: str, message: str | None = None):
        allowed = sorted(TRANSITIONS.get(current, ()))
        super().__init__(
            message or f"A {current} deployment cannot become {requested}.",
            details={"currentStatus": current, "requestedStatus": requested, "allowedTransitions": allowed},
        )


def _user(actor: Any) -> Any:
    return actor if getattr(actor, "pk", None) else None


# --- Configuration rules that span fields (the serializers check each field) ----------------


def check_configuration(flat: dict[str, Any], model: ModelRegistry, deployment_id: Any = None) -> None:
    """Cross-field rules of a configuration in request shape; 400 with the offending fields."""
    fields: dict[str, list[str]] = {}
    replicas = flat.get("replicas")
    scaling = {**config_schema.default_scaling(replicas or 1), **(flat.get("scaling") or {})}
    low, high = scaling.get("minReplicas"), scaling.get("maxReplicas")
    if isinstance(low, int) and isinstance(high, int) and low > high:
        fields["configuration.scaling.minReplicas"] = [f"Must not exceed maxReplicas ({high})."]
    elif isinstance(replicas, int) and isinstance(low, int) and isinstance(high, int) and not low <= replicas <= high:
        fields["configuration.replicas"] = [f"Must be between minReplicas ({low}) and maxReplicas ({high})."]
    max_tokens = flat.get("maxTokens")
    if isinstance(max_tokens, int) and max_tokens > model.max_tokens:
        fields["configuration.maxTokens"] = [f"Must not exceed the model's maxTokens ({model.max_tokens})."]
    fallbacks = flat.get("fallbacks") or []
    if fallbacks:
        known = set(Deployment.objects.filter(id__in=fallbacks).values_list("id", flat=True))
        missing = [str(f) for f in fallbacks if f not in known and str(f) not in {str(k) for k in known}]
        if missing:
            fields["configuration.fallbacks"] = [f"No deployment with id {', '.join(missing)}."]
        elif deployment_id is not None and str(deployment_id) in {str(f) for f in fallbacks}:
            fields["configuration.fallbacks"] = ["A deployment cannot be its own fallback."]
    if fields:
        raise InvalidRequest(f"The configuration is invalid: {', '.join(sorted(fields))}.", details={"fields": fields})


def _check_model(model: ModelRegistry, version: str) -> None:
    if model.status == ModelStatus.DEPRECATED:
        raise InvalidRequest(
            f"{model} is deprecated and cannot be deployed.",
            details={"fields": {"modelId": ["The model is deprecated."]}, "modelStatus": model.status},
        )
    if version != model.version:
        raise InvalidRequest(
            f"{model.name} has version {model.version!r}, not {version!r}.",
            details={"fields": {"version": [f"Must be the model's version ({model.version!r})."]}},
        )


def _check_limits(*, model: ModelRegistry, environment: str, owner: Any) -> None:
    """Counted while the model row (and the owner's row) is locked, so concurrent creates queue up."""
    live = Deployment.objects.filter(status__in=LIVE_STATUSES)
    per_model = settings.DEPLOYMENTS_MAX_LIVE_PER_MODEL_ENVIRONMENT
    count = live.filter(model=model, environment=environment).count()
    if count >= per_model:
        raise DeploymentLimitExceeded(
            f"{model} already has {count} live deployment(s) in {environment} (limit {per_model}).",
            details={
                "scope": "modelEnvironment",
                "limit": per_model,
                "current": count,
                "modelId": str(model.pk),
                "environment": environment,
            },
        )
    if owner is not None:
        per_user = settings.DEPLOYMENTS_MAX_LIVE_PER_USER
        count = live.filter(owner=owner).count()
        if count >= per_user:
            raise DeploymentLimitExceeded(
                f"You already have {count} live deployment(s) (limit {per_user}).",
                details={"scope": "user", "limit": per_user, "current": count},
            )


# --- Transitions --------------------------------------------------------------------------


def _record(
    deployment: Deployment, *, from_status: str, to_status: str, actor: Any, reason: str
) -> DeploymentTransition:
    """Log the step and publish ``deployment:status`` (sent after commit)."""
    user = _user(actor)
    entry = DeploymentTransition.objects.create(
        deployment=deployment,
        from_status=from_status,
        to_status=to_status,
        actor=user,
        actor_username=getattr(user, "username", "") or "",
        reason=reason[:500],
        replicas=deployment.target_replicas or deployment.replicas,
    )
    details: dict[str, Any] = {
        "from": from_status or None,
        "to": to_status,
        "reason": reason[:500],
        "replicas": deployment.replicas,
        "modelId": str(deployment.model_id),
        "environment": deployment.environment,
        "actor": entry.actor_username or None,
    }
    if deployment.target_replicas is not None:
        details["targetReplicas"] = deployment.target_replicas
    realtime.publish(
        "deployment:status",
        {
            "deploymentId": str(deployment.pk),
            "status": to_status,
            "timestamp": _iso(entry.created_at),
            "details": details,
        },
    )
    # activeDeployments and recentActivity changed: apps above (analytics' dashboard) are told after commit.
    transaction.on_commit(DEPLOYMENT_CHANGED.notify)
    return entry


def _transition(
    deployment_id: Any,
    *,
    to_status: str,
    actor: Any,
    reason: str = "",
    only_from: frozenset[str] | None = None,
    unchanged_if: frozenset[str] = frozenset(),
    updates: dict[str, Any] | None = None,
) -> Deployment:
    """Move a deployment to ``to_status`` if the state machine allows it from its current status.

    ``only_from`` narrows the legal sources further (a task finishing creation only moves a
    ``creating`` deployment); a deployment already in a status of ``unchanged_if`` is
    returned as it is (idempotent requests). The UPDATE is conditional on the status read
    just before, so a concurrent change makes it match no row; the check is then repeated
    against the new status.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("_transition must run inside transaction.atomic")
    for _ in range(5):
        current = Deployment.objects.filter(pk=deployment_id).values_list("status", flat=True).first()
        if current is None:
            raise NotFound("Deployment not found.", code=ErrorCode.DEPLOYMENT_NOT_FOUND)
        if current in unchanged_if:
            return Deployment.objects.select_related("model").get(pk=deployment_id)
        if to_status not in TRANSITIONS[current] or (only_from is not None and current not in only_from):
            raise IllegalTransition(current, to_status)
        fields: dict[str, Any] = {"status": to_status, "status_reason": reason[:500], "updated_at": timezone.now()}
        if to_status == DeploymentStatus.RUNNING:
            fields["replicas"] = Coalesce(F("target_replicas"), F("replicas"))
        if to_status != DeploymentStatus.SCALING:
            fields["target_replicas"] = None
        fields.update(updates or {})
        if Deployment.objects.filter(pk=deployment_id, status=current).update(**fields):
            deployment = Deployment.objects.select_related("model").get(pk=deployment_id)
            _record(deployment, from_status=current, to_status=to_status, actor=actor, reason=reason)
            return deployment
    raise Conflict("The deployment is changing too fast; try again.")  # pragma: no cover - needs 5 lost races


def _queue(task: Any, deployment: Deployment) -> None:
    """Queue a lifecycle task after commit, with a time limit that fits its readiness probe."""
    networking = deployment.config.get("networking", {})
    budget = readiness.max_duration(networking)
    deployment_id = str(deployment.pk)
    transaction.on_commit(
        lambda: task.apply_async(args=[deployment_id], soft_time_limit=budget + 30, time_limit=budget + 60)
    )


# --- Services ----------------------------------------------------------------------------


@transaction.atomic
def deployment_create(
    *, actor: Any, model_id: Any, version: str, environment: str, configuration: dict[str, Any]
) -> Deployment:
    """Create a deployment (``creating``) and queue its readiness check after commit.

    The owner's row and the model's row are locked (in that order, everywhere) before
    the live deployments are counted, so two concurrent creates cannot both slip under
    a limit on PostgreSQL; SQLite serialises writing transactions anyway.
    """
    from deployments import tasks

    owner = _user(actor)
    if owner is not None:
        list(type(owner).objects.select_for_update().filter(pk=owner.pk).values_list("pk", flat=True))
    model = catalog_selectors.model_locked(model_id)
    if model is None:
        raise NotFound(
            f"Model {model_id} not found.", code=ErrorCode.MODEL_NOT_FOUND, details={"modelId": str(model_id)}
        )
    _check_model(model, version)
    # A listed paid or approval-required model needs an active entitlement (403 ENTITLEMENT_REQUIRED).
    marketplace_selectors.check_deployment_entitlement(user=owner, model_id=model.pk)
    check_configuration(configuration, model)
    _check_limits(model=model, environment=environment, owner=owner)
    deployment = Deployment.objects.create(
        model=model,
        version=version,
        environment=environment,
        replicas=configuration["replicas"],
        configuration=config_schema.nest(configuration),
        owner=owner,
        status=DeploymentStatus.CREATING,
        status_reason="Waiting for the readiness check.",
    )
    _record(deployment, from_status="", to_status=DeploymentStatus.CREATING, actor=actor, reason="Deployment created.")
    _queue(tasks.deployment_become_ready, deployment)
    return deployment


@transaction.atomic
def deployment_update(
    *, deployment: Deployment, actor: Any, configuration: dict[str, Any], partial: bool, reason: str = ""
) -> Deployment:
    """Replace (PUT) or merge into (PATCH, see :func:`deployments.config.merge`) the configuration.

    Only a live deployment can be reconfigured (409 otherwise). ``replicas`` may be
    repeated but not changed here: that is a scale, with its own lifecycle step. With a
    ``reason`` (another app changing it: an experiment's promotion) the change is also a step of
    the deployment's own trail (status unchanged) and a ``deployment:status`` event.
    """
    locked = Deployment.objects.select_for_update().select_related("model").get(pk=deployment.pk)
    if locked.status not in LIVE_STATUSES:
        raise Conflict(
            f"A {locked.status} deployment cannot be reconfigured.",
            details={"currentStatus": locked.status, "allowedStatuses": [str(s) for s in LIVE_STATUSES]},
        )
    current = config_schema.flatten(locked.config, locked.replicas)
    new = config_schema.merge(current, configuration) if partial else dict(configuration)
    if new.get("replicas") != locked.replicas:
        raise InvalidRequest(
            "replicas cannot be changed by an update; use POST /deployments/{id}/scale.",
            details={
                "fields": {
                    "configuration.replicas": [f"Must be the current replicas ({locked.replicas}); scale instead."]
                }
            },
        )
    check_configuration(new, locked.model, locked.pk)
    locked.configuration = config_schema.nest(new)
    locked.save(update_fields=["configuration", "updated_at"])
    if reason:
        _record(locked, from_status=locked.status, to_status=locked.status, actor=actor, reason=reason)
    return locked


@transaction.atomic
def deployment_scale(*, deployment: Deployment, actor: Any, replicas: int, reason: str = "") -> Deployment:
    """``running -> scaling`` with the target replicas; a task finishes it (``-> running``).

    Scaling a running deployment to the replicas it has changes nothing and succeeds.
    """
    from deployments import tasks

    locked = Deployment.objects.select_for_update().select_related("model").get(pk=deployment.pk)
    scaling = locked.config["runtime"]["scaling"]
    low, high = scaling["minReplicas"], scaling["maxReplicas"]
    if not low <= replicas <= high:
        raise InvalidRequest(
            f"replicas must be between minReplicas ({low}) and maxReplicas ({high}).",
            details={"fields": {"replicas": [f"Must be between {low} and {high}."]}},
        )
    if locked.status == DeploymentStatus.RUNNING and replicas == locked.replicas:
        return locked
    if replicas > locked.replicas:  # scaling up needs the entitlement still; scaling down never does
        marketplace_selectors.check_deployment_entitlement(user=locked.owner, model_id=locked.model_id)
    message = reason or f"Scaling from {locked.replicas} to {replicas} replica(s)."
    scaled = _transition(
        locked.pk,
        to_status=DeploymentStatus.SCALING,
        actor=actor,
        reason=message,
        updates={"target_replicas": replicas},
    )
    _queue(tasks.deployment_finish_scaling, scaled)
    return scaled


@transaction.atomic
def deployment_stop(*, deployment: Deployment, actor: Any, reason: str = "") -> Deployment:
    """Stop a live deployment and keep it for history. Stopping a stopped or failed one changes nothing."""
    return _transition(
        deployment.pk,
        to_status=DeploymentStatus.STOPPED,
        actor=actor,
        reason=reason or "Stopped.",
        unchanged_if=frozenset({DeploymentStatus.STOPPED, DeploymentStatus.FAILED}),
    )


def deployment_check_readiness(*, deployment_id: Any, expected_status: str) -> Deployment | None:
    """What the lifecycle tasks do: probe, then ``expected_status -> running`` or ``-> failed``.

    Idempotent: a deployment that is no longer in ``expected_status`` (the task was
    delivered twice, or someone stopped it meanwhile) is left alone and None returned.
    The probe runs outside any transaction - no row is locked while the network is waited on.
    """
    deployment = Deployment.objects.filter(pk=deployment_id).first()
    if deployment is None or deployment.status != expected_status:
        return None
    result = readiness.check(deployment.config.get("networking", {}))
    to_status = DeploymentStatus.RUNNING if result.ready else DeploymentStatus.FAILED
    try:
        with transaction.atomic():
            return _transition(
                deployment.pk,
                to_status=to_status,
                actor=None,
                reason=result.reason,
                only_from=frozenset({expected_status}),
                updates={"last_health_check": timezone.now()},
            )
    except IllegalTransition as exc:  # moved on while we probed (e.g. stopped): nothing to do
        logger.info("deployment %s left %s during its readiness check: %s", deployment_id, expected_status, exc.details)
        return None


def deployments_enforce_entitlements(*, now: Any = None) -> list[Any]:
    """Stop live deployments of listed paid or approval-required models whose owner has had no active
    entitlement (their own or a hub-wide one) for longer than ``MARKETPLACE_ENTITLEMENT_GRACE_HOURS``
    (README "Marketplace"); each stop is an ordinary transition with its ``deployment:status`` event.
    Safe to run twice: a stopped deployment is no longer live, and stopping is idempotent."""
    from datetime import timedelta

    now = now or timezone.now()
    grace = timedelta(hours=settings.MARKETPLACE_ENTITLEMENT_GRACE_HOURS)
    live = list(Deployment.objects.filter(status__in=LIVE_STATUSES).values_list("id", "owner_id", "model_id"))
    lapses = marketplace_selectors.access_lapses([(owner, model) for _, owner, model in live], now=now)
    stopped = []
    for deployment_id, owner_id, model_id in live:
        since = lapses.get((owner_id, model_id))
        if since is None or now - since < grace:
            continue
        with transaction.atomic():
            deployment = Deployment.objects.filter(pk=deployment_id).first()
            if deployment is None:
                continue
            deployment_stop(
                deployment=deployment,
                actor=None,
                reason=f"Marketplace entitlement ended at {_iso(since)}; the grace period is over.",
            )
        stopped.append(deployment_id)
    return stopped
