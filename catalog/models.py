"""The model registry and its governance history."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.postgres.search import SearchVectorField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from catalog.constants import MAX_CONTEXT_WINDOW, ModelStatus, ModelType, Provider, SecurityLevel


def _in(field: str, choices: type[models.TextChoices]) -> Q:
    return Q(**{f"{field}__in": choices.values})


def _string_list_errors(value: object, *, max_items: int = 100, max_length: int = 200) -> str | None:
    if not isinstance(value, list):
        return "Must be a list of strings."
    if len(value) > max_items:
        return f"At most {max_items} items."
    if not all(isinstance(v, str) and v.strip() and len(v) <= max_length for v in value):
        return f"Every item must be a non-blank string of at most {max_length} characters."
    return None


def _clean_registry(instance: ModelRegistry) -> None:
    """Shape rules a JSON column cannot state (used by ``ModelRegistry.clean``)."""
    from django.core.exceptions import ValidationError

    errors: dict[str, str] = {}
    for name in ("capabilities", "supported_tasks", "input_formats", "output_formats", "tags", "compliance"):
        problem = _string_list_errors(getattr(instance, name))
        if problem:
            errors[name] = problem
    if not isinstance(instance.supported_parameters, dict):
        errors["supported_parameters"] = "Must be an object."
    elif len(str(instance.supported_parameters)) > 16_384:
        errors["supported_parameters"] = "Must be at most 16 KiB."
    if not instance.name.strip():
        errors["name"] = "Must not be blank."
    if not instance.version.strip() or any(c.isspace() for c in instance.version):
        errors["version"] = "Must be non-blank and contain no whitespace."
    if errors:
        raise ValidationError(errors)


class ModelRegistry(models.Model):
    """One registered version of a model: the spec's ``ModelRegistry``.

    ``(name, version)`` identifies it; both are immutable after registration -
    a new version is a new row, as in MLflow's registry. The baseline metrics
    are flat columns so that ``maxCost``/``maxLatency`` filter and sort in SQL.

    ``popularity`` and ``avg_rating`` are denormalised usage figures that the
    analytics rollups maintain; until analytics exists they stay 0/NULL.
    ``search_vector`` is maintained by a PostgreSQL trigger (see migration 0002)
    so bulk inserts and COPY keep it right; on SQLite it stays NULL and search
    falls back to substring matching.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    version = models.CharField(max_length=64)
    provider = models.CharField(max_length=16, choices=Provider.choices)
    model_type = models.CharField(max_length=16, choices=ModelType.choices)

    capabilities = models.JSONField(default=list, blank=True)
    supported_tasks = models.JSONField(default=list, blank=True)
    input_formats = models.JSONField(default=list, blank=True)
    output_formats = models.JSONField(default=list, blank=True)

    max_tokens = models.PositiveIntegerField(validators=[MinValueValidator(1), MaxValueValidator(MAX_CONTEXT_WINDOW)])
    context_window = models.PositiveIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(MAX_CONTEXT_WINDOW)]
    )
    max_batch_size = models.PositiveIntegerField(default=1, validators=[MinValueValidator(1)])
    supported_parameters = models.JSONField(default=dict, blank=True)

    baseline_avg_latency_ms = models.FloatField(validators=[MinValueValidator(0)])
    baseline_cost_per_1k_tokens = models.DecimalField(
        max_digits=12, decimal_places=6, validators=[MinValueValidator(0)]
    )
    baseline_success_rate = models.FloatField(validators=[MinValueValidator(0), MaxValueValidator(1)])
    baseline_avg_tokens_per_request = models.PositiveIntegerField(default=0)

    description = models.TextField(blank=True, max_length=10_000)
    tags = models.JSONField(default=list, blank=True)
    category = models.CharField(max_length=100, blank=True)
    license = models.CharField(max_length=200, blank=True)
    documentation = models.CharField(max_length=2048, blank=True)

    status = models.CharField(max_length=16, choices=ModelStatus.choices, default=ModelStatus.ACTIVE)
    security_level = models.CharField(max_length=16, choices=SecurityLevel.choices, default=SecurityLevel.INTERNAL)
    compliance = models.JSONField(default=list, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="models_owned"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_validated_at = models.DateTimeField(null=True, blank=True)

    popularity = models.BigIntegerField(default=0, editable=False)
    avg_rating = models.FloatField(null=True, blank=True, editable=False)
    search_vector = SearchVectorField(null=True, editable=False)

    class Meta:
        ordering = ["name", "version"]
        verbose_name = "registered model"
        constraints = [
            models.UniqueConstraint(
                fields=["name", "version"],
                name="catalog_model_name_version_unique",
                violation_error_message="A model with this name and version already exists.",
                violation_error_code="model_exists",
            ),
            models.CheckConstraint(condition=_in("provider", Provider), name="catalog_model_provider_valid"),
            models.CheckConstraint(condition=_in("model_type", ModelType), name="catalog_model_type_valid"),
            models.CheckConstraint(condition=_in("status", ModelStatus), name="catalog_model_status_valid"),
            models.CheckConstraint(
                condition=_in("security_level", SecurityLevel), name="catalog_model_security_level_valid"
            ),
            models.CheckConstraint(
                condition=Q(max_tokens__gte=1, context_window__gte=1, max_batch_size__gte=1),
                name="catalog_model_sizes_positive",
            ),
            models.CheckConstraint(
                condition=Q(max_tokens__lte=models.F("context_window")),
                name="catalog_model_max_tokens_within_context",
                violation_error_message="maxTokens cannot exceed contextWindow.",
            ),
            models.CheckConstraint(
                condition=Q(baseline_success_rate__gte=0, baseline_success_rate__lte=1),
                name="catalog_model_success_rate_ratio",
            ),
            models.CheckConstraint(
                condition=Q(baseline_avg_latency_ms__gte=0, baseline_cost_per_1k_tokens__gte=0),
                name="catalog_model_baseline_non_negative",
            ),
        ]
        indexes = [
            models.Index(fields=["provider"], name="catalog_model_provider_idx"),
            models.Index(fields=["model_type"], name="catalog_model_type_idx"),
            models.Index(fields=["status"], name="catalog_model_status_idx"),
            models.Index(fields=["category"], name="catalog_model_category_idx"),
            models.Index(fields=["created_at"], name="catalog_model_created_idx"),
            models.Index(fields=["updated_at"], name="catalog_model_updated_idx"),
            models.Index(fields=["-popularity", "name"], name="catalog_model_popularity_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"

    def clean(self) -> None:
        _clean_registry(self)


class GovernanceField(models.TextChoices):
    STATUS = "status", "Status"
    SECURITY_LEVEL = "securityLevel", "Security level"
    COMPLIANCE = "compliance", "Compliance"
    VALIDATED = "lastValidatedAt", "Validated"
    REGISTERED = "registered", "Registered"
    DELETED = "deleted", "Deleted"


class GovernanceEvent(models.Model):
    """One governance change to a registered model: who, when, what, from and to.

    Kept after the model is deleted (``model`` becomes NULL, ``model_label``
    still says which model it was), because an audit trail must outlive what it
    audits.
    """

    model = models.ForeignKey(
        ModelRegistry, on_delete=models.SET_NULL, null=True, blank=True, related_name="governance_events"
    )
    model_label = models.CharField(max_length=300)
    field = models.CharField(max_length=32, choices=GovernanceField.choices)
    from_value = models.CharField(max_length=500, blank=True)
    to_value = models.CharField(max_length=500, blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    actor_username = models.CharField(max_length=150, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.model_label}: {self.field} {self.from_value!r} -> {self.to_value!r}"
