"""Request bodies and responses of the experiments API, camelCase exactly as the spec writes them.

Fields are checked here (types, ranges, catalogue names); rules across fields or needing the
database (weights summing to 100, versions of the model, rules compiling, one running experiment
per model) are the services' (:func:`experiments.services.check_definition`), so PUT, PATCH and
the admin meet the same rules.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from experiments import selectors
from experiments.constants import (
    MAX_ATTRIBUTES,
    MAX_FILTERS,
    MAX_RULE_LENGTH,
    MAX_RULES,
    MAX_SECONDARY,
    MAX_VARIANTS,
    METRIC_NAMES,
    ExperimentStatus,
    TestMode,
    TrafficType,
)
from modelhub.api.fields import EnumField
from modelhub.api.params import QuerySerializer
from modelhub.api.schema import PaginationSerializer
from modelhub.api.serializers import StrictCharField, StrictInputSerializer

_METRIC_NAMES = METRIC_NAMES


class _Variant(StrictInputSerializer):
    name = StrictCharField(max_length=64)
    version = StrictCharField(max_length=64)
    weight = serializers.FloatField(min_value=0, max_value=100)
    configuration = serializers.DictField(required=False, default=dict, help_text="Parameter defaults of this arm.")
    modelId = serializers.UUIDField(
        required=False, help_text="Extension: the arm serves another model (e.g. another provider's)."
    )

    class Meta:
        ref_name = "ExperimentVariantInput"


class _Rule(StrictInputSerializer):
    condition = StrictCharField(
        max_length=MAX_RULE_LENGTH, help_text="A rule-engine expression, e.g. user.tier == 'premium'."
    )
    variantName = StrictCharField(max_length=64)

    class Meta:
        ref_name = "ExperimentRule"


class _Traffic(StrictInputSerializer):
    type = EnumField(choices=[t.value for t in TrafficType])
    totalPercentage = serializers.FloatField(min_value=0, max_value=100)
    rules = serializers.ListField(child=_Rule(), required=False, max_length=MAX_RULES)

    class Meta:
        ref_name = "ExperimentTraffic"


class _Duration(StrictInputSerializer):
    startDate = serializers.DateTimeField()
    endDate = serializers.DateTimeField()

    class Meta:
        ref_name = "ExperimentDuration"


class _Metrics(StrictInputSerializer):
    primary = EnumField(choices=_METRIC_NAMES)
    secondary = serializers.ListField(child=EnumField(choices=_METRIC_NAMES), max_length=MAX_SECONDARY)
    statisticalSignificance = serializers.FloatField(required=False, default=0.95, help_text="In (0.5, 1).")

    class Meta:
        ref_name = "ExperimentMetrics"

    def validate_statisticalSignificance(self, value: float) -> float:
        if not 0.5 < value < 1:
            raise serializers.ValidationError("Must be greater than 0.5 and less than 1.")
        return value


class _Audience(StrictInputSerializer):
    percentage = serializers.FloatField(min_value=0, max_value=100)
    filters = serializers.DictField(required=False, help_text="{attribute: value | [values]}; all must hold.")

    class Meta:
        ref_name = "ExperimentAudience"

    def validate_filters(self, value: dict[str, Any]) -> dict[str, Any]:
        from experiments.constants import RULE_CONTEXT

        if len(value) > MAX_FILTERS:
            raise serializers.ValidationError(f"At most {MAX_FILTERS} filters.")
        for name, wanted in value.items():
            if name not in RULE_CONTEXT["user"]:
                raise serializers.ValidationError(
                    f"Unknown attribute {name!r}; known: {', '.join(RULE_CONTEXT['user'])}."
                )
            values = wanted if isinstance(wanted, list) else [wanted]
            if len(values) > 100 or not all(isinstance(v, str) and len(v) <= 255 for v in values):
                raise serializers.ValidationError(f"{name}: a string or a list of at most 100 strings.")
        return value


class _Guardrails(StrictInputSerializer):
    costPerRequest = serializers.FloatField(
        min_value=0, max_value=10, required=False, help_text="Relative, 0.05 = +5 %."
    )
    p95Latency = serializers.FloatField(min_value=0, max_value=10, required=False, help_text="Relative, 0.10 = +10 %.")
    successRate = serializers.FloatField(
        min_value=0, max_value=1, required=False, help_text="Absolute, 0.005 = 0.5 points."
    )

    class Meta:
        ref_name = "ExperimentGuardrails"


class _Analysis(StrictInputSerializer):
    mode = EnumField(choices=[m.value for m in TestMode], required=False)
    minSampleSize = serializers.IntegerField(min_value=2, max_value=10_000_000, required=False)
    sequentialTuning = serializers.FloatField(min_value=1, max_value=1e9, required=False)
    guardrails = _Guardrails(required=False)
    autoStop = serializers.BooleanField(required=False)
    cuped = serializers.BooleanField(
        required=False, help_text="Adjust the primary metric by its pre-period value (CUPED) when that data exists."
    )

    class Meta:
        ref_name = "ExperimentAnalysis"


class CreateExperimentRequestSerializer(StrictInputSerializer):
    """The spec's ``CreateExperimentRequest``; ``deploymentId`` and ``analysis`` are extensions."""

    name = StrictCharField(max_length=200)
    description = StrictCharField(max_length=5000, allow_blank=True)
    modelId = serializers.UUIDField()
    variants = serializers.ListField(child=_Variant(), min_length=2, max_length=MAX_VARIANTS)
    traffic = _Traffic()
    duration = _Duration()
    metrics = _Metrics()
    audience = _Audience()
    deploymentId = serializers.UUIDField(required=False, allow_null=True)
    analysis = _Analysis(required=False)

    class Meta:
        ref_name = "CreateExperimentRequest"


class PatchExperimentRequestSerializer(CreateExperimentRequestSerializer):
    class Meta:
        ref_name = "PatchExperimentRequest"


class StopRequestSerializer(StrictInputSerializer):
    reason = StrictCharField(max_length=500, required=False, allow_blank=True)

    class Meta:
        ref_name = "ExperimentStopRequest"


class PromoteRequestSerializer(StrictInputSerializer):
    variant = StrictCharField(max_length=64, required=False, help_text="Default: the declared winner.")
    force = serializers.BooleanField(required=False, default=False, help_text="Admins only: promote without a winner.")
    reason = StrictCharField(max_length=500, required=False, allow_blank=True)

    class Meta:
        ref_name = "ExperimentPromoteRequest"


class AssignRequestSerializer(StrictInputSerializer):
    userId = StrictCharField(max_length=255)
    attributes = serializers.DictField(required=False, default=dict)

    class Meta:
        ref_name = "ExperimentAssignRequest"

    def validate_attributes(self, value: dict[str, Any]) -> dict[str, Any]:
        if len(value) > MAX_ATTRIBUTES:
            raise serializers.ValidationError(f"At most {MAX_ATTRIBUTES} attributes.")
        for name, item in value.items():
            if len(str(name)) > 64 or not isinstance(item, (str, int, float, bool)) or len(str(item)) > 255:
                raise serializers.ValidationError(f"{str(name)[:64]}: a string, number or boolean (255 chars).")
        return value


class ResultsQuerySerializer(QuerySerializer):
    mode = EnumField(
        choices=[m.value for m in TestMode],
        required=False,
        help_text="Override the experiment's analysis mode for this answer (e.g. fixed for a planned final look).",
    )


# --- responses -------------------------------------------------------------------------------


class _VariantOut(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.CharField()
    weight = serializers.FloatField()
    configuration = serializers.DictField()
    modelId = serializers.UUIDField()

    class Meta:
        ref_name = "ExperimentVariant"


class ExperimentSerializer(serializers.Serializer):
    """An experiment: the request's fields plus ``id, status, statusReason, owner, seed-free assignment
    facts (weightsVersion), startedAt, endedAt, createdAt, updatedAt``."""

    id = serializers.UUIDField()
    name = serializers.CharField()
    description = serializers.CharField()
    modelId = serializers.UUIDField()
    deploymentId = serializers.UUIDField(allow_null=True)
    status = serializers.ChoiceField(choices=[s.value for s in ExperimentStatus])
    statusReason = serializers.CharField()
    variants = _VariantOut(many=True)
    traffic = serializers.DictField()
    duration = serializers.DictField()
    metrics = serializers.DictField()
    audience = serializers.DictField()
    analysis = serializers.DictField()
    weightsVersion = serializers.IntegerField()
    owner = serializers.CharField(allow_null=True)
    startedAt = serializers.DateTimeField(allow_null=True)
    endedAt = serializers.DateTimeField(allow_null=True)
    createdAt = serializers.DateTimeField()
    updatedAt = serializers.DateTimeField()

    class Meta:
        ref_name = "Experiment"

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return selectors.experiment_data(instance)


class ExperimentResponseSerializer(serializers.Serializer):
    experiment = ExperimentSerializer()


@extend_schema_serializer(many=False)
class ExperimentListResponseSerializer(serializers.Serializer):
    experiments = ExperimentSerializer(many=True)
    pagination = PaginationSerializer()


class _Primary(serializers.Serializer):
    value = serializers.FloatField(allow_null=True)
    confidence = serializers.FloatField()
    improvement = serializers.FloatField()
    interval = serializers.ListField(child=serializers.FloatField(allow_null=True), required=False)


class _VariantMetrics(serializers.Serializer):
    primary = _Primary()
    secondary = serializers.DictField()


class _Performance(serializers.Serializer):
    avgLatency = serializers.FloatField()
    successRate = serializers.FloatField()
    costPerRequest = serializers.FloatField()


class _ResultVariant(serializers.Serializer):
    name = serializers.CharField()
    traffic = serializers.FloatField()
    sampleSize = serializers.IntegerField()
    units = serializers.IntegerField()
    metrics = _VariantMetrics()
    performance = _Performance()
    guardrails = serializers.DictField(required=False)


class _Winner(serializers.Serializer):
    variant = serializers.CharField()
    confidence = serializers.FloatField()
    improvement = serializers.FloatField()


class _Recommendation(serializers.Serializer):
    type = serializers.ChoiceField(choices=["deploy_winner", "continue_testing", "adjust_weights"])
    message = serializers.CharField()
    action = serializers.CharField(required=False)


class ExperimentResultsSerializer(serializers.Serializer):
    """The spec's ``ExperimentResults`` (plus ``units``, ``interval``, ``guardrails``, ``srm``, ``analysis``)."""

    experimentId = serializers.UUIDField()
    status = serializers.CharField()
    duration = serializers.DictField()
    variants = _ResultVariant(many=True)
    winner = _Winner(required=False)
    recommendations = _Recommendation(many=True)
    srm = serializers.DictField(required=False)
    analysis = serializers.DictField()

    class Meta:
        ref_name = "ExperimentResults"


class AssignResponseSerializer(serializers.Serializer):
    experimentId = serializers.UUIDField()
    userId = serializers.CharField()
    included = serializers.BooleanField()
    reason = serializers.CharField()
    variant = serializers.CharField(allow_null=True)
    version = serializers.CharField(allow_null=True)
    modelId = serializers.UUIDField(allow_null=True)
    configuration = serializers.DictField(allow_null=True)
