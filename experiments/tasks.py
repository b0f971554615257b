"""Celery tasks of experiments (beat, modelhub/settings.py). Both are safe to run twice and concurrently:
the schedule moves experiments through conditional transitions; the aggregation recomputes claimed
hours from raw events and replaces their rows."""

from __future__ import annotations

from celery import shared_task

from experiments import services


@shared_task(name="experiments.schedule", acks_late=True, ignore_result=True)
def experiments_schedule() -> dict[str, int]:
    """Beat (every 30 s): start drafts at startDate, complete running experiments at endDate."""
    return services.experiments_schedule()


@shared_task(name="experiments.aggregate", acks_late=True, ignore_result=True)
def experiments_aggregate() -> dict[str, int]:
    """Beat (every 60 s): recompute the hours the analytics rollup re-marked; publish experiment:update."""
    return services.experiments_aggregate()
