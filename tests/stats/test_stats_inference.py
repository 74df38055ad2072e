"""Bootstrap intervals, Welch and Mann-Whitney tests, NaN exclusion (elign.stats.inference)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from elign.stats.inference import (
    bootstrap_diff_ci,
    bootstrap_mean_ci,
    drop_failed,
    mann_whitney_test,
    ratio_inference,
    welch_test,
)


def _coverage(draw, true_value: float, reps: int, n_resamples: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(reps):
        lo, hi = bootstrap_mean_ci(draw(rng), n_resamples, 0.95, rng)
        hits += lo <= true_value <= hi
    return hits / reps


def test_bootstrap_interval_covers_the_true_mean_at_about_the_nominal_rate():
    # normal(2, 1), n = 40: a 95 % interval must contain 2 in ~95 % of repeated experiments
    cover = _coverage(lambda r: r.normal(2.0, 1.0, 40), 2.0, reps=300, n_resamples=1000, seed=1)
    assert 0.89 <= cover <= 0.99, cover


def test_bootstrap_interval_of_a_proportion_covers_the_true_proportion():
    cover = _coverage(lambda r: (r.random(150) < 0.3).astype(float), 0.3, reps=300, n_resamples=1000, seed=2)
    assert 0.89 <= cover <= 0.99, cover


def test_bootstrap_interval_width_shrinks_like_one_over_sqrt_n():
    rng = np.random.default_rng(3)
    small = np.diff(bootstrap_mean_ci(rng.normal(size=50), 2000, 0.95, np.random.default_rng(0)))[0]
    large = np.diff(bootstrap_mean_ci(rng.normal(size=5000), 2000, 0.95, np.random.default_rng(0)))[0]
    assert 6 < small / large < 14  # sqrt(100) = 10
    # a 95 % normal interval of the mean of N(0, 1), n = 5000: half width 1.96 / sqrt(5000)
    assert large / 2 == pytest.approx(1.96 / math.sqrt(5000), rel=0.15)


def test_bootstrap_is_seeded():
    x = np.random.default_rng(4).exponential(size=60)
    a = bootstrap_mean_ci(x, 500, 0.95, np.random.default_rng(7))
    b = bootstrap_mean_ci(x, 500, 0.95, np.random.default_rng(7))
    c = bootstrap_mean_ci(x, 500, 0.95, np.random.default_rng(8))
    assert a == b and a != c


def test_difference_interval_brackets_the_shift():
    rng = np.random.default_rng(5)
    x, y = rng.normal(0, 1, 300), rng.normal(0.5, 1, 300)
    lo, hi = bootstrap_diff_ci(x, y, 2000, 0.95, np.random.default_rng(0))
    assert lo < y.mean() - x.mean() < hi
    assert 0 < lo and hi < 1  # excludes 0: a real shift; a sign error would put it below 0


def test_welch_equals_scipy_and_its_sign_follows_the_model():
    rng = np.random.default_rng(6)
    x, y = rng.normal(0, 1, 30), rng.normal(0.3, 2.0, 45)
    ref = stats.ttest_ind(y, x, equal_var=False)
    res = welch_test(x, y)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-12)
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert res.p_value != pytest.approx(stats.ttest_ind(y, x, equal_var=True).pvalue, rel=1e-6)  # not Student's
    assert welch_test(x, x + 1).statistic > 0


def test_shifted_sample_is_significant_and_identical_samples_are_not():
    rng = np.random.default_rng(7)
    x = rng.normal(0, 1, 200)
    y = rng.normal(0.6, 1, 200)
    assert welch_test(x, y).p_value < 0.01
    assert mann_whitney_test(x, y).p_value < 0.01
    assert welch_test(x, x.copy()).p_value == pytest.approx(1.0)
    assert mann_whitney_test(x, x.copy()).p_value == pytest.approx(1.0)


def test_mann_whitney_equals_scipy():
    rng = np.random.default_rng(8)
    x, y = rng.exponential(1.0, 25), rng.exponential(1.5, 30)
    ref = stats.mannwhitneyu(y, x, alternative="two-sided")
    res = mann_whitney_test(x, y)
    assert (res.statistic, res.p_value) == pytest.approx((ref.statistic, ref.pvalue))


def test_constant_groups_give_the_limit_of_welch():
    ones = np.ones(20)
    assert welch_test(ones, ones).p_value == 1.0
    assert welch_test(ones, np.zeros(20)).p_value == 0.0
    assert math.isnan(welch_test(ones, ones).statistic)


def test_nan_rows_are_dropped_and_counted_never_imputed():
    c = drop_failed([1.0, np.nan, 3.0, np.inf, np.nan])
    assert c.n_used == 2 and c.n_failed == 3
    assert c.mean == 2.0
    assert drop_failed([np.nan, np.nan]).n_used == 0 and math.isnan(drop_failed([np.nan]).mean)


def test_too_few_values_give_nan_not_an_error():
    rng = np.random.default_rng(0)
    assert all(math.isnan(v) for v in bootstrap_mean_ci(np.array([1.0]), 200, 0.95, rng))
    assert all(math.isnan(v) for v in bootstrap_diff_ci(np.array([]), np.ones(5), 200, 0.95, rng))
    assert math.isnan(welch_test(np.array([1.0]), np.ones(5)).p_value)
    assert math.isnan(mann_whitney_test(np.array([]), np.ones(5)).p_value)


def test_ratio_inference_is_the_paired_t_test_of_log_times():
    rng = np.random.default_rng(5)
    base = rng.uniform(1.0, 2.0, 8)
    model = base * 1.3 * np.exp(rng.normal(0, 0.05, 8))  # 30 % slower, 5 % noise per repeat
    r = ratio_inference(model / base, 0.95)
    ref = stats.ttest_rel(np.log(model), np.log(base))
    assert r.p_value == pytest.approx(ref.pvalue) and r.n == 8
    assert r.ratio == pytest.approx(np.exp(np.mean(np.log(model / base))))
    assert r.ci_low < 1.3 < r.ci_high and r.ci_low > 1.0
    same = ratio_inference(np.exp(rng.normal(0, 0.05, 8)), 0.95)
    assert same.ci_low < 1.0 < same.ci_high and same.p_value > 0.05


def test_ratio_interval_covers_at_about_the_nominal_rate():
    rng = np.random.default_rng(6)
    hits = sum(
        lo <= 1.2 <= hi
        for lo, hi in (
            (r.ci_low, r.ci_high)
            for r in (ratio_inference(1.2 * np.exp(rng.normal(0, 0.1, 5)), 0.95) for _ in range(2000))
        )
    )
    assert 0.93 <= hits / 2000 <= 0.97


def test_ratio_inference_edge_cases():
    assert math.isnan(ratio_inference([1.1], 0.95).ratio)
    assert math.isnan(ratio_inference([1.1, np.nan, -1.0], 0.95).p_value)  # one usable ratio
    const = ratio_inference([2.0, 2.0, 2.0], 0.95)
    assert (const.ratio, const.ci_low, const.ci_high, const.p_value) == pytest.approx((2.0, 2.0, 2.0, 0.0))
    assert ratio_inference([1.0, 1.0], 0.95).p_value == 1.0
