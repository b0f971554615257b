"""Response shapes of the deployments API, declared once and compiled (:mod:`modelhub.api.compiled`).

Instances come from :func:`deployments.selectors.deployment_queryset` (``model_name`` and
``owner_username`` are its annotations). A deployment's configuration is stored JSON written
only through the request serializers and :func:`deployments.config.nest`, so its sections are
``compiled_from = "json"``: the fast path shows them as stored (as the hand-written one did),
and ``tests/api/test_serializers.py`` holds DRF's reading of the declarations to the same JSON.
Numbers in it are shown as stored (:class:`modelhub.api.fields.NumberField`: ``timeout: 10``
stays ``10``).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from deployments import config as cfg
from deployments.models import Deployment, DeploymentStatus, Environment
from deployments.selectors import deployment_endpoint
from modelhub.api.compiled import CompiledSerializer, computed
from modelhub.api.fields import NumberField
from modelhub.api.schema import PaginationSerializer

# --- The configuration's sections (stored JSON) ------------------------------------------------


class _Resources(serializers.Serializer):
    cpu = serializers.CharField()
    memory = serializers.CharField()
    gpu = serializers.CharField(required=False)

    class Meta:
        ref_name = "DeploymentResources"
        compiled_from = "json"


class _Scaling(serializers.Serializer):
    minReplicas = serializers.IntegerField()
    maxReplicas = serializers.IntegerField()
    targetCPUUtilization = serializers.IntegerField()
    targetMemoryUtilization = serializers.IntegerField()

    class Meta:
        ref_name = "DeploymentScaling"
        compiled_from = "json"


class _Runtime(serializers.Serializer):
    replicas = serializers.IntegerField()
    resources = _Resources()
    scaling = _Scaling()

    class Meta:
        ref_name = "DeploymentRuntime"
        compiled_from = "json"  # as configuration_source builds it


class _Parameters(serializers.Serializer):
    temperature = NumberField(required=False)
    maxTokens = serializers.IntegerField(required=False)
    topP = NumberField(required=False)
    topK = serializers.IntegerField(required=False)
    frequencyPenalty = NumberField(required=False)
    presencePenalty = NumberField(required=False)
    stopSequences = serializers.ListField(child=serializers.CharField(), required=False)

    class Meta:
        ref_name = "DeploymentParameters"
        compiled_from = "json"


class _ResponseCache(serializers.Serializer):
    enabled = serializers.BooleanField(required=False)
    ttlSeconds = serializers.IntegerField(required=False)

    class Meta:
        ref_name = "DeploymentResponseCacheConfig"
        compiled_from = "json"


class _Networking(serializers.Serializer):
    port = serializers.IntegerField()
    host = serializers.CharField(required=False)
    path = serializers.CharField(required=False)
    timeout = NumberField(help_text="Seconds.")
    retries = serializers.IntegerField()
    scheme = serializers.CharField(required=False)
    apiBase = serializers.CharField(required=False)
    upstreamModel = serializers.CharField(required=False)
    fallbacks = serializers.ListField(child=serializers.UUIDField(), required=False)
    responseCache = _ResponseCache(required=False)

    class Meta:
        ref_name = "DeploymentNetworking"
        compiled_from = "json"


class _Monitoring(serializers.Serializer):
    enableMetrics = serializers.BooleanField()
    metricsInterval = serializers.IntegerField(help_text="Seconds.")
    enableTracing = serializers.BooleanField()
    logLevel = serializers.ChoiceField(choices=[(v, v) for v in cfg.LOG_LEVELS])

    class Meta:
        ref_name = "DeploymentMonitoring"
        compiled_from = "json"


class _RateLimiting(serializers.Serializer):
    requestsPerMinute = serializers.IntegerField()
    burstLimit = serializers.IntegerField()

    class Meta:
        ref_name = "DeploymentRateLimiting"
        compiled_from = "json"


class _Security(serializers.Serializer):
    authentication = serializers.BooleanField()
    authorization = serializers.ListField(child=serializers.CharField())
    rateLimiting = _RateLimiting()

    class Meta:
        ref_name = "DeploymentSecurity"
        compiled_from = "json"


class DeploymentConfigSerializer(serializers.Serializer):
    """The spec's ``DeploymentConfig``, whole, plus the ``schemaVersion`` it is stored with."""

    # Its instance is configuration_source(deployment).

    id = serializers.UUIDField()
    modelId = serializers.UUIDField()
    version = serializers.CharField()
    environment = serializers.ChoiceField(choices=Environment.choices)
    runtime = _Runtime()
    parameters = _Parameters()
    networking = _Networking()
    monitoring = _Monitoring()
    security = _Security()
    schemaVersion = serializers.IntegerField()

    class Meta:
        ref_name = "DeploymentConfig"
        compiled_from = "mapping"


def configuration_source(d: Deployment) -> dict[str, Any]:
    """What ``DeploymentConfig`` shows: the stored configuration, upgraded to the current schema
    version (every section present, see :func:`deployments.config.nest`), beside the deployment's
    identity and its ``replicas`` column."""
    stored = d.config
    return {
        **stored,
        "id": d.id,
        "modelId": d.model_id,
        "version": d.version,
        "environment": d.environment,
        "runtime": {"replicas": d.replicas, **stored["runtime"]},  # stored: resources, scaling
    }


# --- Deployments ---------------------------------------------------------------------------------


class DeploymentSerializer(CompiledSerializer):
    """The spec's ``DeploymentResponse.deployment`` plus what a client needs to follow it."""

    id = serializers.UUIDField()
    modelId = serializers.UUIDField(source="model_id")
    modelName = serializers.CharField(source="model_name")
    version = serializers.CharField()
    environment = serializers.ChoiceField(choices=Environment.choices)
    status = serializers.ChoiceField(choices=DeploymentStatus.choices)
    statusReason = serializers.CharField(
        source="status_reason", help_text="Why the last transition happened (e.g. why it failed)."
    )
    replicas = serializers.IntegerField()
    targetReplicas = serializers.IntegerField(
        allow_null=True, source="target_replicas", help_text="While scaling: the replicas it moves to."
    )
    endpoint = computed(
        serializers.URLField, deployment_endpoint, help_text="{PUBLIC_BASE_URL}/api/v1/modelhub/deployments/{id}"
    )
    configuration = computed(DeploymentConfigSerializer, configuration_source)
    owner = serializers.CharField(
        allow_null=True, source="owner_username", help_text="Username of the user who created it."
    )
    createdAt = serializers.DateTimeField(source="created_at")
    updatedAt = serializers.DateTimeField(source="updated_at")
    lastHealthCheck = serializers.DateTimeField(allow_null=True, source="last_health_check")

    class Meta:
        ref_name = "Deployment"


class DeploymentResponseSerializer(serializers.Serializer):
    deployment = DeploymentSerializer()

    class Meta:
        ref_name = "DeploymentResponse"


class DeploymentListItemSerializer(CompiledSerializer):
    """One item of ``DeploymentListResponse.deployments``, exactly the spec's fields."""

    id = serializers.UUIDField()
    modelId = serializers.UUIDField(source="model_id")
    modelName = serializers.CharField(source="model_name")
    version = serializers.CharField()
    environment = serializers.ChoiceField(choices=Environment.choices)
    status = serializers.ChoiceField(choices=DeploymentStatus.choices)
    replicas = serializers.IntegerField()
    createdAt = serializers.DateTimeField(source="created_at")
    updatedAt = serializers.DateTimeField(source="updated_at")
    lastHealthCheck = serializers.DateTimeField(allow_null=True, source="last_health_check")

    class Meta:
        ref_name = "DeploymentListItem"


@extend_schema_serializer(many=False)
class DeploymentListResponseSerializer(serializers.Serializer):
    deployments = DeploymentListItemSerializer(many=True)
    pagination = PaginationSerializer()

    class Meta:
        ref_name = "DeploymentListResponse"
