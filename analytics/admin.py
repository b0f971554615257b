"""Admin for analytics: alerts (acknowledge), and read-only views of events and rollups."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages

from analytics import services
from analytics.models import Alert, AlertStatus, MetricBucket, UsageEvent, UsageEventKey


class ReadOnlyAdmin(admin.ModelAdmin):
    """Events and buckets are written by ingestion and the rollup only."""

    show_full_result_count = False  # COUNT(*) over millions of events on every page is not worth it

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(UsageEvent)
class UsageEventAdmin(ReadOnlyAdmin):
    list_display = ("request_id", "timestamp", "model", "environment", "latency_ms", "success", "error_code", "cost")
    list_filter = ("environment", "success")
    search_fields = ("=request_id",)
    date_hierarchy = "timestamp"
    list_select_related = ("model",)

    def get_search_results(self, request: Any, queryset: Any, search_term: str) -> tuple[Any, bool]:
        # request_id is not indexed on the (partitioned) events table: its key gives the timestamp,
        # so the search reads one partition.
        term = search_term.strip()
        if not term:
            return queryset, False
        at = UsageEventKey.objects.filter(pk=term).values_list("timestamp", flat=True).first()
        return (queryset.filter(request_id=term, timestamp=at) if at else queryset.none()), False


@admin.register(MetricBucket)
class MetricBucketAdmin(ReadOnlyAdmin):
    list_display = (
        "granularity",
        "bucket_start",
        "model",
        "deployment_key",
        "environment",
        "request_count",
        "failure_count",
        "cost_sum",
    )
    list_filter = ("granularity", "environment")
    list_select_related = ("model",)
    exclude = ("latency_sketch",)


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ("opened_at", "type", "severity", "status", "model", "message", "resolved_at")
    list_filter = ("status", "severity", "type")
    list_select_related = ("model",)
    readonly_fields = [f.name for f in Alert._meta.fields]
    actions = ["acknowledge"]

    def has_add_permission(self, request: Any) -> bool:
        return False

    @admin.action(description="Acknowledge selected open alerts")
    def acknowledge(self, request: Any, queryset: Any) -> None:
        done = 0
        for alert in queryset.filter(status=AlertStatus.OPEN):
            services.alert_acknowledge(alert=alert, actor=request.user)
            done += 1
        self.message_user(request, f"Acknowledged {done} alert(s).", messages.SUCCESS)
