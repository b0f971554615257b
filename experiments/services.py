"""Writes to experiments: create, change, delete, the lifecycle (start, stop, complete, promote),
assignment through the API, and the result aggregates.

Every status change goes through :func:`_transition`, a conditional
``UPDATE ... WHERE id = %s AND status = <the status just read>`` (as deployments do): of two
concurrent requests or tasks, exactly one moves the experiment, the other sees the new status.
Each change is an :class:`ExperimentTransition` and an ``experiment:update`` event after commit.

The result aggregates live in :mod:`experiments.aggregates` and are re-exported here. Longer than 350
lines on purpose: the definition rules and the state machine judge the same stored experiment.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from catalog import selectors as catalog_selectors
from deployments import selectors as deployment_selectors
from deployments import services as deployment_services
from experiments import selectors
from experiments.assignment import Plan, PlanVariant, RuleError, compile_rule
from experiments.constants import MAX_DURATION_DAYS, TRANSITIONS, ExperimentStatus, TrafficType
from experiments.models import (
    Assignment,
    Experiment,
    ExperimentTransition,
    ExperimentUnitHour,
    Variant,
    VariantHourSketch,
)
from modelhub import realtime
from modelhub.api.exceptions import Conflict, ErrorCode, Forbidden, InvalidParameter, InvalidRequest, NotFound
from modelhub.roles import Grant, grant_for

logger = logging.getLogger(__name__)

# Parameter defaults a variant's configuration may set (the deployment's names) and their ranges.
PARAMETERS: dict[str, tuple[float, float]] = {
    "temperature": (0, 2),
    "topP": (0, 1),
    "topK": (1, 1000),
    "maxTokens": (1, 10_000_000),
    "frequencyPenalty": (-2, 2),
    "presencePenalty": (-2, 2),
}
RUNNING_CHANGES = (
    "name",
    "description",
    "duration.endDate",
    "traffic.totalPercentage (raise only)",
    "audience.percentage (raise only)",
    "metrics.secondary",
    "metrics.statisticalSignificance",
    "analysis (not mode)",
)


def _user(actor: Any) -> Any:
    return actor if getattr(actor, "pk", None) else None


def _invalid(fields: dict[str, list[str]], message: str | None = None) -> InvalidRequest:
    return InvalidRequest(
        message or f"The experiment is invalid: {', '.join(sorted(fields))}.", details={"fields": fields}
    )


# --- the definition ----------------------------------------------------------------------------


def _variant_model(experiment_model: Any, variant: dict[str, Any], index: int, fields: dict) -> Any:
    """The registration a variant serves: its ``modelId``'s, else the experiment model's name at ``version``."""
    version = variant["version"]
    if variant.get("modelId"):
        model = catalog_selectors.model_by_id(variant["modelId"])
        if model is None:
            raise NotFound(
                f"Model {variant['modelId']} not found.",
                code=ErrorCode.MODEL_NOT_FOUND,
                details={"fields": {f"variants[{index}].modelId": ["No such model."]}},
            )
    else:
        model = (
            catalog_selectors.model_queryset().filter(name=experiment_model.name, version=version).first()
            if version != experiment_model.version
            else experiment_model
        )
        if model is None:
            fields[f"variants[{index}].version"] = [f"{experiment_model.name} has no version {version!r}."]
            return None
    if model.version != version:
        fields[f"variants[{index}].version"] = [f"Must be the version of model {model.pk} ({model.version!r})."]
    return model


def _check_configuration(configuration: dict[str, Any], model: Any, prefix: str, fields: dict) -> None:
    if len(configuration) > 20:
        fields[prefix] = ["At most 20 parameters."]
        return
    for key, value in configuration.items():
        if key == "stopSequences":
            if not (isinstance(value, list) and len(value) <= 16 and all(isinstance(s, str) and s for s in value)):
                fields[f"{prefix}.stopSequences"] = ["Up to 16 non-empty strings."]
            continue
        if key not in PARAMETERS:
            fields[f"{prefix}.{str(key)[:64]}"] = [
                f"Unknown parameter; known: {', '.join([*PARAMETERS, 'stopSequences'])}."
            ]
            continue
        low, high = PARAMETERS[key]
        if key == "maxTokens":
            high = min(high, model.max_tokens) if model is not None else high
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            fields[f"{prefix}.{key}"] = [f"A number between {low} and {high}."]
        elif key in ("topK", "maxTokens") and not float(value).is_integer():
            fields[f"{prefix}.{key}"] = ["An integer."]


def check_definition(data: dict[str, Any]) -> dict[str, Any]:
    """Cross-field rules of a whole request-shaped definition; the normalised pieces, or 400."""
    model = catalog_selectors.model_by_id(data["modelId"])
    if model is None:
        raise NotFound(
            f"Model {data['modelId']} not found.",
            code=ErrorCode.MODEL_NOT_FOUND,
            details={"modelId": str(data["modelId"])},
        )
    fields: dict[str, list[str]] = {}
    variants = data["variants"]
    names = [v["name"] for v in variants]
    if len(set(names)) != len(names):
        fields["variants"] = ["Variant names must be unique."]
    if abs(sum(v["weight"] for v in variants) - 100) > 1e-6:
        fields["variants.weight"] = [f"Weights must sum to 100 (they sum to {sum(v['weight'] for v in variants):g})."]
    resolved = []
    for i, variant in enumerate(variants):
        variant_model = _variant_model(model, variant, i, fields)
        _check_configuration(variant.get("configuration") or {}, variant_model, f"variants[{i}].configuration", fields)
        resolved.append((variant, variant_model))
    duration = data["duration"]
    start, end = duration["startDate"], duration["endDate"]
    if end <= start:
        fields["duration.endDate"] = ["Must be after startDate."]
    elif end - start > timedelta(days=MAX_DURATION_DAYS):
        fields["duration.endDate"] = [f"At most {MAX_DURATION_DAYS} days after startDate."]
    metrics = data["metrics"]
    if metrics["primary"] in metrics.get("secondary", []):
        fields["metrics.secondary"] = ["Must not repeat the primary metric."]
    traffic = data["traffic"]
    rules = traffic.get("rules") or []
    if traffic["type"] == TrafficType.RULES_BASED and not rules:
        fields["traffic.rules"] = ["rules-based traffic needs at least one rule."]
    deployment = None
    if data.get("deploymentId"):
        target = deployment_selectors.invocation_targets([data["deploymentId"]]).get(data["deploymentId"])
        if target is None:
            raise NotFound(
                f"Deployment {data['deploymentId']} not found.",
                code=ErrorCode.DEPLOYMENT_NOT_FOUND,
                details={"fields": {"deploymentId": ["No such deployment."]}},
            )
        if str(target["modelId"]) != str(model.pk):
            fields["deploymentId"] = ["Must be a deployment of modelId."]
        deployment = data["deploymentId"]
    if fields:
        raise _invalid(fields)
    for i, rule in enumerate(rules):
        if rule["variantName"] not in names:
            raise InvalidParameter(
                f"traffic.rules[{i}] names no variant.",
                details={
                    "fields": {f"traffic.rules[{i}].variantName": [f"One of {', '.join(names)}."]},
                    "ruleIndex": i,
                },
            )
        try:
            compile_rule(rule["condition"])
        except RuleError as exc:
            raise InvalidParameter(
                f"traffic.rules[{i}].condition is not a valid rule: {exc}",
                details={"fields": {f"traffic.rules[{i}].condition": [str(exc)]}, "ruleIndex": i},
            ) from None
    return {"model": model, "deployment_id": deployment, "variants": resolved}


def _owns_target(actor: Any, deployment_owner_id: Any) -> bool:
    """May ``actor`` change a deployment owned by ``deployment_owner_id`` (its ``deployments.update`` grant)?"""
    grant = grant_for(getattr(actor, "role", None), "deployments.update")
    if grant is Grant.ALL:
        return True
    return grant is Grant.OWN and deployment_owner_id is not None and str(deployment_owner_id) == str(actor.pk)


def check_target(actor: Any, deployment_id: Any) -> None:
    """An experiment changes what its target deployment serves, so the actor must be allowed to change that
    deployment: an own-only ``deployments.update`` grant (developers) needs a ``deploymentId`` they own; no
    ``deploymentId`` means every deployment of the model, which only all-deployments roles may target.
    The system (no actor: the scheduler) is not checked."""
    if _user(actor) is None:
        return
    if grant_for(getattr(actor, "role", None), "deployments.update") is Grant.ALL:
        return
    if not deployment_id:
        raise Forbidden(
            "Name a deploymentId you own: without one the experiment applies to every deployment of the model.",
            details={"fields": {"deploymentId": ["Required for your role (deployments.update: own only)."]}},
        )
    target = deployment_selectors.invocation_targets([deployment_id]).get(uuid.UUID(str(deployment_id)))
    if target is None or not _owns_target(actor, target["ownerId"]):
        raise Forbidden(
            "You may only experiment on deployments you own.",
            details={"fields": {"deploymentId": ["Not a deployment you may change."]}},
        )


def request_shape(experiment: Experiment) -> dict[str, Any]:
    """The stored experiment as a request body (what PATCH merges into)."""
    return {
        "name": experiment.name,
        "description": experiment.description,
        "modelId": experiment.model_id,
        "deploymentId": experiment.deployment_id,
        "variants": [
            {
                "name": v.name,
                "version": v.version,
                "weight": v.weight,
                "configuration": v.configuration,
                "modelId": v.model_id,
            }
            for v in experiment.variants.order_by("position")
        ],
        "traffic": dict(experiment.traffic),
        "duration": {"startDate": experiment.start_date, "endDate": experiment.end_date},
        "metrics": dict(experiment.metrics),
        "audience": dict(experiment.audience),
        "analysis": dict(experiment.analysis or {}),
    }


def _store(experiment: Experiment, data: dict[str, Any], checked: dict[str, Any]) -> None:
    experiment.name = data["name"]
    experiment.description = data["description"]
    experiment.model = checked["model"]
    experiment.deployment_id = checked["deployment_id"]
    traffic = dict(data["traffic"])
    traffic.setdefault("rules", [])
    experiment.traffic = traffic
    experiment.start_date = data["duration"]["startDate"]
    experiment.end_date = data["duration"]["endDate"]
    metrics = dict(data["metrics"])
    metrics.setdefault("statisticalSignificance", 0.95)
    experiment.metrics = metrics
    experiment.audience = dict(data["audience"])
    experiment.analysis = dict(data.get("analysis") or {})


def _store_variants(experiment: Experiment, checked: dict[str, Any]) -> None:
    experiment.variants.all().delete()
    Variant.objects.bulk_create(
        [
            Variant(
                experiment=experiment,
                position=i,
                name=v["name"],
                version=v["version"],
                model=model,
                weight=v["weight"],
                configuration=v.get("configuration") or {},
            )
            for i, (v, model) in enumerate(checked["variants"])
        ]
    )


def _audit(
    experiment: Experiment, *, from_status: str, to_status: str, actor: Any, reason: str, action: str, details=None
):
    user = _user(actor)
    ExperimentTransition.objects.create(
        experiment=experiment,
        from_status=from_status,
        to_status=to_status,
        action=action,
        actor=user,
        actor_username=getattr(user, "username", "") or "",
        reason=reason[:500],
        details=details or {},
    )
    transaction.on_commit(selectors.invalidate_plans)


@transaction.atomic
def experiment_create(*, actor: Any, data: dict[str, Any]) -> Experiment:
    checked = check_definition(data)
    check_target(actor, checked["deployment_id"])
    experiment = Experiment(owner=_user(actor), status=ExperimentStatus.DRAFT)
    _store(experiment, data, checked)
    experiment.save()
    _store_variants(experiment, checked)
    _audit(
        experiment, from_status="", to_status=ExperimentStatus.DRAFT, actor=actor, reason="Created.", action="create"
    )
    return experiment


def _merge(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    merged = dict(current)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(current.get(key), dict) and key != "analysis":
            merged[key] = {**current[key], **value}
        elif key == "analysis" and isinstance(value, dict):
            analysis = {**(current.get("analysis") or {}), **value}
            if "guardrails" in value:
                analysis["guardrails"] = {
                    **((current.get("analysis") or {}).get("guardrails") or {}),
                    **value["guardrails"],
                }
            merged[key] = analysis
        else:
            merged[key] = value
    return merged


def _running_change_problems(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    problems = []
    for key in ("modelId", "deploymentId"):
        if str(old.get(key) or "") != str(new.get(key) or ""):
            problems.append(key)
    strip = [{k: str(v) if k == "modelId" else v for k, v in variant.items()} for variant in old["variants"]]
    new_variants = [
        {**{"configuration": {}, "modelId": strip[i]["modelId"] if i < len(strip) else None}, **v}
        for i, v in enumerate(new["variants"])
    ]
    new_variants = [{k: str(val) if k == "modelId" else val for k, val in v.items()} for v in new_variants]
    if strip != new_variants:
        problems.append("variants")
    if old["duration"]["startDate"] != new["duration"]["startDate"]:
        problems.append("duration.startDate")
    if new["duration"]["endDate"] < timezone.now() - timedelta(minutes=1):
        problems.append("duration.endDate (in the past)")
    if old["traffic"].get("type") != new["traffic"].get("type") or (old["traffic"].get("rules") or []) != (
        new["traffic"].get("rules") or []
    ):
        problems.append("traffic.type/rules")
    if new["traffic"]["totalPercentage"] < old["traffic"]["totalPercentage"]:
        problems.append("traffic.totalPercentage (lowered)")
    if new["audience"]["percentage"] < old["audience"]["percentage"]:
        problems.append("audience.percentage (lowered)")
    if (old["audience"].get("filters") or {}) != (new["audience"].get("filters") or {}):
        problems.append("audience.filters")
    if old["metrics"]["primary"] != new["metrics"]["primary"]:
        problems.append("metrics.primary")
    if (old.get("analysis") or {}).get("mode") != (new.get("analysis") or {}).get("mode"):
        problems.append("analysis.mode")
    return problems


def _revalidate(merged: dict[str, Any]) -> dict[str, Any]:
    """A PATCH validates its fields partially (so nested list items may lack required keys): the merged
    definition is validated again as a whole request, answering 400 with field details, never a KeyError."""
    from experiments.serializers import CreateExperimentRequestSerializer

    def plain(value: Any) -> Any:  # request_shape's ids and datetimes as a JSON body carries them
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        if isinstance(value, uuid.UUID):
            return str(value)
        if isinstance(value, datetime):
            return value.isoformat()
        return value

    serializer = CreateExperimentRequestSerializer(data=plain(merged))
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


@transaction.atomic
def experiment_update(*, experiment: Experiment, actor: Any, data: dict[str, Any], partial: bool) -> Experiment:
    """PUT (the whole request) or PATCH (merged). A draft changes freely; a running experiment only in the
    ways of :data:`RUNNING_CHANGES` (others answer 409 naming them); a finished one not at all."""
    locked = Experiment.objects.select_for_update().get(pk=experiment.pk)
    if locked.status in (ExperimentStatus.COMPLETED, ExperimentStatus.STOPPED):
        raise Conflict(f"A {locked.status} experiment cannot be changed.", details={"currentStatus": locked.status})
    current = request_shape(locked)
    new = _revalidate(_merge(current, data)) if partial else dict(data)
    checked = check_definition(new)
    check_target(actor, checked["deployment_id"])
    if locked.status == ExperimentStatus.RUNNING:
        problems = _running_change_problems(current, new)
        if problems:
            raise Conflict(
                "A running experiment cannot change: " + ", ".join(problems) + ". Stop it and create a new one.",
                details={"fields": problems, "allowedWhileRunning": list(RUNNING_CHANGES)},
            )
    _store(locked, new, checked)
    locked.save()
    if locked.status == ExperimentStatus.DRAFT:
        _store_variants(locked, checked)
    _audit(locked, from_status=locked.status, to_status=locked.status, actor=actor, reason="Updated.", action="update")
    _publish(locked)
    return locked


@transaction.atomic
def experiment_delete(*, experiment: Experiment, actor: Any) -> None:
    """Remove a draft, completed or stopped experiment with its aggregates; a running one is 409 (stop it)."""
    locked = Experiment.objects.select_for_update().get(pk=experiment.pk)
    if locked.status == ExperimentStatus.RUNNING:
        raise Conflict("Stop a running experiment before deleting it.", details={"currentStatus": locked.status})
    logger.info("experiment %s deleted by %s", locked.pk, getattr(actor, "username", None))
    ExperimentUnitHour.objects.filter(experiment=locked).delete()
    VariantHourSketch.objects.filter(experiment=locked).delete()
    locked.delete()
    transaction.on_commit(selectors.invalidate_plans)


# --- the lifecycle -------------------------------------------------------------------------------


def _publish(experiment: Experiment, results: dict[str, Any] | None = None) -> None:
    data: dict[str, Any] = {"experimentId": str(experiment.pk), "status": experiment.status}
    if results is not None:
        data["results"] = results
    realtime.publish("experiment:update", data)


def _transition(
    experiment_id: Any,
    *,
    to_status: str,
    actor: Any,
    reason: str,
    only_from: frozenset[str] | None = None,
    updates=None,
) -> Experiment:
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("_transition must run inside transaction.atomic")
    for _ in range(5):
        current = Experiment.objects.filter(pk=experiment_id).values_list("status", flat=True).first()
        if current is None:
            raise NotFound("Experiment not found.", code=ErrorCode.EXPERIMENT_NOT_FOUND)
        if to_status not in TRANSITIONS[current] or (only_from is not None and current not in only_from):
            raise Conflict(
                f"A {current} experiment cannot become {to_status}.",
                details={
                    "currentStatus": current,
                    "requestedStatus": to_status,
                    "allowedTransitions": sorted(TRANSITIONS[current]),
                },
            )
        fields = {"status": to_status, "status_reason": reason[:500], "updated_at": timezone.now(), **(updates or {})}
        try:
            with transaction.atomic():
                changed = Experiment.objects.filter(pk=experiment_id, status=current).update(**fields)
        except IntegrityError:
            raise Conflict(
                "Another experiment is already running on this model (one at a time).",
                details={"rule": "experiments_one_running_per_model"},
            ) from None
        if changed:
            experiment = Experiment.objects.get(pk=experiment_id)
            _audit(
                experiment, from_status=current, to_status=to_status, actor=actor, reason=reason, action="transition"
            )
            _publish(experiment)
            return experiment
    raise Conflict("The experiment is changing too fast; try again.")  # pragma: no cover


@transaction.atomic
def experiment_start(*, experiment: Experiment, actor: Any, reason: str = "") -> Experiment:
    now = timezone.now()
    check_target(actor, experiment.deployment_id)
    if experiment.end_date <= now:
        raise Conflict("The experiment's endDate has passed.", details={"endDate": experiment.end_date.isoformat()})
    return _transition(
        experiment.pk,
        to_status=ExperimentStatus.RUNNING,
        actor=actor,
        reason=reason or "Started.",
        updates={"started_at": now},
    )


@transaction.atomic
def experiment_stop(*, experiment: Experiment, actor: Any, reason: str = "") -> Experiment:
    return _transition(
        experiment.pk,
        to_status=ExperimentStatus.STOPPED,
        actor=actor,
        reason=reason or "Stopped.",
        updates={"ended_at": timezone.now()},
    )


def experiments_schedule(*, now: Any = None) -> dict[str, int]:
    """Start drafts whose startDate came, complete running ones whose endDate passed. Safe to run twice
    and concurrently: each step is a conditional transition (a lost race is skipped)."""
    now = now or timezone.now()
    done = {"started": 0, "completed": 0}
    due = Experiment.objects.filter(status=ExperimentStatus.DRAFT, start_date__lte=now, end_date__gt=now)
    for pk in due.values_list("pk", flat=True)[:500]:
        try:
            with transaction.atomic():
                _transition(
                    pk,
                    to_status=ExperimentStatus.RUNNING,
                    actor=None,
                    reason="startDate reached.",
                    only_from=frozenset({ExperimentStatus.DRAFT}),
                    updates={"started_at": now},
                )
            done["started"] += 1
        except Conflict as exc:
            logger.info("experiment %s not started: %s", pk, exc.message)
            Experiment.objects.filter(pk=pk, status=ExperimentStatus.DRAFT).update(status_reason=exc.message[:500])
    ended = Experiment.objects.filter(status=ExperimentStatus.RUNNING, end_date__lte=now)
    for pk in ended.values_list("pk", flat=True)[:500]:
        try:
            with transaction.atomic():
                _transition(
                    pk,
                    to_status=ExperimentStatus.COMPLETED,
                    actor=None,
                    reason="endDate reached.",
                    only_from=frozenset({ExperimentStatus.RUNNING}),
                    updates={"ended_at": now},
                )
            done["completed"] += 1
        except Conflict:
            pass
    return done


# --- assignment through the API ------------------------------------------------------------------


def _plan(experiment: Experiment) -> Plan:
    variants = [
        PlanVariant(v.name, v.weight, v.version, str(v.model_id), dict(v.configuration))
        for v in experiment.variants.all()
    ]
    return Plan.build(
        experiment_id=experiment.pk,
        seed=experiment.seed,
        traffic=experiment.traffic,
        audience=experiment.audience,
        variants=variants,
        weights_version=experiment.weights_version,
    )


def experiment_assign(*, experiment: Experiment, user_id: str, attributes: dict[str, Any]) -> dict[str, Any]:
    """The variant of ``user_id`` (sticky: the first exposure is stored and returned ever after)."""
    out: dict[str, Any] = {
        "experimentId": str(experiment.pk),
        "userId": user_id,
        "included": False,
        "variant": None,
        "version": None,
        "modelId": None,
        "configuration": None,
    }
    if experiment.status != ExperimentStatus.RUNNING:
        return {**out, "reason": f"experiment_{experiment.status}"}
    try:
        plan = _plan(experiment)
    except Exception:  # a stored plan the services never checked (edited in the database): not assigning
        logger.exception("experiment %s has a broken plan; /assign includes nobody", experiment.pk)
        return {**out, "reason": "experiment_misconfigured"}
    stored = Assignment.objects.filter(experiment=experiment, unit_id=user_id).values_list("variant", flat=True).first()
    variant, reason = (plan.by_name(stored), "sticky") if stored else plan.assign(user_id, attributes)
    if variant is None:
        return {**out, "reason": reason}
    if not stored:
        Assignment.objects.bulk_create(
            [
                Assignment(
                    experiment=experiment,
                    unit_id=user_id,
                    variant=variant.name,
                    weights_version=experiment.weights_version,
                    assigned_at=timezone.now(),
                )
            ],
            ignore_conflicts=True,
        )
    return {
        **out,
        "included": True,
        "reason": reason,
        "variant": variant.name,
        "version": variant.version,
        "modelId": variant.model_id,
        "configuration": variant.configuration,
    }


# --- promotion -------------------------------------------------------------------------------------


@transaction.atomic
def experiment_promote(
    *, experiment: Experiment, actor: Any, variant: str | None = None, force: bool = False, reason: str = ""
) -> dict[str, Any]:
    """Apply the winner's (or, forced by an admin, the named variant's) configuration to the target
    deployment through ``deployments.services.deployment_update``; complete a running experiment."""
    from experiments.results import experiment_results

    locked = Experiment.objects.select_for_update().get(pk=experiment.pk)
    if locked.status == ExperimentStatus.DRAFT:
        raise Conflict("A draft experiment has no results to promote.", details={"currentStatus": locked.status})
    deployment = _promotion_target(locked)
    if _user(actor) is not None and not _owns_target(actor, deployment.owner_id):
        raise Forbidden(
            "Promoting changes the target deployment; you may only change deployments you own.",
            details={"deploymentId": str(deployment.pk)},
        )
    results = experiment_results(locked)
    winner = (results.get("winner") or {}).get("variant")
    if force and getattr(actor, "role", None) != "admin":
        raise Forbidden("Only an admin may force a promotion.")
    chosen = variant or winner
    if not force and (winner is None or chosen != winner):
        why = [r["message"] for r in results["recommendations"] if r["type"] != "deploy_winner"]
        raise Conflict(
            "There is no declared winner to promote."
            if winner is None
            else f"{chosen!r} is not the winner ({winner!r}).",
            details={"winner": winner, "reasons": why},
        )
    if chosen is None:
        raise InvalidRequest("Name the variant to promote.", details={"fields": {"variant": ["Required with force."]}})
    arm = locked.variants.filter(name=chosen).first()
    if arm is None:
        raise InvalidRequest(f"No variant {chosen!r}.", details={"fields": {"variant": ["No such variant."]}})
    if str(arm.model_id) != str(deployment.model_id):
        raise Conflict(
            f"Variant {chosen!r} serves another model; deploy that model instead (a deployment keeps its model).",
            details={"variantModelId": str(arm.model_id), "deploymentModelId": str(deployment.model_id)},
        )
    updated = deployment_services.deployment_update(
        deployment=deployment,
        actor=actor,
        configuration=dict(arm.configuration),
        partial=True,
        reason=f"Experiment {locked.name!r} ({locked.pk}): promoted variant {chosen!r}.",
    )
    details = {
        "variant": chosen,
        "deploymentId": str(deployment.pk),
        "configuration": arm.configuration,
        "forced": force,
    }
    _audit(
        locked,
        from_status=locked.status,
        to_status=locked.status,
        actor=actor,
        reason=reason or f"Promoted {chosen} to deployment {deployment.pk}.",
        action="promote",
        details=details,
    )
    if locked.status == ExperimentStatus.RUNNING:
        locked = _transition(
            locked.pk,
            to_status=ExperimentStatus.COMPLETED,
            actor=actor,
            reason=f"Promoted {chosen}.",
            updates={"ended_at": timezone.now()},
        )
    return {"experiment": locked, "deployment": updated, "variant": chosen}


def _promotion_target(experiment: Experiment) -> Any:
    from deployments.selectors import deployment_queryset

    if experiment.deployment_id:
        return deployment_queryset().get(pk=experiment.deployment_id)
    candidates = deployment_queryset().filter(model_id=experiment.model_id, status__in=("running", "scaling"))
    target = candidates.filter(environment="production").first() or candidates.first()
    if target is None:
        raise Conflict("The model has no live deployment to promote to.", details={"modelId": str(experiment.model_id)})
    return target


# The aggregates (experiments/aggregates.py) are part of this public surface.
from experiments.aggregates import (  # noqa: E402
    experiment_reaggregate,
    experiments_aggregate,
    mark_hours,
    recompute_hour,
    recompute_summary,
)

__all__ = [
    "check_definition",
    "check_target",
    "experiment_assign",
    "experiment_create",
    "experiment_delete",
    "experiment_promote",
    "experiment_reaggregate",
    "experiment_start",
    "experiment_stop",
    "experiment_update",
    "experiments_aggregate",
    "experiments_schedule",
    "mark_hours",
    "recompute_hour",
    "recompute_summary",
]
