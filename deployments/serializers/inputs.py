"""Request bodies of the deployments API, camelCase exactly as the spec writes them.

Request bodies check each field (type, range, syntax); rules spanning fields or needing
the model (``minReplicas <= replicas <= maxReplicas``, ``maxTokens`` within the
model's) are the services' (:func:`deployments.services.check_configuration`), so the
API, the admin and PATCH merges all meet the same rules.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from catalog.constants import MAX_CONTEXT_WINDOW
from deployments import config as cfg
from deployments.models import Environment
from modelhub.api.fields import EnumField, StringListField
from modelhub.api.serializers import StrictCharField, StrictInputSerializer, StrictRegexField

# --- Fields ------------------------------------------------------------------------------------


class CpuField(StrictRegexField):
    """A Kubernetes CPU quantity: ``"2"``, ``"0.5"``, ``"500m"`` (1m to 256 cores)."""

    def __init__(self, **kwargs: Any):
        super().__init__(r"^(?:\d+(?:\.\d+)?|\.\d+)m?$", max_length=32, trim_whitespace=False, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        try:
            cfg.cpu_millicores(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None
        return value


class MemoryField(StrictRegexField):
    """A Kubernetes memory quantity: ``"512Mi"``, ``"4Gi"``, ``"1G"``, plain bytes (1Mi to 64Ti)."""

    def __init__(self, **kwargs: Any):
        super().__init__(
            r"^(?:\d+(?:\.\d+)?|\.\d+)(?:Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|m)?$",
            max_length=32,
            trim_whitespace=False,
            **kwargs,
        )

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        try:
            cfg.memory_bytes(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None
        return value


@extend_schema_field({"type": "number", "exclusiveMinimum": 0, "maximum": cfg.MAX_TIMEOUT_SECONDS})
class TimeoutField(serializers.FloatField):
    """Seconds, more than 0 and at most 300."""

    def __init__(self, **kwargs: Any):
        super().__init__(min_value=0, max_value=cfg.MAX_TIMEOUT_SECONDS, **kwargs)

    def to_internal_value(self, data: Any) -> float | int:
        value = super().to_internal_value(data)
        if value <= 0:
            raise serializers.ValidationError("Must be greater than 0.")
        return int(value) if float(value).is_integer() else value


class ResourcesSerializer(StrictInputSerializer):
    cpu = CpuField()
    memory = MemoryField()
    gpu = StrictRegexField(
        r"^[A-Za-z0-9](?:[A-Za-z0-9._/-]{0,62}[A-Za-z0-9])?$",
        max_length=64,
        required=False,
        allow_null=True,
        trim_whitespace=False,
        help_text='A GPU count ("1") or type ("nvidia-tesla-t4"); null removes it (PATCH).',
    )

    class Meta:
        ref_name = "DeploymentResources"

    def validate_gpu(self, value: str | None) -> str | None:
        if value is not None and value.isdigit() and int(value) < 1:
            raise serializers.ValidationError("A GPU count must be at least 1.")
        return value


class ScalingSerializer(StrictInputSerializer):
    minReplicas = serializers.IntegerField(min_value=1, max_value=cfg.MAX_REPLICAS, required=False)
    maxReplicas = serializers.IntegerField(min_value=1, max_value=cfg.MAX_REPLICAS, required=False)
    targetCPUUtilization = serializers.IntegerField(min_value=1, max_value=100, required=False, help_text="Percent.")
    targetMemoryUtilization = serializers.IntegerField(min_value=1, max_value=100, required=False, help_text="Percent.")

    class Meta:
        ref_name = "DeploymentScaling"


class RateLimitingSerializer(StrictInputSerializer):
    requestsPerMinute = serializers.IntegerField(min_value=1, max_value=1_000_000, required=False)
    burstLimit = serializers.IntegerField(min_value=1, max_value=100_000, required=False, help_text="Per second.")

    class Meta:
        ref_name = "DeploymentRateLimiting"


class ResponseCacheSerializer(StrictInputSerializer):
    enabled = serializers.BooleanField(required=False)
    ttlSeconds = serializers.IntegerField(min_value=1, max_value=86_400, required=False, help_text="Default 300.")

    class Meta:
        ref_name = "DeploymentResponseCache"


# An optional field that ``null`` unsets (parameters, host, path).
OPTIONAL = {"required": False, "allow_null": True}


class DeploymentConfigurationSerializer(StrictInputSerializer):
    """``CreateDeploymentRequest.configuration``: runtime & parameters & networking & monitoring & security.

    The five sections' keys side by side (``resources``, ``scaling`` and
    ``rateLimiting`` stay objects). Only ``replicas`` and ``resources`` are required;
    the rest take the documented defaults. ``null`` unsets an optional field.
    """

    # runtime
    replicas = serializers.IntegerField(min_value=1, max_value=cfg.MAX_REPLICAS)
    resources = ResourcesSerializer()
    scaling = ScalingSerializer(required=False)
    # parameters (all optional)
    temperature = serializers.FloatField(min_value=0, max_value=2, **OPTIONAL)
    maxTokens = serializers.IntegerField(min_value=1, max_value=MAX_CONTEXT_WINDOW, **OPTIONAL)
    topP = serializers.FloatField(min_value=0, max_value=1, **OPTIONAL)
    topK = serializers.IntegerField(min_value=1, max_value=cfg.MAX_TOP_K, **OPTIONAL)
    frequencyPenalty = serializers.FloatField(min_value=-2, max_value=2, **OPTIONAL)
    presencePenalty = serializers.FloatField(min_value=-2, max_value=2, **OPTIONAL)
    stopSequences = serializers.ListField(
        child=StrictCharField(max_length=cfg.MAX_STOP_SEQUENCE_LENGTH, trim_whitespace=False),
        max_length=cfg.MAX_STOP_SEQUENCES,
        **OPTIONAL,
    )
    # networking
    port = serializers.IntegerField(min_value=1, max_value=65535, required=False)
    host = StrictRegexField(
        r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
        r"|^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*$",
        max_length=253,
        trim_whitespace=False,
        help_text="Where the model server listens; when set, the readiness check probes http://host:port/path.",
        **OPTIONAL,
    )
    path = StrictRegexField(r"^/[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*$", max_length=1024, trim_whitespace=False, **OPTIONAL)
    timeout = TimeoutField(required=False, help_text="Seconds per request/probe attempt (0 < timeout <= 300).")
    retries = serializers.IntegerField(min_value=0, max_value=cfg.MAX_RETRIES, required=False)
    scheme = EnumField(
        choices=[("http", "http"), ("https", "https")],
        **OPTIONAL,
        help_text="How the gateway and the probe reach the host (default http).",
    )
    apiBase = StrictRegexField(
        r"^/[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*$",
        max_length=1024,
        trim_whitespace=False,
        help_text="Path of the host's OpenAI-compatible API (default /v1): calls go to {scheme}://host:port{apiBase}.",
        **OPTIONAL,
    )
    upstreamModel = StrictRegexField(
        r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}$",
        max_length=200,
        trim_whitespace=False,
        help_text="The model name sent upstream (default: the registered model's name).",
        **OPTIONAL,
    )
    fallbacks = serializers.ListField(
        child=serializers.UUIDField(format="hex_verbose"),
        max_length=5,
        help_text="Deployments tried in order when this one answers 429, 5xx or times out.",
        **OPTIONAL,
    )
    responseCache = ResponseCacheSerializer(
        **OPTIONAL, help_text="Exact-match cache of deterministic (temperature 0) non-streaming answers."
    )
    # monitoring
    enableMetrics = serializers.BooleanField(required=False)
    metricsInterval = serializers.IntegerField(
        min_value=1, max_value=cfg.MAX_METRICS_INTERVAL_SECONDS, required=False, help_text="Seconds."
    )
    enableTracing = serializers.BooleanField(required=False)
    logLevel = EnumField(choices=[(v, v) for v in cfg.LOG_LEVELS], required=False)
    # security
    authentication = serializers.BooleanField(required=False)
    authorization = StringListField(max_items=50, max_item_length=100)
    rateLimiting = RateLimitingSerializer(required=False)

    class Meta:
        ref_name = "DeploymentConfiguration"

    def validate_fallbacks(self, value: list | None) -> list[str] | None:
        if value is None:
            return None
        ids = [str(v) for v in value]
        if len(set(ids)) != len(ids):
            raise serializers.ValidationError("Each fallback deployment may appear once.")
        return ids

    def validate_host(self, value: str | None) -> str | None:
        if value is not None and ":" in value:
            import ipaddress

            try:
                ipaddress.IPv6Address(value)
            except ValueError:
                raise serializers.ValidationError("Must be a host name, an IPv4 or an IPv6 address.") from None
        return value


class CreateDeploymentRequestSerializer(StrictInputSerializer):
    # validated_data is deployments.services.deployment_create's keywords (modelId -> model_id).
    modelId = serializers.UUIDField(source="model_id")
    version = StrictRegexField(r"^\S+$", max_length=64, trim_whitespace=False, help_text="Must be the model's version.")
    environment = EnumField(choices=Environment.choices)
    configuration = DeploymentConfigurationSerializer()

    class Meta:
        ref_name = "CreateDeploymentRequest"


class UpdateDeploymentRequestSerializer(StrictInputSerializer):
    """PUT: the whole configuration (omitted optional fields go back to their defaults)."""

    configuration = DeploymentConfigurationSerializer()

    class Meta:
        ref_name = "UpdateDeploymentRequest"


class _ResourcesPatchSerializer(ResourcesSerializer):
    cpu = CpuField(required=False)
    memory = MemoryField(required=False)

    class Meta:
        ref_name = "DeploymentResourcesPatch"


class DeploymentConfigurationPatchSerializer(DeploymentConfigurationSerializer):
    """PATCH's configuration: every field optional (OpenAPI says so too); the merge is checked whole."""

    replicas = serializers.IntegerField(min_value=1, max_value=cfg.MAX_REPLICAS, required=False)
    resources = _ResourcesPatchSerializer(required=False)

    class Meta:
        ref_name = "DeploymentConfigurationPatch"


class PatchDeploymentRequestSerializer(StrictInputSerializer):
    """PATCH: any subset of the configuration, merged into the current one (``null`` unsets)."""

    configuration = DeploymentConfigurationPatchSerializer(required=False)

    class Meta:
        ref_name = "PatchDeploymentRequest"


class ScaleRequestSerializer(StrictInputSerializer):
    replicas = serializers.IntegerField(min_value=1, max_value=cfg.MAX_REPLICAS)
    reason = StrictCharField(max_length=500, required=False, allow_blank=True)

    class Meta:
        ref_name = "ScaleRequest"
