"""The statistics of an experiment, as pure functions over aggregates (no database, no Django).

Everything here takes per-arm sums, never raw events, so the results endpoint costs the same for
a thousand events or a billion. The distributions (Student t, normal, chi-square) come from
``scipy.stats``; the estimators are computed here and checked in the tests against
``scipy.stats.ttest_ind_from_stats`` / ``chisquare`` on raw data and against published examples.

Ratio metrics over users (the unit of analysis is the end user)
    A per-request quantity (latency, cost, success, a rating over rated requests) is, per arm,
    ``R = sum(x_u) / sum(y_u)`` over users ``u`` (``x_u`` the user's total, ``y_u`` their request
    count). Its variance is the delta method's
    ``Var(R) = (Var(x) - 2 R Cov(x, y) + R^2 Var(y)) / (n * mean(y)^2)``
    (Deng et al. 2018, "Applying the Delta Method in Metric Analytics"), which reduces to the
    ordinary ``Var(x) / n`` when every user made one request.

Tests
    * fixed horizon: Welch's t on the difference, Welch–Satterthwaite degrees of freedom;
    * sequential (default): the asymptotic confidence sequence of Waudby-Smith et al. (2023,
      arXiv:2103.06476) as GrowthBook's gbstats uses it, with the tuning parameter ``tuning`` (the
      total sample size where the sequence is tightest) and its always-valid p-value (eq. 155);
    * relative lift ``b / a - 1`` with the delta-method variance
      ``Var(b)/a^2 + b^2 Var(a)/a^4``;
    * ``confidence = 1 - p``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scipy import stats as sps

NAN = float("nan")


@dataclass(frozen=True)
class Moments:
    """Per-arm sums of a ratio metric over ``n`` units: Σx, Σx², Σy, Σy², Σxy."""

    n: int
    sx: float
    sxx: float
    sy: float
    syy: float
    sxy: float

    @classmethod
    def of(cls, xs: Sequence[float], ys: Sequence[float] | None = None) -> Moments:
        ys = [1.0] * len(xs) if ys is None else ys
        return cls(
            n=len(xs),
            sx=float(sum(xs)),
            sxx=float(sum(x * x for x in xs)),
            sy=float(sum(ys)),
            syy=float(sum(y * y for y in ys)),
            sxy=float(sum(x * y for x, y in zip(xs, ys, strict=True))),
        )


@dataclass(frozen=True)
class Estimate:
    """A ratio estimate: its value, the variance of that value, and the units behind it."""

    value: float
    variance: float
    n: int


def ratio(m: Moments) -> Estimate:
    """``Σx / Σy`` and its delta-method variance (NaN variance below two units or with Σy = 0)."""
    if m.n == 0 or m.sy == 0:
        return Estimate(NAN, NAN, m.n)
    value = m.sx / m.sy
    if m.n < 2:
        return Estimate(value, NAN, m.n)
    n = m.n
    mx, my = m.sx / n, m.sy / n
    vx = max(0.0, (m.sxx - n * mx * mx) / (n - 1))
    vy = max(0.0, (m.syy - n * my * my) / (n - 1))
    cxy = (m.sxy - n * mx * my) / (n - 1)
    variance = max(0.0, (vx - 2 * value * cxy + value * value * vy) / (n * my * my))
    return Estimate(value, variance, n)


@dataclass(frozen=True)
class Comparison:
    """Treatment against control on one metric."""

    difference: float  # b - a
    se: float  # standard error of the difference
    t: float
    df: float
    p_value: float  # two-sided; always-valid in sequential mode
    lift: float  # b / a - 1
    lift_se: float
    lift_interval: tuple[float, float]  # two-sided (1 - alpha) interval / confidence sequence of the lift
    sequential: bool


def welch_df(var_a: float, n_a: int, var_b: float, n_b: int) -> float:
    """Welch–Satterthwaite degrees of freedom; ``var_*`` are variances of the arm means."""
    denominator = (var_a * var_a) / (n_a - 1) + (var_b * var_b) / (n_b - 1)
    if denominator <= 0:
        return float(n_a + n_b - 2)
    return (var_a + var_b) ** 2 / denominator


def sequential_rho(alpha: float, tuning: float, *, two_sided: bool = True) -> float:
    a = alpha if two_sided else 2 * alpha
    return math.sqrt((-2 * math.log(a) + math.log(-2 * math.log(a) + 1)) / tuning)


def sequential_halfwidth(s2: float, n: int, alpha: float, tuning: float) -> float:
    """Two-sided asymptotic confidence-sequence half-width; ``s2`` = variance of the estimate × n."""
    rho = sequential_rho(alpha, tuning)
    r2 = rho * rho
    return math.sqrt(s2) * math.sqrt(2 * (n * r2 + 1) * math.log(math.sqrt(n * r2 + 1) / alpha) / (n * rho) ** 2)


def sequential_halfwidth_one_sided(s2: float, n: int, alpha: float, tuning: float) -> float:
    rho = sequential_rho(alpha, tuning, two_sided=False)
    r2 = rho * rho
    return math.sqrt(s2 * 2 * (n * r2 + 1) / (n * rho) ** 2 * math.log(1 + math.sqrt(n * r2 + 1) / (2 * alpha)))


def sequential_p_value(estimate: float, se: float, n: int, alpha: float, tuning: float) -> float:
    """The always-valid p-value of the confidence sequence (Waudby-Smith et al., eq. 155)."""
    if se <= 0:
        return 0.0 if estimate != 0 else 1.0
    rho = sequential_rho(alpha, tuning)
    st2 = (estimate / se) ** 2 * n  # the e-value's "S_t^2": (estimate / its per-unit sd)^2 * n^2 / n
    tr2p1 = n * rho * rho + 1
    log_e = rho * rho * st2 / (2 * tr2p1) - 0.5 * math.log(tr2p1)
    if log_e <= 0:
        return 1.0
    return min(1.0, math.exp(-log_e))


def compare(
    a: Estimate, b: Estimate, *, alpha: float, sequential: bool = True, tuning: float = 5000.0
) -> Comparison | None:
    """Welch comparison of two ratio estimates, or None when either arm cannot be estimated."""
    if not all(math.isfinite(v) for v in (a.value, a.variance, b.value, b.variance)) or a.n < 2 or b.n < 2:
        return None
    difference = b.value - a.value
    var = a.variance + b.variance
    se = math.sqrt(var)
    df = welch_df(a.variance, a.n, b.variance, b.n)
    n = a.n + b.n
    t = difference / se if se > 0 else (0.0 if difference == 0 else math.copysign(math.inf, difference))
    if a.value != 0:
        lift = b.value / a.value - 1
        lift_var = b.variance / a.value**2 + b.value**2 * a.variance / a.value**4
    else:
        lift, lift_var = NAN, NAN
    lift_se = math.sqrt(lift_var) if math.isfinite(lift_var) else NAN
    if sequential:
        p = sequential_p_value(difference, se, n, alpha, tuning)
        half = sequential_halfwidth(lift_var * n, n, alpha, tuning) if math.isfinite(lift_var) else NAN
    else:
        p = 1.0 if se == 0 and difference == 0 else float(2 * sps.t.sf(abs(t), df))
        half = float(sps.t.ppf(1 - alpha / 2, df)) * lift_se if math.isfinite(lift_se) else NAN
    return Comparison(difference, se, t, df, p, lift, lift_se, (lift - half, lift + half), sequential)


def one_sided_bounds(
    estimate: float, variance: float, n: int, *, alpha: float, df: float, sequential: bool, tuning: float
) -> tuple[float, float]:
    """(lower, upper) one-sided (1 - alpha) bounds of an estimate: each holds with 1 - alpha."""
    if not (math.isfinite(estimate) and math.isfinite(variance)):
        return (NAN, NAN)
    if sequential:
        half = sequential_halfwidth_one_sided(variance * n, n, alpha, tuning)
    else:
        half = float(sps.t.ppf(1 - alpha, df)) * math.sqrt(variance)
    return (estimate - half, estimate + half)


# --- CUPED (regression adjustment with a pre-period covariate) -----------------------------------


@dataclass(frozen=True)
class PrePeriod:
    """Per-arm pre-period sums of the metric's numerator x0 and denominator y0 over the same units, and the
    cross sums with the experiment period's x and y: Σx0, Σx0², Σy0, Σy0², Σx0y0, Σx·x0, Σx·y0, Σy·x0, Σy·y0."""

    sx0: float
    sx0x0: float
    sy0: float
    sy0y0: float
    sx0y0: float
    sxx0: float
    sxy0: float
    syx0: float
    syy0: float


def _ratio_and_covariate(m: Moments, p: PrePeriod) -> tuple[float, float, float, float, float]:
    """(R, Var R, R0, Var R0, Cov(R, R0)) of one arm by the delta method."""
    n = m.n
    mx, my, mx0, my0 = m.sx / n, m.sy / n, p.sx0 / n, p.sy0 / n

    def cov(sab: float, ma: float, mb: float) -> float:
        return (sab - n * ma * mb) / (n - 1)

    r, r0 = m.sx / m.sy, p.sx0 / p.sy0
    var_r = ratio(m).variance
    var_r0 = max(0.0, cov(p.sx0x0, mx0, mx0) - 2 * r0 * cov(p.sx0y0, mx0, my0) + r0 * r0 * cov(p.sy0y0, my0, my0))
    var_r0 /= n * my0 * my0
    cov_rr0 = (
        cov(p.sxx0, mx, mx0) - r0 * cov(p.sxy0, mx, my0) - r * cov(p.syx0, my, mx0) + r * r0 * cov(p.syy0, my, my0)
    ) / (n * my * my0)
    return r, var_r, r0, var_r0, cov_rr0


@dataclass(frozen=True)
class Cuped:
    a: Estimate
    b: Estimate
    theta: float
    variance_reduction: float  # 1 - Var(adjusted difference) / Var(unadjusted difference)


def cuped(a: Moments, a_pre: PrePeriod, b: Moments, b_pre: PrePeriod) -> Cuped | None:
    """CUPED (Deng et al. 2013) on ratio metrics by the delta method, with one θ pooled over the arms (as
    GrowthBook does): ``R_adj = R - θ (R0_arm - R0_pooled)``, ``θ = Σ Cov(R, R0) / Σ Var(R0)``. None when
    either arm lacks the data (fewer than two units, no pre-period denominator)."""
    if a.n < 2 or b.n < 2 or a.sy == 0 or b.sy == 0 or a_pre.sy0 == 0 or b_pre.sy0 == 0:
        return None
    ra, var_a, r0a, var0a, cova = _ratio_and_covariate(a, a_pre)
    rb, var_b, r0b, var0b, covb = _ratio_and_covariate(b, b_pre)
    if var0a + var0b <= 0:
        return None
    theta = (cova + covb) / (var0a + var0b)
    pooled = (a_pre.sx0 + b_pre.sx0) / (a_pre.sy0 + b_pre.sy0)
    adj_a = Estimate(ra - theta * (r0a - pooled), max(0.0, var_a + theta**2 * var0a - 2 * theta * cova), a.n)
    adj_b = Estimate(rb - theta * (r0b - pooled), max(0.0, var_b + theta**2 * var0b - 2 * theta * covb), b.n)
    before = var_a + var_b
    reduction = 1 - (adj_a.variance + adj_b.variance) / before if before > 0 else 0.0
    return Cuped(adj_a, adj_b, theta, reduction)


# --- multiple arms, sample ratio --------------------------------------------------------------


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (same order as given)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


@dataclass(frozen=True)
class SampleRatio:
    statistic: float
    p_value: float
    observed: list[int]
    expected: list[float]
    mismatch: bool


def srm(observed: Sequence[int], weights: Sequence[float], *, threshold: float = 0.001) -> SampleRatio | None:
    """Pearson's chi-square of the units per arm against the configured weights (flag p < threshold)."""
    total = sum(observed)
    weight_total = sum(weights)
    if total == 0 or weight_total <= 0 or len(observed) < 2:
        return None
    expected = [total * w / weight_total for w in weights]
    statistic = sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True) if e > 0)
    if any(e == 0 and o > 0 for o, e in zip(observed, expected, strict=True)):
        return SampleRatio(math.inf, 0.0, list(observed), expected, True)
    p = float(sps.chi2.sf(statistic, len(observed) - 1))
    return SampleRatio(statistic, p, list(observed), expected, p < threshold)


# --- quantiles (p95 latency guardrail) --------------------------------------------------------


def quantile_estimate(quantile_at: Mapping[float, float], n: int, q: float = 0.95, h: float = 0.01) -> Estimate:
    """A quantile and its asymptotic variance ``q(1-q) / (n f(x_q)^2)``, the density from the spacing
    ``(x_{q+h} - x_{q-h}) / 2h`` (Siddiqui–Bloch–Gastwirth), given the quantiles at q-h, q, q+h."""
    value = quantile_at[q]
    if n < 2:
        return Estimate(value, NAN, n)
    sparsity = (quantile_at[q + h] - quantile_at[q - h]) / (2 * h)
    return Estimate(value, q * (1 - q) / n * sparsity * sparsity, n)


def sample_size_per_arm(unit_variance: float, effect: float, *, alpha: float, power: float = 0.8) -> int:
    """Units per arm a fixed-horizon two-sided test needs to detect ``effect`` (absolute) with ``power``."""
    if effect == 0 or not math.isfinite(unit_variance) or not math.isfinite(effect):
        return 0
    z = float(sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(power))
    return math.ceil(2 * z * z * unit_variance / (effect * effect))
