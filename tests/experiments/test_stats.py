"""experiments.stats against independent implementations (scipy on raw data) and published examples."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from experiments import stats

# Welch's t-test, Wikipedia "Welch's t-test", Examples (the first pair of samples).
A1 = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
A2 = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]


def _fixed(xa, xb, ya=None, yb=None):
    a, b = stats.ratio(stats.Moments.of(xa, ya)), stats.ratio(stats.Moments.of(xb, yb))
    return stats.compare(a, b, alpha=0.05, sequential=False)


def test_welch_matches_the_published_example_and_scipy():
    c = _fixed(A1, A2)
    # the published figures: t = -2.46 (A1 - A2), df = 24.9 (truncated), p = 0.021
    assert round(c.t, 2) == 2.46 and math.floor(c.df * 10) / 10 == 24.9 and round(c.p_value, 3) == 0.021
    reference = sps.ttest_ind(A2, A1, equal_var=False)
    assert c.t == pytest.approx(reference.statistic, abs=1e-9)
    assert c.p_value == pytest.approx(reference.pvalue, abs=1e-9)
    assert c.df == pytest.approx(reference.df, abs=1e-9)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), na=st.integers(3, 400), nb=st.integers(3, 400))
def test_per_user_metric_equals_scipy_from_stats(seed, na, nb):
    rng = np.random.default_rng(seed)
    xa, xb = rng.lognormal(1, 0.7, na), rng.lognormal(1.05, 0.9, nb)
    c = _fixed(list(xa), list(xb))
    ref = sps.ttest_ind_from_stats(xb.mean(), xb.std(ddof=1), nb, xa.mean(), xa.std(ddof=1), na, equal_var=False)
    assert c.p_value == pytest.approx(ref.pvalue, abs=1e-6)
    assert c.t == pytest.approx(ref.statistic, rel=1e-6)


def test_ratio_metric_delta_method_equals_the_linearisation_and_the_sampling_variance():
    rng = np.random.default_rng(7)
    # users with 1-20 requests each: per-request latency is a ratio metric over users
    n = 2000
    requests = rng.integers(1, 21, n).astype(float)
    totals = np.array([rng.lognormal(5, 0.5, int(k)).sum() for k in requests])
    est = stats.ratio(stats.Moments.of(list(totals), list(requests)))
    r = totals.sum() / requests.sum()
    linear = (totals - r * requests) / requests.mean()
    assert est.value == pytest.approx(r, rel=1e-12)
    assert est.variance == pytest.approx(linear.var(ddof=1) / n, rel=1e-9)
    # the sampling variance of R over many independent experiments (Monte Carlo) agrees within 10 %
    draws = []
    for _ in range(400):
        k = rng.integers(1, 21, n).astype(float)
        t = np.array([rng.lognormal(5, 0.5, int(m)).sum() for m in k[:200]])
        draws.append(t.sum() / k[:200].sum())
    small = stats.ratio(stats.Moments.of(list(totals[:200]), list(requests[:200])))
    assert small.variance == pytest.approx(np.var(draws, ddof=1), rel=0.25)


def test_ratio_metric_is_not_the_naive_per_request_test():
    """Clustered users: the per-request t-test overstates confidence; the delta method does not."""
    rng = np.random.default_rng(3)
    users = 300
    xs, ys, flat = [], [], []
    for _ in range(users):
        k = int(rng.integers(1, 40))
        level = rng.normal(100, 30)  # a user's own level: requests of one user are correlated
        values = rng.normal(level, 5, k)
        xs.append(values.sum())
        ys.append(k)
        flat.extend(values)
    est = stats.ratio(stats.Moments.of(xs, ys))
    naive = np.var(flat, ddof=1) / len(flat)
    assert est.variance > 3 * naive


def test_lift_interval_by_the_delta_method():
    c = _fixed(A1, A2)
    a, b = np.mean(A1), np.mean(A2)
    va, vb = np.var(A1, ddof=1) / len(A1), np.var(A2, ddof=1) / len(A2)
    assert c.lift == pytest.approx(b / a - 1, rel=1e-12)
    se = math.sqrt(vb / a**2 + b**2 * va / a**4)
    half = sps.t.ppf(0.975, c.df) * se
    assert c.lift_interval == pytest.approx((b / a - 1 - half, b / a - 1 + half), rel=1e-9)


def test_sequential_interval_is_wider_and_its_p_value_larger():
    rng = np.random.default_rng(11)
    xa, xb = list(rng.normal(10, 2, 3000)), list(rng.normal(10.2, 2, 3000))
    a, b = stats.ratio(stats.Moments.of(xa)), stats.ratio(stats.Moments.of(xb))
    fixed = stats.compare(a, b, alpha=0.05, sequential=False)
    seq = stats.compare(a, b, alpha=0.05, sequential=True, tuning=5000)
    assert seq.p_value > fixed.p_value
    assert seq.lift_interval[1] - seq.lift_interval[0] > fixed.lift_interval[1] - fixed.lift_interval[0]
    # GrowthBook's halfwidth formula at n = tuning, by hand
    rho = math.sqrt((-2 * math.log(0.05) + math.log(-2 * math.log(0.05) + 1)) / 5000)
    n, s2 = 6000, 1.0
    expected = math.sqrt(s2) * math.sqrt(
        2 * (n * rho**2 + 1) * math.log(math.sqrt(n * rho**2 + 1) / 0.05) / (n * rho) ** 2
    )
    assert stats.sequential_halfwidth(s2, n, 0.05, 5000) == pytest.approx(expected, rel=1e-12)


def test_srm_matches_scipy_and_the_published_example():
    # Fabijan et al. (2019), "Diagnosing Sample Ratio Mismatch in Online Controlled Experiments": 821,588 vs
    # 815,482 users in a 50/50 experiment, p ~ 1.8e-6.
    result = stats.srm([821_588, 815_482], [50, 50])
    assert result.mismatch and f"{result.p_value:.1e}" == "1.8e-06"
    reference = sps.chisquare([821_588, 815_482], [818_535, 818_535])
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-6)
    assert result.statistic == pytest.approx(reference.statistic, rel=1e-9)
    three = stats.srm([330, 345, 325], [30, 40, 30])
    ref3 = sps.chisquare([330, 345, 325], [300, 400, 300])
    assert three.p_value == pytest.approx(ref3.pvalue, abs=1e-9)
    assert not stats.srm([5010, 4990], [50, 50]).mismatch


def test_holm():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5]) == [0.5]
    assert stats.holm([0.001, 0.9]) == pytest.approx([0.002, 0.9])


def test_one_sided_bounds():
    lower, upper = stats.one_sided_bounds(0.2, 0.01, 100, alpha=0.05, df=50, sequential=False, tuning=5000)
    assert upper == pytest.approx(0.2 + sps.t.ppf(0.95, 50) * 0.1)
    assert lower == pytest.approx(0.2 - sps.t.ppf(0.95, 50) * 0.1)


def _peeking_false_positives(rng, *, sequential: bool, sims: int, peeks: int, batch: int, alpha: float) -> float:
    hits = 0
    for _ in range(sims):
        a = rng.normal(1.0, 1.0, peeks * batch)
        b = rng.normal(1.0, 1.0, peeks * batch)  # A/A: no difference
        for k in range(1, peeks + 1):
            n = k * batch
            ma = stats.Moments(n, a[:n].sum(), (a[:n] ** 2).sum(), n, n, a[:n].sum())
            mb = stats.Moments(n, b[:n].sum(), (b[:n] ** 2).sum(), n, n, b[:n].sum())
            c = stats.compare(stats.ratio(ma), stats.ratio(mb), alpha=alpha, sequential=sequential, tuning=2000)
            if c.p_value < alpha:
                hits += 1
                break
    return hits / sims


@pytest.mark.slow
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1))
def test_a_a_experiments_watched_continuously_stay_within_alpha(seed):
    """Peeking 40 times: the sequential test's false-positive rate stays <= alpha; the fixed test's does not
    (which shows the check can fail)."""
    rng = np.random.default_rng(seed)
    alpha = 0.05
    sequential = _peeking_false_positives(rng, sequential=True, sims=300, peeks=40, batch=50, alpha=alpha)
    assert sequential <= alpha
    fixed = _peeking_false_positives(rng, sequential=False, sims=150, peeks=40, batch=50, alpha=alpha)
    assert fixed > alpha


def _theta(xa, x0a, xb, x0b):
    cov = np.cov(xa, x0a)[0, 1] / len(xa) + np.cov(xb, x0b)[0, 1] / len(xb)
    return cov / (np.var(x0a, ddof=1) / len(xa) + np.var(x0b, ddof=1) / len(xb))


def _pre(x, x0):
    ones = np.ones_like(x0)
    return stats.PrePeriod(
        x0.sum(), (x0**2).sum(), ones.sum(), ones.sum(), x0.sum(), (x * x0).sum(), x.sum(), x0.sum(), len(x)
    )


def test_cuped_equals_welch_on_the_regression_adjusted_values():
    rng = np.random.default_rng(21)
    n_a, n_b = 900, 1100
    level_a, level_b = rng.normal(10, 3, n_a), rng.normal(10, 3, n_b)
    x0a, x0b = level_a + rng.normal(0, 1, n_a), level_b + rng.normal(0, 1, n_b)  # pre-period
    xa, xb = level_a + rng.normal(0, 1, n_a), level_b + 0.2 + rng.normal(0, 1, n_b)  # experiment period
    result = stats.cuped(stats.Moments.of(list(xa)), _pre(xa, x0a), stats.Moments.of(list(xb)), _pre(xb, x0b))
    theta = _theta(xa, x0a, xb, x0b)
    assert result.theta == pytest.approx(theta, rel=1e-9)
    pooled = np.concatenate([x0a, x0b]).mean()
    adj_a, adj_b = xa - theta * (x0a - pooled), xb - theta * (x0b - pooled)
    c = stats.compare(result.a, result.b, alpha=0.05, sequential=False)
    reference = sps.ttest_ind(adj_b, adj_a, equal_var=False)
    assert c.p_value == pytest.approx(reference.pvalue, abs=1e-9)
    assert c.difference == pytest.approx(adj_b.mean() - adj_a.mean(), abs=1e-9)
    plain = _fixed(list(xa), list(xb))
    # the user level explains 9 of 10 parts of the variance: rho^2 = 0.81 expected
    assert result.variance_reduction > 0.7 and c.p_value < plain.p_value
