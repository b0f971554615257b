"""Public constants of the experiments app: statuses, the metric catalogue, defaults and bounds.

Other apps (the gateway) may import this module; everything else goes through services/selectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ExperimentStatus(StrEnum):
    DRAFT = "draft"
    RUNNING = "running"
    COMPLETED = "completed"
    STOPPED = "stopped"


# status -> the statuses it may move to; completed and stopped are final.
TRANSITIONS: dict[str, frozenset[str]] = {
    ExperimentStatus.DRAFT: frozenset({ExperimentStatus.RUNNING, ExperimentStatus.STOPPED}),
    ExperimentStatus.RUNNING: frozenset({ExperimentStatus.COMPLETED, ExperimentStatus.STOPPED}),
    ExperimentStatus.COMPLETED: frozenset(),
    ExperimentStatus.STOPPED: frozenset(),
}


class TrafficType(StrEnum):
    PERCENTAGE = "percentage"
    RULES_BASED = "rules-based"


class TestMode(StrEnum):
    SEQUENTIAL = "sequential"  # always-valid confidence sequence (default): safe to watch live
    FIXED = "fixed"  # fixed-horizon Welch t-test: look once, at the planned end


@dataclass(frozen=True)
class Metric:
    """A catalogue metric: a ratio over end users, numerator / denominator (both per-user sums).

    ``higher_is_better`` gives its direction: ``improvement`` is positive when the variant is better.
    """

    name: str
    numerator: str
    denominator: str
    higher_is_better: bool
    description: str


# The per-unit sums the aggregates keep (columns of ExperimentUnitHour).
SUMS = (
    "requests",
    "successes",
    "latency_sum",
    "cost_sum",
    "tokens_sum",
    "rated",
    "rating_sum",
    "feedback",
    "accepted",
    "scored",
    "confidence_sum",
)

METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("user_rating", "rating_sum", "rated", True, "Mean user rating (1-5) over rated requests."),
        Metric("response_time", "latency_sum", "requests", False, "Mean latency per request, ms."),
        Metric("success_rate", "successes", "requests", True, "Share of requests that succeeded (0-1)."),
        Metric("acceptance_rate", "accepted", "feedback", True, "Share of accepted answers over those with feedback."),
        Metric("cost_per_request", "cost_sum", "requests", False, "Mean cost per request, USD."),
        Metric("confidence_score", "confidence_sum", "scored", True, "Mean model confidence over scored requests."),
        Metric("tokens_per_request", "tokens_sum", "requests", False, "Mean prompt + completion tokens per request."),
    )
}

# The metric catalogue's names, in the order the API documents them (one OpenAPI enum: MetricEnum).
METRIC_NAMES: list[str] = sorted(METRICS)

# (numerator, denominator) pairs whose per-user cross sums the ratio metrics need.
RATIO_PAIRS: tuple[tuple[str, str], ...] = tuple(sorted({(m.numerator, m.denominator) for m in METRICS.values()}))

# Guardrails: one-sided non-inferiority margins (a variant must be shown to be no worse than this).
GUARDRAIL_DEFAULTS: dict[str, float] = {
    "costPerRequest": 0.05,  # relative: cost per request at most +5 %
    "p95Latency": 0.10,  # relative: p95 latency at most +10 %
    "successRate": 0.005,  # absolute: success rate at most 0.5 points lower
}

DEFAULT_SIGNIFICANCE = 0.95
DEFAULT_MIN_SAMPLE = 100  # end users per arm before a winner can be declared
DEFAULT_TUNING = 5000.0  # the confidence sequence is narrowest near this many users (GrowthBook's default)
SRM_THRESHOLD = 0.001
PRE_PERIOD_DAYS = 14  # CUPED's covariate window before the start

MAX_VARIANTS = 10
MAX_RULES = 50
MAX_RULE_LENGTH = 500
MAX_SECONDARY = 10
MAX_FILTERS = 20
MAX_ATTRIBUTES = 50
MAX_ATTRIBUTE_CHARS = 255  # an attribute value rules and filters see (longer ones are cut where they enter)
MAX_DURATION_DAYS = 366

# What rules and audience filters see (strings). user.id is the unit id.
RULE_CONTEXT: dict[str, tuple[str, ...]] = {
    "user": ("id", "tier", "country", "plan", "language", "segment"),
    "request": ("useCase", "environment"),
}
