"""Analytics request and response shapes (OpenAPI), and the alert representation.

:class:`UsageEventSerializer` is the one declaration of a usage event: OpenAPI documents it and
:mod:`analytics.ingest` reads its validation table off it (then checks events in a tight loop,
not through serializer objects - ingestion is the hottest path).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from analytics.models import Alert, AlertSeverity, AlertStatus, AlertType, Environment, Granularity
from modelhub.api.compiled import CompiledSerializer, computed
from modelhub.api.fields import EnumField
from modelhub.api.params import IsoDateTimeParam, QuerySerializer
from modelhub.api.schema import PaginationSerializer
from modelhub.api.serializers import StrictInputSerializer


class UsageEventSerializer(StrictInputSerializer):
    requestId = serializers.CharField(
        max_length=128, help_text="Client-chosen and unique; a re-sent id is counted once."
    )
    timestamp = serializers.DateTimeField(
        help_text="When the request happened (ISO 8601 with a time zone); at most 5 minutes ahead."
    )
    modelId = serializers.UUIDField()
    deploymentId = serializers.UUIDField(required=False, allow_null=True)
    environment = EnumField(
        choices=Environment.choices, required=False, help_text="Defaults to the deployment's, else production."
    )
    userId = serializers.CharField(max_length=255, required=False, allow_blank=True, help_text="The model's end user.")
    latencyMs = serializers.FloatField(min_value=0, max_value=86_400_000)
    promptTokens = serializers.IntegerField(min_value=0, max_value=100_000_000)
    completionTokens = serializers.IntegerField(min_value=0, max_value=100_000_000)
    cost = serializers.FloatField(
        min_value=0,
        max_value=1_000_000,
        required=False,
        allow_null=True,
        help_text="USD; computed from the model's costPer1kTokens when absent.",
    )
    success = serializers.BooleanField()
    errorCode = serializers.CharField(max_length=64, required=False, allow_blank=True)
    errorMessage = serializers.CharField(max_length=1000, required=False, allow_blank=True)
    confidenceScore = serializers.FloatField(min_value=0, max_value=1, required=False, allow_null=True)
    userRating = serializers.IntegerField(min_value=1, max_value=5, required=False, allow_null=True)
    accepted = serializers.BooleanField(required=False, allow_null=True)
    useCase = serializers.CharField(max_length=100, required=False, allow_blank=True)
    experimentId = serializers.CharField(max_length=64, required=False, allow_blank=True)
    variant = serializers.CharField(max_length=64, required=False, allow_blank=True)
    promptHash = serializers.CharField(max_length=128, required=False, allow_blank=True)
    clientRequestId = serializers.CharField(
        max_length=128,
        required=False,
        allow_blank=True,
        help_text="Links the attempts (retries, fallbacks) of one client call; the gateway sets it.",
    )
    attempt = serializers.IntegerField(min_value=1, max_value=100, required=False, help_text="1 for the first try.")
    cached = serializers.BooleanField(required=False, help_text="Answered from the gateway's response cache.")
    reservationId = serializers.CharField(
        max_length=64,
        required=False,
        allow_blank=True,
        help_text="The reservationId of POST /cost/authorize this call spent (settles that reservation).",
    )


class EventBatchField(serializers.ListField):
    """The batch: its length is checked here; each event by :mod:`analytics.ingest`, item by item
    (a bad event is reported by index and the valid ones are stored - not a 400 for the batch)."""

    def to_internal_value(self, data: Any) -> list[Any]:
        if not isinstance(data, list):
            self.fail("not_a_list", input_type=type(data).__name__)
        if len(data) < self.min_length:
            self.fail("min_length", min_length=self.min_length)
        if len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return data


class IngestRequestSerializer(StrictInputSerializer):
    events = EventBatchField(
        child=UsageEventSerializer(), min_length=1, max_length=settings.ANALYTICS_INGEST_MAX_EVENTS
    )


class FieldProblemSerializer(serializers.Serializer):
    field = serializers.CharField()
    code = serializers.CharField()
    message = serializers.CharField()


class RejectedEventSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    requestId = serializers.CharField(allow_null=True)
    code = serializers.CharField()
    message = serializers.CharField()
    fields = FieldProblemSerializer(many=True)


class IngestResponseSerializer(serializers.Serializer):
    accepted = serializers.IntegerField(help_text="Events stored by this call.")
    duplicates = serializers.IntegerField(
        help_text="Events whose requestId was already stored (or repeated in the batch)."
    )
    rejected = serializers.IntegerField()
    errors = RejectedEventSerializer(many=True)


def _no_deployment(alert: Alert) -> None:
    return None


class PerformanceQuerySerializer(QuerySerializer):
    """``GET /analytics/models/{modelId}/performance``'s query (the window's own rules: the selector's)."""

    from_ = IsoDateTimeParam(
        required=False, help_text="Start (ISO 8601; floored to the granularity). Default: `to` minus 24 hours."
    )
    to = IsoDateTimeParam(required=False, help_text="End (ISO 8601; ceiled to the granularity). Default: now.")
    granularity = EnumField(choices=Granularity.choices, default="1h", help_text="Bucket size.")
    deploymentId = serializers.UUIDField(required=False, help_text="Only this deployment (of this model).")
    environment = EnumField(choices=Environment.choices, required=False)


class TimeRangeSerializer(serializers.Serializer):
    to = serializers.DateTimeField()
    granularity = serializers.CharField()

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        fields["from"] = serializers.DateTimeField()
        return fields


class _Requests(serializers.Serializer):
    total = serializers.IntegerField()
    successful = serializers.IntegerField()
    failed = serializers.IntegerField()
    successRate = serializers.FloatField()
    errorRate = serializers.FloatField()


class _Latency(serializers.Serializer):
    avg = serializers.FloatField()
    p50 = serializers.FloatField()
    p95 = serializers.FloatField()
    p99 = serializers.FloatField()
    min = serializers.FloatField()
    max = serializers.FloatField()


class _TokenStats(serializers.Serializer):
    total = serializers.IntegerField()
    avgPerRequest = serializers.FloatField()
    maxPerRequest = serializers.IntegerField()


class _Tokens(serializers.Serializer):
    prompt = _TokenStats()
    completion = _TokenStats()
    total = serializers.IntegerField()


class _Cost(serializers.Serializer):
    total = serializers.FloatField()
    avgPerRequest = serializers.FloatField()
    costPer1kTokens = serializers.FloatField()
    projectedMonthly = serializers.FloatField()


class _Quality(serializers.Serializer):
    avgConfidenceScore = serializers.FloatField()
    avgUserRating = serializers.FloatField()
    acceptanceRate = serializers.FloatField()
    rejectionRate = serializers.FloatField()


class _ErrorStat(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    count = serializers.IntegerField()
    percentage = serializers.FloatField(help_text="Share of all requests in the window, in percent.")
    lastOccurred = serializers.DateTimeField()


class _Point(serializers.Serializer):
    timestamp = serializers.DateTimeField()
    requests = serializers.IntegerField()
    latency = serializers.FloatField(help_text="Average latency (ms) in the bucket.")
    cost = serializers.FloatField()
    errors = serializers.IntegerField()


class PerformanceMetricsSerializer(serializers.Serializer):
    modelId = serializers.UUIDField()
    deploymentId = serializers.UUIDField(allow_null=True)
    timeRange = TimeRangeSerializer()
    requests = _Requests()
    latency = _Latency()
    tokens = _Tokens()
    cost = _Cost()
    quality = _Quality()
    errors = _ErrorStat(many=True)
    timeSeries = _Point(many=True)

    class Meta:
        ref_name = "PerformanceMetrics"


class _TrendPoint(serializers.Serializer):
    timestamp = serializers.DateTimeField()
    value = serializers.FloatField()


class _Trends(serializers.Serializer):
    requests = _TrendPoint(many=True)
    latency = _TrendPoint(many=True, help_text="p95 latency (ms) per bucket.")
    cost = _TrendPoint(many=True)
    errors = _TrendPoint(many=True)


class InsightSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["performance", "cost", "quality", "usage"])
    severity = serializers.ChoiceField(choices=AlertSeverity.choices)
    message = serializers.CharField()
    recommendation = serializers.CharField(required=False)


class PerformanceResponseSerializer(serializers.Serializer):
    modelId = serializers.UUIDField()
    deploymentId = serializers.UUIDField(allow_null=True)
    metrics = PerformanceMetricsSerializer()
    trends = _Trends()
    insights = InsightSerializer(many=True)


class _Summary(serializers.Serializer):
    totalModels = serializers.IntegerField()
    activeDeployments = serializers.IntegerField()
    totalRequests = serializers.IntegerField()
    totalCost = serializers.FloatField()
    avgLatency = serializers.FloatField()
    avgRating = serializers.FloatField()
    errorRate = serializers.FloatField(help_text="Extension: failed requests / requests over the window (0-1).")
    p95Latency = serializers.FloatField(help_text="Extension: p95 latency (ms) over the window, from the sketches.")


class _DashboardTrend(serializers.Serializer):
    timestamp = serializers.DateTimeField(help_text="Start of the hour.")
    requests = serializers.IntegerField()
    errors = serializers.IntegerField()
    cost = serializers.FloatField()
    latencyP50 = serializers.FloatField()
    latencyP95 = serializers.FloatField()
    latencyP99 = serializers.FloatField()


class _TopModel(serializers.Serializer):
    modelId = serializers.UUIDField()
    name = serializers.CharField()
    requests = serializers.IntegerField()
    cost = serializers.FloatField()
    rating = serializers.FloatField()


class _Activity(serializers.Serializer):
    timestamp = serializers.DateTimeField()
    type = serializers.ChoiceField(choices=["deployment", "request", "error", "scaling"])
    modelId = serializers.UUIDField()
    message = serializers.CharField()


class _DashboardAlert(serializers.Serializer):
    id = serializers.UUIDField()
    type = serializers.CharField()
    severity = serializers.CharField()
    message = serializers.CharField()
    timestamp = serializers.DateTimeField()


class _DashboardWindow(serializers.Serializer):
    to = serializers.DateTimeField()

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        fields["from"] = serializers.DateTimeField()
        return fields


class DashboardResponseSerializer(serializers.Serializer):
    summary = _Summary()
    topModels = _TopModel(many=True)
    recentActivity = _Activity(many=True)
    alerts = _DashboardAlert(many=True)
    window = _DashboardWindow(help_text="The 24 hours the summary and top models cover.")
    trends = _DashboardTrend(many=True, help_text="Extension: one point per hour of the window, for charts.")


class AlertSerializer(CompiledSerializer):
    id = serializers.UUIDField()
    type = serializers.ChoiceField(choices=AlertType.choices)
    severity = serializers.ChoiceField(choices=AlertSeverity.choices)
    status = serializers.ChoiceField(choices=AlertStatus.choices)
    message = serializers.CharField()
    modelId = serializers.UUIDField(source="model_id")
    deploymentId = computed(
        serializers.UUIDField, _no_deployment, allow_null=True, help_text="Always null: alerts are per model."
    )
    value = serializers.FloatField(source="metric_value", help_text="The metric when the alert was last checked.")
    threshold = serializers.FloatField()
    timestamp = serializers.DateTimeField(source="opened_at", help_text="When it opened.")
    acknowledgedAt = serializers.DateTimeField(source="acknowledged_at", allow_null=True)
    resolvedAt = serializers.DateTimeField(source="resolved_at", allow_null=True)


class AlertResponseSerializer(serializers.Serializer):
    alert = AlertSerializer()


@extend_schema_serializer(many=False)  # already the whole paginated body: spectacular must not wrap it again
class AlertListResponseSerializer(serializers.Serializer):
    alerts = AlertSerializer(many=True)
    pagination = PaginationSerializer()
