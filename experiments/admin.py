"""The Django admin of experiments: read mostly; lifecycle changes go through the services."""

from __future__ import annotations

from django.contrib import admin

from experiments import services
from experiments.models import Experiment, ExperimentTransition, Variant


class VariantInline(admin.TabularInline):
    model = Variant
    extra = 0
    readonly_fields = ("position", "name", "version", "model", "weight", "configuration")
    can_delete = False


class TransitionInline(admin.TabularInline):
    model = ExperimentTransition
    extra = 0
    readonly_fields = ("created_at", "action", "from_status", "to_status", "actor_username", "reason", "details")
    can_delete = False


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    list_display = ("name", "model", "status", "start_date", "end_date", "owner", "created_at")
    list_filter = ("status",)
    search_fields = ("name",)
    # The definition is read-only here: the API's services check it (rules compile, targets the actor may
    # change, dates, variants); a rule saved unchecked here would reach the gateway's plans.
    readonly_fields = (
        "model",
        "deployment",
        "traffic",
        "start_date",
        "end_date",
        "metrics",
        "audience",
        "analysis",
        "seed",
        "status",
        "status_reason",
        "started_at",
        "ended_at",
        "aggregated_at",
        "weights_version",
    )
    inlines = (VariantInline, TransitionInline)
    actions = ("reaggregate",)

    @admin.action(description="Recompute results from raw events")
    def reaggregate(self, request, queryset):
        for experiment in queryset:
            services.experiment_reaggregate(experiment=experiment)
