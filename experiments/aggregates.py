"""The result aggregates of experiments: per variant × unit × hour sums recomputed from raw usage events.

The analytics rollup tells :func:`mark_hours` (its ``HOURS_ROLLED_UP`` slot) which (model, hour) pairs it
recomputed; :func:`experiments_aggregate` (a Celery task every minute) recomputes the marked hours of each
experiment from their raw rows, replacing that hour's rows (never incrementing), then the per-variant
summaries the results endpoint reads. Public through :mod:`experiments.services`.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from analytics.selectors import experiments as analytics_experiments
from experiments import selectors
from experiments.constants import METRICS, PRE_PERIOD_DAYS, RATIO_PAIRS, SUMS, ExperimentStatus
from experiments.models import (
    Assignment,
    DirtyHour,
    Experiment,
    ExperimentUnitHour,
    PreUnit,
    Variant,
    VariantHourSketch,
    VariantSummary,
)

PUBLISH_INTERVAL_SECONDS = 10


def mark_hours(pairs: list[tuple[Any, Any]]) -> int:
    """The analytics rollup recomputed these (model, hour) pairs: mark the hours of the experiments
    whose arms serve those models (inside the rollup's transaction; an insert that ignores repeats)."""
    if not pairs:
        return 0
    model_ids = list({m for m, _ in pairs})
    marks = []
    for experiment_id, started, models in selectors.running_for_models(model_ids):
        first = started.replace(minute=0, second=0, microsecond=0) if started else None
        for model_id, hour in pairs:
            if model_id in models and (first is None or hour >= first - timedelta(hours=1)):
                marks.append(DirtyHour(experiment_id=experiment_id, hour=hour))
    if marks:
        DirtyHour.objects.bulk_create(marks, ignore_conflicts=True)
    return len(marks)


def _model_ids(experiment_id: Any) -> list[Any]:
    return list(Variant.objects.filter(experiment_id=experiment_id).values_list("model_id", flat=True).distinct())


def recompute_hour(experiment_id: Any, hour: Any, model_ids: list[Any] | None = None) -> int:
    """Recompute one (experiment, hour) from its raw events and replace its rows (idempotent). ``model_ids`` is
    accepted for the callers' sake; the events are chosen per variant by the variant's own model."""
    # the events that measure a variant: no cache hits, its own model, a call's last attempt (README "Experiments")
    arms = dict(Variant.objects.filter(experiment_id=experiment_id).values_list("name", "model_id"))
    names = set(arms)
    units, sketches = analytics_experiments.experiment_hour(experiment_id, arms, hour)
    units = [u for u in units if u["variant"] in names]
    ExperimentUnitHour.objects.filter(experiment_id=experiment_id, hour=hour).delete()
    VariantHourSketch.objects.filter(experiment_id=experiment_id, hour=hour).delete()
    ExperimentUnitHour.objects.bulk_create(
        [
            ExperimentUnitHour(
                experiment_id=experiment_id,
                hour=hour,
                variant=u["variant"],
                unit_id=u["unit"][:255],
                **{name: u[name] or 0 for name in SUMS},
            )
            for u in units
        ],
        batch_size=5000,
    )
    VariantHourSketch.objects.bulk_create(
        [
            VariantHourSketch(experiment_id=experiment_id, hour=hour, variant=v, sketch=s)
            for v, s in sketches.items()
            if v in names
        ]
    )
    Assignment.objects.bulk_create(
        [
            Assignment(experiment_id=experiment_id, unit_id=u["unit"][:255], variant=u["variant"], assigned_at=hour)
            for u in units
        ],
        ignore_conflicts=True,
        batch_size=5000,
    )
    return len(units)


def recompute_summary(experiment_id: Any) -> None:
    """Per variant: units and Σs, Σs² of every per-unit sum, Σ(num·den) for the metrics, the merged sketch."""
    table = ExperimentUnitHour._meta.db_table
    inner = ", ".join(f"SUM({s}) AS {s}" for s in SUMS)
    outer = ", ".join(f"SUM({s}), SUM({s} * {s})" for s in SUMS)
    cross = ", ".join(f"SUM({a} * {b})" for a, b in RATIO_PAIRS)
    # Column names come from constants.SUMS and METRICS, never from input.
    sql = (
        f"SELECT variant, COUNT(*), {outer}, {cross} FROM "  # noqa: S608
        f"(SELECT variant, unit_id, {inner} FROM {table} WHERE experiment_id = %s GROUP BY variant, unit_id) u "
        "GROUP BY variant"
    )
    experiment_uuid = uuid.UUID(str(experiment_id))
    key = experiment_uuid.hex if connection.vendor == "sqlite" else str(experiment_uuid)
    with connection.cursor() as cursor:
        cursor.execute(sql, [key])
        rows = cursor.fetchall()
    pre = _pre_sums(experiment_id, key)
    sketches: dict[str, list[dict]] = {}
    for variant, sketch in VariantHourSketch.objects.filter(experiment_id=experiment_id).values_list(
        "variant", "sketch"
    ):
        sketches.setdefault(variant, []).append(sketch)
    summaries = []
    for row in rows:
        variant, units, values = row[0], row[1], [float(v or 0) for v in row[2:]]
        sums: dict[str, Any] = {}
        for i, s in enumerate(SUMS):
            sums[s] = [values[2 * i], values[2 * i + 1]]
        offset = 2 * len(SUMS)
        for j, (a, b) in enumerate(RATIO_PAIRS):
            sums[f"{a}*{b}"] = values[offset + j]
        if variant in pre:
            sums["pre"] = pre[variant]
        summaries.append(
            VariantSummary(
                experiment_id=experiment_id,
                variant=variant,
                units=units,
                sums=sums,
                sketch=analytics_experiments.sketch_merge(sketches.get(variant, [])),
            )
        )
    VariantSummary.objects.filter(experiment_id=experiment_id).delete()
    VariantSummary.objects.bulk_create(summaries)
    Experiment.objects.filter(pk=experiment_id).update(aggregated_at=timezone.now())


def _pre_sums(experiment_id: Any, key: str) -> dict[str, dict[str, Any]]:
    """CUPED: per variant, the primary metric's pre-period sums of its units and their cross sums with the
    experiment-period ones (units without a pre-period count as zeros). Empty without pre-period data."""
    experiment = Experiment.objects.filter(pk=experiment_id).values("metrics", "pre_period_at").first()
    if not experiment or experiment["pre_period_at"] is None:
        return {}
    metric = METRICS[experiment["metrics"]["primary"]]
    x, y = metric.numerator, metric.denominator  # column names from the catalogue, never from input
    sql = (
        f"SELECT u.variant, SUM(p.{x}), SUM(p.{x} * p.{x}), SUM(p.{y}), SUM(p.{y} * p.{y}), SUM(p.{x} * p.{y}), "  # noqa: S608
        f"SUM(u.x * p.{x}), SUM(u.x * p.{y}), SUM(u.y * p.{x}), SUM(u.y * p.{y}) FROM "
        f"(SELECT variant, unit_id, SUM({x}) AS x, SUM({y}) AS y FROM {ExperimentUnitHour._meta.db_table} "
        "WHERE experiment_id = %s GROUP BY variant, unit_id) u "
        f"JOIN {PreUnit._meta.db_table} p ON p.experiment_id = %s AND p.unit_id = u.unit_id GROUP BY u.variant"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [key, key])
        rows = cursor.fetchall()
    out = {}
    for row in rows:
        v = [float(value or 0) for value in row[1:]]
        out[row[0]] = {
            "metric": experiment["metrics"]["primary"],
            "x0": [v[0], v[1]],
            "y0": [v[2], v[3]],
            "x0*y0": v[4],
            "x*x0": v[5],
            "x*y0": v[6],
            "y*x0": v[7],
            "y*y0": v[8],
        }
    return out


def take_pre_period(experiment: Experiment) -> int:
    """CUPED's covariate, once per experiment: its users' sums over the ``PRE_PERIOD_DAYS`` before the start
    (replaced if taken again; idempotent)."""
    started = experiment.started_at or experiment.start_date
    model_ids = _model_ids(experiment.pk)
    rows = analytics_experiments.experiment_pre_period(model_ids, started - timedelta(days=PRE_PERIOD_DAYS), started)
    with transaction.atomic():
        PreUnit.objects.filter(experiment_id=experiment.pk).delete()
        PreUnit.objects.bulk_create(
            [
                PreUnit(experiment_id=experiment.pk, unit_id=r["unit"][:255], **{n: r[n] or 0 for n in SUMS})
                for r in rows
            ],
            batch_size=5000,
        )
        Experiment.objects.filter(pk=experiment.pk).update(pre_period_at=timezone.now())
    return len(rows)


def _wants_pre_period(experiment_id: Any) -> Experiment | None:
    experiment = Experiment.objects.filter(pk=experiment_id, pre_period_at__isnull=True).first()
    if experiment is None or not (experiment.analysis or {}).get("cuped"):
        return None
    return experiment


def experiment_reaggregate(*, experiment: Experiment) -> int:
    """Recompute every hour of the experiment from raw events (admin action, benchmarks, repairs)."""
    model_ids = _model_ids(experiment.pk)
    start = (experiment.started_at or experiment.start_date) - timedelta(hours=1)
    end = (experiment.ended_at or timezone.now()) + timedelta(days=1)
    hours = analytics_experiments.experiment_event_hours(experiment.pk, model_ids, start, end)
    if (experiment.analysis or {}).get("cuped") and experiment.status != ExperimentStatus.DRAFT:
        take_pre_period(experiment)
    with transaction.atomic():
        Experiment.objects.select_for_update().filter(pk=experiment.pk).first()
        ExperimentUnitHour.objects.filter(experiment=experiment).exclude(hour__in=hours).delete()
        VariantHourSketch.objects.filter(experiment=experiment).exclude(hour__in=hours).delete()
        for hour in hours:
            recompute_hour(experiment.pk, hour, model_ids)
        recompute_summary(experiment.pk)
    return len(hours)


def experiments_aggregate(*, limit: int = 500) -> dict[str, int]:
    """Claim dirty (experiment, hour) marks, recompute them and the experiments' summaries; publish
    ``experiment:update`` with results (at most every 10 s per experiment), and stop an experiment whose
    guardrail failed when it asked for ``autoStop``. Marks are claimed (deleted) at the start of the
    transaction that recomputes them, so a mark re-created meanwhile survives for the next run."""
    from experiments.results import experiment_results
    from experiments.services import _publish, experiment_stop

    report = {"hours": 0, "experiments": 0}
    experiment_ids = list(DirtyHour.objects.values_list("experiment_id", flat=True).distinct()[:limit])
    for experiment_id in experiment_ids:
        wanting = _wants_pre_period(experiment_id)
        if wanting is not None:
            take_pre_period(wanting)
        with transaction.atomic():
            if Experiment.objects.select_for_update().filter(pk=experiment_id).first() is None:
                continue
            # Claim the marks first: delete them, then recompute. A rollup re-marking an hour meanwhile inserts
            # a new mark (it waits for this delete to commit), which the next run picks up; deleting after the
            # recompute would delete that re-mark too and its events would never be aggregated.
            marks = list(
                DirtyHour.objects.select_for_update()
                .filter(experiment_id=experiment_id)
                .order_by("hour")
                .values_list("pk", "hour")[:limit]
            )
            DirtyHour.objects.filter(pk__in=[pk for pk, _ in marks]).delete()
            model_ids = _model_ids(experiment_id)
            for _, hour in marks:
                recompute_hour(experiment_id, hour, model_ids)
            recompute_summary(experiment_id)
        report["hours"] += len(marks)
        report["experiments"] += 1
        experiment = selectors.experiment_queryset().get(pk=experiment_id)
        results = experiment_results(experiment)
        failed = [
            g for v in results["variants"] for g, r in (v.get("guardrails") or {}).items() if r["status"] == "failed"
        ]
        throttle_key = f"experiments:published:{experiment_id}"
        if failed or (results.get("srm") or {}).get("mismatch") or cache.add(throttle_key, 1, PUBLISH_INTERVAL_SECONDS):
            _publish(experiment, results)
        if (
            failed
            and experiment.status == ExperimentStatus.RUNNING
            and selectors.analysis_settings(experiment)["autoStop"]
        ):
            with transaction.atomic():
                experiment_stop(
                    experiment=experiment, actor=None, reason=f"Auto-stopped: guardrail {failed[0]} failed."
                )
    return report
