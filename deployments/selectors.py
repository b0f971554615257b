"""Reads of deployments: the API's querysets and the plain data other apps use.

Other apps call only these (``catalog`` for a model's deployments, ``analytics`` for
the dashboard and for validating ``deploymentId`` s):

* :func:`deployments_for_model` - ``ModelDetailResponse.deployments``
* :func:`active_deployment_count` - ``DashboardResponse.summary.activeDeployments``
* :func:`recent_activity` - ``DashboardResponse.recentActivity`` (deployment and scaling items)
* :func:`deployment_homes` - which of some ids are deployments, of which model
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db.models import Count, F, QuerySet

from deployments.models import LIVE_STATUSES, Deployment, DeploymentStatus, DeploymentTransition
from modelhub.api.dates import iso as _iso

if TYPE_CHECKING:
    from catalog.models import ModelRegistry


def deployment_queryset() -> QuerySet[Deployment]:
    """What every API read starts from: the model's name and the owner's username as annotations (no N+1)."""
    return Deployment.objects.annotate(model_name=F("model__name"), owner_username=F("owner__username"))


def deployment_endpoint(deployment: Any) -> str:
    """Where the deployment is reached on this hub (``settings.PUBLIC_BASE_URL``)."""
    return f"{settings.PUBLIC_BASE_URL}/api/v1/modelhub/deployments/{deployment.pk}"


def deployments_for_model(model: ModelRegistry, *, limit: int = 100) -> list[dict[str, Any]]:
    """The model's deployments, newest first (at most ``limit``), as ``ModelDetailResponse.deployments``.

    ``lastUsed`` is None here; analytics fills it from usage events.
    """
    rows = (
        Deployment.objects.filter(model=model)
        .order_by("-created_at", "-id")
        .values_list("id", "environment", "status", "created_at")[:limit]
    )
    return [
        {"id": str(pk), "environment": environment, "status": status, "createdAt": _iso(created), "lastUsed": None}
        for pk, environment, status, created in rows
    ]


def active_deployment_count() -> int:
    """Deployments that are creating, running or scaling."""
    return Deployment.objects.filter(status__in=LIVE_STATUSES).count()


def _activity_message(entry: DeploymentTransition, model_label: str) -> str:
    where = f"{model_label} ({entry.deployment.environment})"
    by = f" by {entry.actor_username}" if entry.actor_username else ""
    if not entry.from_status:
        text = f"Deployment of {where} created{by}"
    elif entry.to_status == DeploymentStatus.SCALING:
        text = f"{where} scaling to {entry.replicas} replica(s){by}"
    elif entry.from_status == DeploymentStatus.SCALING and entry.to_status == DeploymentStatus.RUNNING:
        text = f"{where} scaled to {entry.replicas} replica(s)"
    elif entry.from_status == entry.to_status:  # reconfigured by another app (an experiment's promotion)
        text = f"{where} reconfigured{by}: {entry.reason}"
    else:
        text = f"{where} {entry.from_status} → {entry.to_status}{by}"
    if entry.reason and entry.to_status in (DeploymentStatus.FAILED, DeploymentStatus.STOPPED):
        text += f": {entry.reason}"
    return text[:500]


def recent_activity(limit: int = 20) -> list[dict[str, Any]]:
    """The latest transitions, newest first, as ``DashboardResponse.recentActivity`` items."""
    entries = list(
        DeploymentTransition.objects.select_related("deployment")
        .annotate(model_name=F("deployment__model__name"), model_version=F("deployment__model__version"))
        .order_by("-created_at", "-id")[: max(0, limit)]
    )
    return [
        {
            "timestamp": _iso(entry.created_at),
            "type": entry.kind,
            "modelId": str(entry.deployment.model_id),
            "message": _activity_message(entry, f"{entry.model_name}@{entry.model_version}"),
        }
        for entry in entries
    ]


def _uuids(ids: Iterable[Any]) -> set[uuid.UUID]:
    """The well-formed deployment ids among ``ids`` (malformed ones are ignored)."""
    valid: set[uuid.UUID] = set()
    for raw in ids:
        try:
            valid.add(raw if isinstance(raw, uuid.UUID) else uuid.UUID(str(raw)))
        except (ValueError, AttributeError, TypeError):
            continue
    return valid


def deployment_homes(ids: Iterable[Any]) -> dict[uuid.UUID, tuple[uuid.UUID, str]]:
    """``{id: (model id, environment)}`` for those of ``ids`` that are deployments (malformed ids are ignored).

    What usage-event ingestion and the performance query check a ``deploymentId`` against.
    """
    valid = _uuids(ids)
    if not valid:
        return {}
    rows = Deployment.objects.filter(id__in=valid).values_list("id", "model_id", "environment")
    return {pk: (model_id, environment) for pk, model_id, environment in rows}


def fill_model_detail(model: ModelRegistry, detail: dict[str, Any], now: Any) -> None:
    """``ModelDetailResponse.deployments`` (through ``catalog.selectors.MODEL_DETAIL``)."""
    detail["deployments"] = deployments_for_model(model)


def live_deployments_by_model(model_ids: Iterable[Any]) -> dict[Any, list[Deployment]]:
    """Running or scaling deployments of these models, per model id (what simulated traffic is sent to)."""
    out: dict[Any, list[Deployment]] = {}
    live = (DeploymentStatus.RUNNING, DeploymentStatus.SCALING)
    for deployment in Deployment.objects.filter(model_id__in=list(model_ids), status__in=live):
        out.setdefault(deployment.model_id, []).append(deployment)
    return out


def invocation_targets(ids: Iterable[Any]) -> dict[uuid.UUID, dict[str, Any]]:
    """What the gateway needs to call each of these deployments (unknown or malformed ids are left out):
    ``{id: {"modelId", "version", "environment", "status", "ownerId", "config"}}`` - ``config`` is the
    current-version nested configuration (:attr:`Deployment.config`)."""
    valid = _uuids(ids)
    if not valid:
        return {}
    return {
        d.pk: {
            "modelId": d.model_id,
            "version": d.version,
            "environment": d.environment,
            "status": d.status,
            "ownerId": d.owner_id,
            "config": d.config,
        }
        for d in Deployment.objects.filter(id__in=valid)
    }


def owned_deployment_ids(owner_id: Any, ids: Iterable[Any]) -> set[uuid.UUID]:
    """Which of ``ids`` ``owner_id`` created (the console shows own-only actions on those)."""
    return set(Deployment.objects.filter(id__in=_uuids(ids), owner_id=owner_id).values_list("id", flat=True))


def fill_entitlement_details(items: list[dict[str, Any]], user: Any) -> None:
    """``activeDeployments`` of ``GET /marketplace/my-models`` items: the caller's live deployments of
    each model (through ``marketplace.selectors.ENTITLEMENT_DETAILS``)."""
    model_ids = {item["modelId"] for item in items}
    if not model_ids or not getattr(user, "pk", None):
        return
    rows = (
        Deployment.objects.filter(owner=user, model_id__in=model_ids, status__in=LIVE_STATUSES)
        .values_list("model_id")
        .annotate(n=Count("pk"))
        .values_list("model_id", "n")
    )
    counts = {str(model_id): n for model_id, n in rows}
    for item in items:
        item["activeDeployments"] = counts.get(item["modelId"], 0)
