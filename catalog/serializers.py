"""Request and response shapes of the catalog, camelCase exactly as the spec writes them."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from catalog.models import MAX_CONTEXT_WINDOW, ModelRegistry, ModelStatus, ModelType, Provider, SecurityLevel
from modelhub.api.dates import iso
from modelhub.api.fields import EnumField, StringListField
from modelhub.api.schema import PaginationSerializer
from modelhub.api.serializers import StrictInputSerializer, StrictRegexField


def _owner_username(m: ModelRegistry) -> str | None:
    if hasattr(m, "owner_username"):  # annotated by catalog.selectors.model_queryset
        return m.owner_username
    return m.owner.username if m.owner_id else None


# --- Output ----------------------------------------------------------------------------


class BaselineMetricsSerializer(StrictInputSerializer):
    avgLatencyMs = serializers.FloatField(min_value=0, max_value=10_000_000)
    costPer1kTokens = serializers.DecimalField(
        max_digits=12,
        decimal_places=6,
        min_value=Decimal(0),
        max_value=Decimal(999_999),
        coerce_to_string=False,
        rounding=ROUND_HALF_UP,
        help_text="USD per 1,000 input tokens; rounded to 6 decimal places.",
    )
    successRate = serializers.FloatField(min_value=0, max_value=1, help_text="A ratio from 0 to 1.")
    avgTokensPerRequest = serializers.IntegerField(min_value=0, max_value=MAX_CONTEXT_WINDOW, required=False)


class ModelRegistrySerializer(serializers.Serializer):
    """The spec's ``ModelRegistry``. ``to_representation`` is hand-written because this is the
    hottest serializer in the hub (25-100 per catalog page); ``test_serializers`` keeps it equal
    to the declared fields, which are what OpenAPI documents."""

    id = serializers.UUIDField()
    name = serializers.CharField()
    version = serializers.CharField()
    provider = serializers.ChoiceField(choices=Provider.choices)
    modelType = serializers.ChoiceField(choices=ModelType.choices)
    capabilities = serializers.ListField(child=serializers.CharField())
    supportedTasks = serializers.ListField(child=serializers.CharField())
    inputFormats = serializers.ListField(child=serializers.CharField())
    outputFormats = serializers.ListField(child=serializers.CharField())
    maxTokens = serializers.IntegerField()
    contextWindow = serializers.IntegerField()
    maxBatchSize = serializers.IntegerField()
    supportedParameters = serializers.DictField()
    baselineMetrics = BaselineMetricsSerializer()
    description = serializers.CharField()
    tags = serializers.ListField(child=serializers.CharField())
    category = serializers.CharField()
    license = serializers.CharField()
    documentation = serializers.CharField()
    status = serializers.ChoiceField(choices=ModelStatus.choices)
    securityLevel = serializers.ChoiceField(choices=SecurityLevel.choices)
    compliance = serializers.ListField(child=serializers.CharField())
    owner = serializers.CharField(allow_null=True, help_text="Username of the user who registered the model.")
    createdAt = serializers.DateTimeField()
    updatedAt = serializers.DateTimeField()
    lastValidatedAt = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "ModelRegistry"

    def to_representation(self, m: ModelRegistry) -> dict[str, Any]:
        return {
            "id": str(m.id),
            "name": m.name,
            "version": m.version,
            "provider": m.provider,
            "modelType": m.model_type,
            "capabilities": m.capabilities,
            "supportedTasks": m.supported_tasks,
            "inputFormats": m.input_formats,
            "outputFormats": m.output_formats,
            "maxTokens": m.max_tokens,
            "contextWindow": m.context_window,
            "maxBatchSize": m.max_batch_size,
            "supportedParameters": m.supported_parameters,
            "baselineMetrics": {
                "avgLatencyMs": m.baseline_avg_latency_ms,
                "costPer1kTokens": float(m.baseline_cost_per_1k_tokens),
                "successRate": m.baseline_success_rate,
                "avgTokensPerRequest": m.baseline_avg_tokens_per_request,
            },
            "description": m.description,
            "tags": m.tags,
            "category": m.category,
            "license": m.license,
            "documentation": m.documentation,
            "status": m.status,
            "securityLevel": m.security_level,
            "compliance": m.compliance,
            "owner": _owner_username(m),
            "createdAt": iso(m.created_at),
            "updatedAt": iso(m.updated_at),
            "lastValidatedAt": iso(m.last_validated_at),
        }


class AvailableFiltersSerializer(serializers.Serializer):
    providers = serializers.ListField(child=serializers.CharField())
    modelTypes = serializers.ListField(child=serializers.CharField())
    capabilities = serializers.ListField(child=serializers.CharField())
    categories = serializers.ListField(child=serializers.CharField())
    statuses = serializers.ListField(child=serializers.CharField())


class CatalogFiltersSerializer(serializers.Serializer):
    applied = serializers.DictField(help_text="The effective CatalogQuery: what was given, plus defaults.")
    available = AvailableFiltersSerializer()


@extend_schema_serializer(many=False)
class CatalogResponseSerializer(serializers.Serializer):
    models = ModelRegistrySerializer(many=True)
    pagination = PaginationSerializer()
    filters = CatalogFiltersSerializer()

    class Meta:
        ref_name = "CatalogResponse"


class DeploymentSummarySerializer(serializers.Serializer):
    id = serializers.CharField()
    environment = serializers.CharField()
    status = serializers.CharField()
    createdAt = serializers.DateTimeField()
    lastUsed = serializers.DateTimeField(allow_null=True)


class UsageSerializer(serializers.Serializer):
    totalRequests = serializers.IntegerField()
    totalCost = serializers.FloatField()
    uniqueUsers = serializers.IntegerField()
    popularUseCases = serializers.ListField(child=serializers.CharField())


class PerformanceWindowsSerializer(serializers.Serializer):
    last24h = serializers.JSONField(help_text="PerformanceMetrics")
    last7d = serializers.JSONField(help_text="PerformanceMetrics")
    last30d = serializers.JSONField(help_text="PerformanceMetrics")


class ModelDetailResponseSerializer(serializers.Serializer):
    model = ModelRegistrySerializer()
    deployments = DeploymentSummarySerializer(many=True)
    performance = PerformanceWindowsSerializer()
    usage = UsageSerializer()

    class Meta:
        ref_name = "ModelDetailResponse"


# --- Input -----------------------------------------------------------------------------------


class ModelWriteSerializer(StrictInputSerializer):
    """``CreateModelRequest`` plus the optional registry fields an admin may set.

    ``validated_data`` is keyed by model field names, ready for the services.
    """

    name = StrictRegexField(r"\S", max_length=200, trim_whitespace=False)
    version = StrictRegexField(r"^\S+$", max_length=64, trim_whitespace=False)
    provider = EnumField(choices=Provider.choices)
    modelType = EnumField(choices=ModelType.choices, source="model_type")
    capabilities = StringListField(required=True)
    supportedTasks = StringListField(required=True, source="supported_tasks")
    inputFormats = StringListField(source="input_formats")
    outputFormats = StringListField(source="output_formats")
    maxTokens = serializers.IntegerField(min_value=1, max_value=MAX_CONTEXT_WINDOW, source="max_tokens")
    contextWindow = serializers.IntegerField(min_value=1, max_value=MAX_CONTEXT_WINDOW, source="context_window")
    maxBatchSize = serializers.IntegerField(min_value=1, max_value=100_000, required=False, source="max_batch_size")
    supportedParameters = serializers.DictField(required=False, source="supported_parameters")
    baselineMetrics = BaselineMetricsSerializer()
    description = serializers.CharField(max_length=10_000, allow_blank=True)
    tags = StringListField(required=True)
    category = serializers.CharField(max_length=100, allow_blank=True)
    license = serializers.CharField(max_length=200, allow_blank=True, required=False)
    documentation = serializers.CharField(max_length=2048, allow_blank=True, required=False)
    status = EnumField(choices=ModelStatus.choices, required=False)
    securityLevel = EnumField(choices=SecurityLevel.choices, required=False, source="security_level")
    compliance = StringListField()

    class Meta:
        ref_name = "CreateModelRequest"

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        baseline = attrs.pop("baselineMetrics", None)
        if baseline is not None:
            mapping = {
                "avgLatencyMs": "baseline_avg_latency_ms",
                "costPer1kTokens": "baseline_cost_per_1k_tokens",
                "successRate": "baseline_success_rate",
                "avgTokensPerRequest": "baseline_avg_tokens_per_request",
            }
            attrs.update({mapping[k]: v for k, v in baseline.items()})
        return attrs


class ModelUpdateSerializer(ModelWriteSerializer):
    """PUT takes the whole ``CreateModelRequest``; PATCH any subset (``partial=True``)."""

    class Meta:
        ref_name = "UpdateModelRequest"


class GovernanceActionSerializer(StrictInputSerializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True)
