"""Writes to the catalog. The API, the Django admin and management commands all come through here."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from catalog.models import GovernanceEvent, GovernanceField, ModelRegistry, ModelStatus
from catalog.selectors import invalidate_catalog_facets
from modelhub.api.exceptions import AppError, Conflict, ErrorCode, InvalidRequest
from modelhub.registry import Slot

DEMO_SEEDED = Slot(
    "catalog.demo_seeded",
    "Providers ``(*, admin, stdout) -> None`` that add the demo data of apps above the catalog once "
    "``seed_demo`` has created the users and the catalog (marketplace: demo listings). Idempotent, like the command.",
)

# Model field -> API field (camelCase, as the spec writes it), for error details.
API_FIELD_NAMES: dict[str, str] = {
    "name": "name",
    "version": "version",
    "provider": "provider",
    "model_type": "modelType",
    "capabilities": "capabilities",
    "supported_tasks": "supportedTasks",
    "input_formats": "inputFormats",
    "output_formats": "outputFormats",
    "max_tokens": "maxTokens",
    "context_window": "contextWindow",
    "max_batch_size": "maxBatchSize",
    "supported_parameters": "supportedParameters",
    "baseline_avg_latency_ms": "baselineMetrics.avgLatencyMs",
    "baseline_cost_per_1k_tokens": "baselineMetrics.costPer1kTokens",
    "baseline_success_rate": "baselineMetrics.successRate",
    "baseline_avg_tokens_per_request": "baselineMetrics.avgTokensPerRequest",
    "description": "description",
    "tags": "tags",
    "category": "category",
    "license": "license",
    "documentation": "documentation",
    "status": "status",
    "security_level": "securityLevel",
    "compliance": "compliance",
}
IMMUTABLE_FIELDS = frozenset({"name", "version"})
WRITABLE_FIELDS = frozenset(API_FIELD_NAMES)
_GOVERNED: dict[str, GovernanceField] = {
    "status": GovernanceField.STATUS,
    "security_level": GovernanceField.SECURITY_LEVEL,
    "compliance": GovernanceField.COMPLIANCE,
}


class ModelAlreadyExists(AppError):
    status_code = 409
    code = ErrorCode.MODEL_ALREADY_EXISTS
    default_message = "A model with this name and version already exists."


def _already_exists(name: str, version: str) -> ModelAlreadyExists:
    return ModelAlreadyExists(
        f"Model {name!r} version {version!r} is already registered.", details={"name": name, "version": version}
    )


def _validate(model: ModelRegistry) -> None:
    """Run every model-level rule (fields, ``clean``, unique and check constraints)."""
    try:
        model.full_clean(exclude=["owner"])
    except DjangoValidationError as exc:
        errors = exc.error_dict
        for error in errors.get(NON_FIELD_ERRORS, []):
            if error.code == "model_exists":
                raise _already_exists(model.name, model.version) from None
        fields: dict[str, list[str]] = {}
        for name, field_errors in errors.items():
            key = API_FIELD_NAMES.get(name, "nonFieldErrors")
            for error in field_errors:
                fields.setdefault(key, []).extend(error.messages)
        raise InvalidRequest(
            f"The model is invalid: {', '.join(sorted(fields))}.", details={"fields": fields}
        ) from None


def _record(
    model: ModelRegistry, field: GovernanceField, before: Any, after: Any, actor: Any, reason: str = ""
) -> GovernanceEvent:
    def text(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, list):
            return ", ".join(map(str, value))
        return value.isoformat() if hasattr(value, "isoformat") else str(value)

    return GovernanceEvent.objects.create(
        model=model,
        model_label=str(model),
        field=field,
        from_value=text(before)[:500],
        to_value=text(after)[:500],
        actor=actor if getattr(actor, "pk", None) else None,
        actor_username=getattr(actor, "username", "") or "",
        reason=reason[:500],
    )


def _save(model: ModelRegistry) -> None:
    try:
        with transaction.atomic():
            model.save()
    except IntegrityError as exc:
        # A concurrent registration won the race between full_clean and INSERT.
        if ModelRegistry.objects.filter(name=model.name, version=model.version).exclude(pk=model.pk).exists():
            raise _already_exists(model.name, model.version) from exc
        raise InvalidRequest(
            "The model violates a catalog constraint.", details={"constraint": str(exc)[:200]}
        ) from exc


@transaction.atomic
def model_register(*, actor: Any, **fields: Any) -> ModelRegistry:
    """Register a new model version; ``owner`` is the caller, never the body."""
    unknown = set(fields) - WRITABLE_FIELDS
    if unknown:
        raise InvalidRequest(f"Unknown field(s): {', '.join(sorted(unknown))}.")
    model = ModelRegistry(owner=actor if getattr(actor, "pk", None) else None, **fields)
    _validate(model)
    _save(model)
    _record(model, GovernanceField.REGISTERED, "", model.status, actor)
    transaction.on_commit(invalidate_catalog_facets)
    return model


@transaction.atomic
def model_update(*, model: ModelRegistry, actor: Any, reason: str = "", **fields: Any) -> ModelRegistry:
    """Change a model's fields; governance changes are recorded, identity is immutable.

    The row is locked for the change so that two concurrent status changes are
    recorded as two events with the right ``from`` values.
    """
    unknown = set(fields) - WRITABLE_FIELDS
    if unknown:
        raise InvalidRequest(f"Unknown field(s): {', '.join(sorted(unknown))}.")
    locked = ModelRegistry.objects.select_for_update().get(pk=model.pk)
    changed_identity = {
        API_FIELD_NAMES[f]: ["Cannot be changed; register a new version instead."]
        for f in IMMUTABLE_FIELDS & set(fields)
        if fields[f] != getattr(locked, f)
    }
    if changed_identity:
        raise InvalidRequest("A model's name and version are immutable.", details={"fields": changed_identity})
    before = {name: getattr(locked, name) for name in _GOVERNED}
    for name, value in fields.items():
        setattr(locked, name, value)
    _validate(locked)
    _save(locked)
    for name, kind in _GOVERNED.items():
        if before[name] != getattr(locked, name):
            _record(locked, kind, before[name], getattr(locked, name), actor, reason)
    transaction.on_commit(invalidate_catalog_facets)
    return locked


def model_set_status(*, model: ModelRegistry, status: str, actor: Any, reason: str = "") -> ModelRegistry:
    """Activate, deprecate or put a model into maintenance (admin actions and API alike)."""
    if status not in ModelStatus.values:
        raise InvalidRequest("Unknown status.", details={"allowedValues": {"status": ModelStatus.values}})
    return model_update(model=model, actor=actor, reason=reason, status=status)


@transaction.atomic
def model_mark_validated(*, model: ModelRegistry, actor: Any, reason: str = "") -> ModelRegistry:
    """Record that the model passed validation now (sets ``lastValidatedAt``)."""
    locked = ModelRegistry.objects.select_for_update().get(pk=model.pk)
    before = locked.last_validated_at
    locked.last_validated_at = timezone.now()
    locked.save(update_fields=["last_validated_at", "updated_at"])
    _record(locked, GovernanceField.VALIDATED, before, locked.last_validated_at, actor, reason)
    return locked


@transaction.atomic
def model_delete(*, model: ModelRegistry, actor: Any) -> None:
    """Delete a model version. Refused (409) while anything depends on it.

    Dependents (deployments, experiments, listings) point at the model with
    ``on_delete=PROTECT``; the ProtectedError rolls this transaction back,
    audit event included, and the API answers 409 with the dependents.
    """
    _record(model, GovernanceField.DELETED, model.status, "", actor)
    dependents = _dependents(model)
    if dependents:
        raise Conflict(
            f"{model} is still in use and cannot be deleted.",
            details={"dependents": dependents},
        )
    model.delete()
    transaction.on_commit(invalidate_catalog_facets)


def _dependents(model: ModelRegistry) -> list[str]:
    """Objects in other apps that reference the model through a protecting foreign key."""
    from django.db.models import PROTECT, RESTRICT

    found: list[str] = []
    for relation in model._meta.related_objects:
        if relation.on_delete not in (PROTECT, RESTRICT):
            continue
        accessor = relation.get_accessor_name()
        manager = getattr(model, accessor, None)
        if manager is None:
            continue
        for pk in manager.values_list("pk", flat=True)[:20]:
            found.append(f"{relation.related_model._meta.label}:{pk}")
    return found


def model_usage_stats_set(stats: dict[Any, tuple[int, float | None]], *, only: set | None = None) -> int:
    """Store usage figures the analytics rollup computed: ``{model_id: (popularity, avg_rating)}``.

    ``popularity`` is the number of requests in the last 30 days and ``avg_rating`` the
    mean user rating over them (``None`` without ratings); models in ``only`` that have
    no figures go back to 0 / ``None``. Idempotent; returns the number of rows changed.
    """
    qs = ModelRegistry.objects.all() if only is None else ModelRegistry.objects.filter(pk__in=only)
    changed = []
    for model in qs.only("pk", "popularity", "avg_rating"):
        popularity, rating = stats.get(model.pk, (0, None))
        rating = None if rating is None else round(float(rating), 4)
        if model.popularity != popularity or model.avg_rating != rating:
            model.popularity, model.avg_rating = int(popularity), rating
            changed.append(model)
    ModelRegistry.objects.bulk_update(changed, ["popularity", "avg_rating"], batch_size=500)
    if changed:  # the list sorts by popularity and filters by rating: its cached answers are stale
        transaction.on_commit(invalidate_catalog_facets)
    return len(changed)
