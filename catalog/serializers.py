"""Request and response shapes of the catalog, camelCase exactly as the spec writes them.

Each field's ``source`` names the model column it shows or sets, so the camelCase <->
column map is these declarations (the sort filters read it too, see ``catalog.filters``).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from catalog.models import MAX_CONTEXT_WINDOW, ModelStatus, ModelType, Provider, SecurityLevel
from modelhub.api.compiled import CompiledSerializer
from modelhub.api.fields import EnumField, StringListField
from modelhub.api.schema import PaginationSerializer
from modelhub.api.serializers import StrictInputSerializer, StrictRegexField

# --- Output ----------------------------------------------------------------------------


class BaselineMetricsSerializer(StrictInputSerializer):
    # ``baselineMetrics`` in requests and responses, nested with ``source="*"``: the columns are the model's.

    avgLatencyMs = serializers.FloatField(min_value=0, max_value=10_000_000, source="baseline_avg_latency_ms")
    costPer1kTokens = serializers.DecimalField(
        max_digits=12,
        decimal_places=6,
        min_value=Decimal(0),
        max_value=Decimal(999_999),
        coerce_to_string=False,
        rounding=ROUND_HALF_UP,
        help_text="USD per 1,000 input tokens; rounded to 6 decimal places.",
        source="baseline_cost_per_1k_tokens",
    )
    successRate = serializers.FloatField(
        min_value=0, max_value=1, help_text="A ratio from 0 to 1.", source="baseline_success_rate"
    )
    avgTokensPerRequest = serializers.IntegerField(
        min_value=0, max_value=MAX_CONTEXT_WINDOW, required=False, source="baseline_avg_tokens_per_request"
    )


class ModelRegistrySerializer(CompiledSerializer):
    """The spec's ``ModelRegistry``."""

    # The hottest serializer in the hub (25-100 per catalog page), hence compiled. Instances come
    # from catalog.selectors.model_queryset (the owner_username annotation).

    id = serializers.UUIDField()
    name = serializers.CharField()
    version = serializers.CharField()
    provider = serializers.ChoiceField(choices=Provider.choices)
    modelType = serializers.ChoiceField(choices=ModelType.choices, source="model_type")
    capabilities = serializers.ListField(child=serializers.CharField())
    supportedTasks = serializers.ListField(child=serializers.CharField(), source="supported_tasks")
    inputFormats = serializers.ListField(child=serializers.CharField(), source="input_formats")
    outputFormats = serializers.ListField(child=serializers.CharField(), source="output_formats")
    maxTokens = serializers.IntegerField(source="max_tokens")
    contextWindow = serializers.IntegerField(source="context_window")
    maxBatchSize = serializers.IntegerField(source="max_batch_size")
    supportedParameters = serializers.DictField(source="supported_parameters")
    baselineMetrics = BaselineMetricsSerializer(source="*")
    description = serializers.CharField()
    tags = serializers.ListField(child=serializers.CharField())
    category = serializers.CharField()
    license = serializers.CharField()
    documentation = serializers.CharField()
    status = serializers.ChoiceField(choices=ModelStatus.choices)
    securityLevel = serializers.ChoiceField(choices=SecurityLevel.choices, source="security_level")
    compliance = serializers.ListField(child=serializers.CharField())
    owner = serializers.CharField(
        allow_null=True, source="owner_username", help_text="Username of the user who registered the model."
    )
    createdAt = serializers.DateTimeField(source="created_at")
    updatedAt = serializers.DateTimeField(source="updated_at")
    lastValidatedAt = serializers.DateTimeField(allow_null=True, source="last_validated_at")

    class Meta:
        ref_name = "ModelRegistry"


class ModelEnvelopeSerializer(serializers.Serializer):
    """``{"model": ModelRegistry}``: what create and update answer."""

    model = ModelRegistrySerializer()

    class Meta:
        ref_name = "ModelResponse"


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

    # The keys are the fields' ``source``; baselineMetrics (source="*") is flattened into its columns.

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
    baselineMetrics = BaselineMetricsSerializer(source="*")
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


class ModelUpdateSerializer(ModelWriteSerializer):
    """PUT takes the whole ``CreateModelRequest``; PATCH any subset (``partial=True``)."""

    class Meta:
        ref_name = "UpdateModelRequest"
