"""``ExperimentResults`` from the per-variant summaries (:class:`VariantSummary`) and :mod:`experiments.stats`.

Reads two to ten small rows per call; nothing scans events. README "Experiments" documents
every figure: the first variant is the control; ``improvement`` is the relative change × 100
signed so that positive is better (lower latency and cost are better); ``confidence = 1 - p``
(Holm-adjusted across variants on the primary metric; always-valid in sequential mode).
"""

from __future__ import annotations

import math
from typing import Any

from django.utils import timezone

from analytics.selectors import experiments as analytics_experiments
from experiments import selectors, stats
from experiments.constants import METRICS, SRM_THRESHOLD, ExperimentStatus, TestMode
from experiments.models import Experiment
from modelhub.api.dates import iso

_EMPTY = {"units": 0, "sums": {}, "sketch": {}}
_NORMAL_DF = 1e9


def _num(value: float | None, digits: int = 12) -> float | None:
    """A finite number to ``digits`` significant digits (None for NaN or infinity: JSON has neither)."""
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.{digits}g}")


def _moments(summary: dict[str, Any], metric: str) -> stats.Moments:
    m = METRICS[metric]
    sums = summary["sums"]
    x = sums.get(m.numerator, [0.0, 0.0])
    y = sums.get(m.denominator, [0.0, 0.0])
    return stats.Moments(summary["units"], x[0], x[1], y[0], y[1], sums.get(f"{m.numerator}*{m.denominator}", 0.0))


def _sum(summary: dict[str, Any], name: str) -> float:
    return summary["sums"].get(name, [0.0, 0.0])[0]


def _signed(lift: float, metric: str) -> float:
    return lift * 100 if METRICS[metric].higher_is_better else -lift * 100


def _guard(status_of: tuple[float, float], margin: float, *, harm_up: bool) -> str:
    lower, upper = status_of
    if not (math.isfinite(lower) and math.isfinite(upper)):
        return "inconclusive"
    if harm_up:
        return "passed" if upper < margin else "failed" if lower > margin else "inconclusive"
    return "passed" if lower > -margin else "failed" if upper < -margin else "inconclusive"


def _p95(summary: dict[str, Any]) -> stats.Estimate:
    sketch = summary["sketch"] or {}
    n = analytics_experiments.sketch_count(sketch)
    if n == 0:
        return stats.Estimate(stats.NAN, stats.NAN, 0)
    q = analytics_experiments.sketch_quantiles(sketch, [0.94, 0.95, 0.96])
    return stats.quantile_estimate({0.94: q[0], 0.95: q[1], 0.96: q[2]}, n)


def _pre(summary: dict[str, Any], metric: str) -> stats.PrePeriod | None:
    pre = summary["sums"].get("pre")
    if not pre or pre.get("metric") != metric:
        return None
    return stats.PrePeriod(
        pre["x0"][0], pre["x0"][1], pre["y0"][0], pre["y0"][1], pre["x0*y0"],
        pre["x*x0"], pre["x*y0"], pre["y*x0"], pre["y*y0"],
    )  # fmt: skip


def _cuped(control: dict[str, Any], arm: dict[str, Any], metric: str) -> stats.Cuped | None:
    a_pre, b_pre = _pre(control, metric), _pre(arm, metric)
    if a_pre is None or b_pre is None:
        return None
    return stats.cuped(_moments(control, metric), a_pre, _moments(arm, metric), b_pre)


def guardrails(control: dict, arm: dict, *, margins: dict[str, float], alpha: float, sequential: bool, tuning: float):
    """The three non-inferiority tests of one arm against the control."""
    out: dict[str, Any] = {}
    for key, metric in (("costPerRequest", "cost_per_request"), ("successRate", "success_rate")):
        a, b = stats.ratio(_moments(control, metric)), stats.ratio(_moments(arm, metric))
        c = stats.compare(a, b, alpha=alpha, sequential=sequential, tuning=tuning)
        if c is None:
            out[key] = {"status": "inconclusive", "margin": margins[key], "estimate": None, "bounds": [None, None]}
            continue
        if key == "costPerRequest":  # relative: cost per request may rise at most margin
            est, var = c.lift, c.lift_se**2 if math.isfinite(c.lift_se) else stats.NAN
        else:  # absolute: success rate may fall at most margin
            est, var = c.difference, c.se**2
        bounds = stats.one_sided_bounds(est, var, a.n + b.n, alpha=alpha, df=c.df, sequential=sequential, tuning=tuning)
        out[key] = {
            "status": _guard(bounds, margins[key], harm_up=key == "costPerRequest"),
            "margin": margins[key],
            "estimate": _num(est),
            "bounds": [_num(bounds[0]), _num(bounds[1])],
        }
    qa, qb = _p95(control), _p95(arm)
    if qa.n >= 2 and qb.n >= 2 and qa.value > 0 and math.isfinite(qa.variance) and math.isfinite(qb.variance):
        lift = qb.value / qa.value - 1
        var = qb.variance / qa.value**2 + qb.value**2 * qa.variance / qa.value**4
        bounds = stats.one_sided_bounds(
            lift, var, qa.n + qb.n, alpha=alpha, df=_NORMAL_DF, sequential=sequential, tuning=tuning
        )
        out["p95Latency"] = {
            "status": _guard(bounds, margins["p95Latency"], harm_up=True),
            "margin": margins["p95Latency"],
            "estimate": _num(lift),
            "bounds": [_num(bounds[0]), _num(bounds[1])],
            "values": [_num(qa.value, 3), _num(qb.value, 3)],
        }
    else:
        out["p95Latency"] = {
            "status": "inconclusive",
            "margin": margins["p95Latency"],
            "estimate": None,
            "bounds": [None, None],
        }
    return out


def compute(
    *,
    variants: list[dict[str, Any]],
    summaries: dict[str, dict[str, Any]],
    primary: str,
    secondary: list[str],
    significance: float,
    settings: dict[str, Any],
) -> dict[str, Any]:
    """The statistical part of the results (pure: the summaries as plain dicts ``{units, sums, sketch}``)."""
    alpha = 1 - significance
    sequential = settings["mode"] == TestMode.SEQUENTIAL
    tuning = float(settings["sequentialTuning"])
    arms = [summaries.get(v["name"], _EMPTY) for v in variants]
    control = arms[0]
    total_units = sum(a["units"] for a in arms) or 0
    adjustments: list[stats.Cuped | None] = [None] + [
        _cuped(control, a, primary) if settings.get("cuped") else None for a in arms[1:]
    ]
    comparisons = [None] + [
        stats.compare(
            adj.a if adj else stats.ratio(_moments(control, primary)),
            adj.b if adj else stats.ratio(_moments(a, primary)),
            alpha=alpha,
            sequential=sequential,
            tuning=tuning,
        )
        for a, adj in zip(arms[1:], adjustments[1:], strict=True)
    ]
    raw_p = [c.p_value if c else 1.0 for c in comparisons[1:]]
    adjusted = [None, *stats.holm(raw_p)] if raw_p else [None]
    out_variants = []
    for i, (variant, arm) in enumerate(zip(variants, arms, strict=True)):
        requests = _sum(arm, "requests")
        estimate = stats.ratio(_moments(arm, primary))
        c = comparisons[i]
        entry: dict[str, Any] = {
            "name": variant["name"],
            "traffic": _num(100 * arm["units"] / total_units if total_units else 0.0, 4),
            "sampleSize": int(requests),
            "units": int(arm["units"]),
            "metrics": {
                "primary": {
                    "value": _num(estimate.value),
                    "confidence": 0.0 if c is None else _num(1 - adjusted[i]),
                    "improvement": 0.0 if c is None else _num(_signed(c.lift, primary)),
                    "pValue": None if c is None else _num(adjusted[i]),
                    "interval": None
                    if c is None
                    else sorted(
                        [_num(_signed(c.lift_interval[0], primary)), _num(_signed(c.lift_interval[1], primary))],
                        key=lambda v: (v is None, v),
                    ),
                },
                "secondary": {},
            },
            "performance": {
                "avgLatency": _num(_sum(arm, "latency_sum") / requests if requests else 0.0),
                "successRate": _num(_sum(arm, "successes") / requests if requests else 0.0),
                "costPerRequest": _num(_sum(arm, "cost_sum") / requests if requests else 0.0),
            },
        }
        if adjustments[i] is not None:
            entry["metrics"]["primary"]["cuped"] = {
                "theta": _num(adjustments[i].theta),
                "varianceReduction": _num(adjustments[i].variance_reduction),
                "adjustedValue": _num(adjustments[i].b.value),
            }
        for metric in secondary:
            value = stats.ratio(_moments(arm, metric))
            sc = (
                None
                if i == 0
                else stats.compare(
                    stats.ratio(_moments(control, metric)), value, alpha=alpha, sequential=sequential, tuning=tuning
                )
            )
            entry["metrics"]["secondary"][metric] = {
                "value": _num(value.value),
                "confidence": 0.0 if sc is None else _num(1 - sc.p_value),
                "improvement": 0.0 if sc is None else _num(_signed(sc.lift, metric)),
            }
        if i > 0:
            entry["guardrails"] = guardrails(
                control, arm, margins=settings["guardrails"], alpha=alpha, sequential=sequential, tuning=tuning
            )
        out_variants.append(entry)

    ratio = stats.srm([a["units"] for a in arms], [v["weight"] for v in variants], threshold=SRM_THRESHOLD)
    srm = (
        None
        if ratio is None
        else {
            "pValue": _num(ratio.p_value),
            "statistic": _num(ratio.statistic),
            "observed": ratio.observed,
            "expected": [_num(e, 3) for e in ratio.expected],
            "mismatch": ratio.mismatch,
        }
    )
    min_sample = int(settings["minSampleSize"])
    enough = all(a["units"] >= min_sample for a in arms)
    candidates = []
    for i in range(1, len(arms)):
        c, entry = comparisons[i], out_variants[i]
        if c is None:
            continue
        guards_ok = all(g["status"] == "passed" for g in entry["guardrails"].values())
        better = entry["metrics"]["primary"]["improvement"] or 0
        if adjusted[i] < alpha and better > 0 and guards_ok and enough and not (srm and srm["mismatch"]):
            candidates.append((better, i))
    winner = None
    if candidates:
        _, i = max(candidates)
        winner = {
            "variant": variants[i]["name"],
            "confidence": out_variants[i]["metrics"]["primary"]["confidence"],
            "improvement": out_variants[i]["metrics"]["primary"]["improvement"],
        }
    recommendations = _recommend(
        variants, arms, out_variants, comparisons, adjusted, alpha, srm, winner, min_sample, primary, sequential
    )
    return {"variants": out_variants, "winner": winner, "srm": srm, "recommendations": recommendations}


def _recommend(
    variants, arms, out_variants, comparisons, adjusted, alpha, srm, winner, min_sample, primary, sequential
):
    recs: list[dict[str, Any]] = []
    if srm and srm["mismatch"]:
        recs.append(
            {
                "type": "adjust_weights",
                "message": (
                    f"Sample ratio mismatch (chi-square p = {srm['pValue']:.2g}): observed {srm['observed']} users "
                    f"against expected {srm['expected']}. Results are not trustworthy until the cause "
                    "(assignment, filters, failing arm) is found."
                ),
                "action": "check_assignment",
            }
        )
    if winner:
        recs.append(
            {
                "type": "deploy_winner",
                "message": (
                    f"{winner['variant']} improves {primary} by {winner['improvement']:.2f}% "
                    f"(confidence {winner['confidence']:.4f}) with every guardrail passed."
                ),
                "action": "promote",
            }
        )
        return recs
    for i in range(1, len(arms)):
        entry = out_variants[i]
        for name, guard in entry.get("guardrails", {}).items():
            if guard["status"] == "failed":
                recs.append(
                    {
                        "type": "continue_testing",
                        "message": (
                            f"{variants[i]['name']} fails the {name} guardrail (estimate {guard['estimate']}, "
                            f"allowed {'+' if name != 'successRate' else '-'}{guard['margin']}): it cannot win."
                        ),
                        "action": "stop_variant",
                    }
                )
    short = [(v["name"], a["units"]) for v, a in zip(variants, arms, strict=True) if a["units"] < min_sample]
    if short:
        needed = max(min_sample - units for _, units in short)
        recs.append(
            {
                "type": "continue_testing",
                "message": f"Too few users: {', '.join(f'{n} has {u}' for n, u in short)}; at least {min_sample} per variant "
                f"({needed} more).",
                "action": "continue",
            }
        )
    for i in range(1, len(arms)):
        c = comparisons[i]
        if c is None or adjusted[i] < alpha:
            continue
        unit_var = (c.se**2) * min(arms[0]["units"], arms[i]["units"]) / 2 if c.se > 0 else stats.NAN
        effect = c.difference if c.difference else stats.NAN
        needed = stats.sample_size_per_arm(unit_var, effect, alpha=alpha) if math.isfinite(effect) else 0
        more = max(0, needed - min(arms[0]["units"], arms[i]["units"]))
        extra = f" About {more} more users per variant would detect the observed difference" if more else ""
        extra += (
            " (fixed-horizon estimate; the sequential test needs somewhat more)."
            if more and sequential
            else "."
            if more
            else ""
        )
        recs.append(
            {
                "type": "continue_testing",
                "message": f"{variants[i]['name']} vs {variants[0]['name']} on {primary}: not significant yet "
                f"(p = {adjusted[i]:.3g}, needs < {alpha:.3g}).{extra}",
                "action": "continue",
            }
        )
    if not recs:
        recs.append({"type": "continue_testing", "message": "No variant beats the control yet.", "action": "continue"})
    return recs


def experiment_results(experiment: Experiment, *, mode: str | None = None) -> dict[str, Any]:
    """The spec's ``ExperimentResults`` (plus documented extensions) of a started experiment."""
    settings = selectors.analysis_settings(experiment)
    if mode:  # GET .../results?mode=fixed
        settings = {**settings, "mode": mode}
    variants = [{"name": v.name, "weight": v.weight} for v in experiment.variants.all()]
    summaries = {
        name: {"units": s.units, "sums": s.sums, "sketch": s.sketch}
        for name, s in selectors.summaries(experiment.pk).items()
    }
    metrics = experiment.metrics or {}
    body = compute(
        variants=variants,
        summaries=summaries,
        primary=metrics["primary"],
        secondary=list(metrics.get("secondary") or []),
        significance=float(metrics.get("statisticalSignificance", 0.95)),
        settings=settings,
    )
    started = experiment.started_at or experiment.start_date
    ended = experiment.ended_at
    days = ((ended or timezone.now()) - started).total_seconds() / 86400
    out: dict[str, Any] = {
        "experimentId": str(experiment.pk),
        "status": experiment.status if experiment.status != ExperimentStatus.DRAFT else "running",
        "duration": {
            "startedAt": iso(started),
            **({"endedAt": iso(ended)} if ended else {}),
            "totalDays": round(max(0, days), 4),
        },
        "variants": body["variants"],
    }
    if body["winner"]:
        out["winner"] = body["winner"]
    out["recommendations"] = body["recommendations"]
    out["srm"] = body["srm"]
    out["analysis"] = {
        "mode": settings["mode"],
        "alpha": round(1 - float(metrics.get("statisticalSignificance", 0.95)), 10),
        "sequentialTuning": settings["sequentialTuning"],
        "minSampleSize": settings["minSampleSize"],
        "guardrails": settings["guardrails"],
        "correction": "holm",
        "cuped": settings["cuped"],
        "control": variants[0]["name"],
        "primaryMetric": metrics["primary"],
        "aggregatedAt": iso(experiment.aggregated_at) if experiment.aggregated_at else None,
    }
    return out
