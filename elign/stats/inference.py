"""Two-sample inference on per-molecule values: seeded bootstrap intervals, Welch's t and Mann-Whitney U.

Failed molecules arrive as NaN; :func:`drop_failed` removes them and counts them (never imputed). The
intervals are :func:`scipy.stats.bootstrap` (percentile by default), resampled in batches so that memory
stays bounded for large sample sets. A binary metric (0/1 per molecule) uses the same functions: the mean
is the proportion, and its bootstrap interval is the interval of the proportion.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

#: resampled values held in memory at once (resamples x molecules)
_BATCH_ELEMENTS = 2_000_000


@dataclass(frozen=True)
class Cleaned:
    """The finite values of one group and how many rows were excluded (failed molecules: NaN)."""

    values: np.ndarray
    n_failed: int

    @property
    def n_used(self) -> int:
        return int(self.values.size)

    @property
    def mean(self) -> float:
        return float(self.values.mean()) if self.values.size else math.nan


@dataclass(frozen=True)
class TestResult:
    statistic: float
    p_value: float


def drop_failed(values) -> Cleaned:
    """Drop the NaN / infinite entries (failed molecules) of a 1-D array and count them."""
    v = np.asarray(values, dtype=np.float64).ravel()
    finite = np.isfinite(v)
    return Cleaned(v[finite], int((~finite).sum()))


def _batch(n: int) -> int:
    return max(1, _BATCH_ELEMENTS // max(n, 1))


def _mean(x, axis=-1):
    return np.mean(x, axis=axis)


def _mean_difference(x, y, axis=-1):
    return np.mean(y, axis=axis) - np.mean(x, axis=axis)


def _interval(
    data: tuple[np.ndarray, ...], statistic, n_resamples: int, confidence: float, rng: np.random.Generator, method: str
) -> tuple[float, float]:
    if any(d.size < 2 for d in data):  # one point has no sampling distribution to speak of
        return math.nan, math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # BCa on constant data warns (and gives NaN): reported as NaN
        res = stats.bootstrap(
            data,
            statistic,
            n_resamples=n_resamples,
            confidence_level=confidence,
            method=method,
            rng=rng,
            vectorized=True,
            paired=False,
            batch=_batch(max(d.size for d in data)),
        )
    ci = res.confidence_interval
    return float(ci.low), float(ci.high)


def bootstrap_mean_ci(
    values: np.ndarray, n_resamples: int, confidence: float, rng: np.random.Generator, method: str = "percentile"
) -> tuple[float, float]:
    """Bootstrap interval of the mean of finite ``values`` (NaN, NaN when fewer than two)."""
    return _interval((np.asarray(values, dtype=np.float64),), _mean, n_resamples, confidence, rng, method)


def bootstrap_diff_ci(
    baseline: np.ndarray,
    other: np.ndarray,
    n_resamples: int,
    confidence: float,
    rng: np.random.Generator,
    method: str = "percentile",
) -> tuple[float, float]:
    """Bootstrap interval of mean(other) - mean(baseline); the two groups are resampled independently."""
    data = (np.asarray(baseline, dtype=np.float64), np.asarray(other, dtype=np.float64))
    return _interval(data, _mean_difference, n_resamples, confidence, rng, method)


def welch_test(baseline: np.ndarray, other: np.ndarray) -> TestResult:
    """Welch's unequal-variance t test (two-sided); t > 0 when ``other`` has the larger mean.

    Needs two values per group. When both groups are constant, t is undefined (NaN) and p is the limit of
    the test: 1 for equal constants, 0 for different ones.
    """
    x, y = np.asarray(baseline, dtype=np.float64), np.asarray(other, dtype=np.float64)
    if x.size < 2 or y.size < 2:
        return TestResult(math.nan, math.nan)
    if np.ptp(x) == 0 and np.ptp(y) == 0:
        return TestResult(math.nan, 1.0 if x[0] == y[0] else 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.ttest_ind(y, x, equal_var=False)
    return TestResult(float(res.statistic), float(res.pvalue))


def mann_whitney_test(baseline: np.ndarray, other: np.ndarray) -> TestResult:
    """Two-sided Mann-Whitney U test (U of ``other``); NaN when a group is empty."""
    x, y = np.asarray(baseline, dtype=np.float64), np.asarray(other, dtype=np.float64)
    if x.size < 1 or y.size < 1:
        return TestResult(math.nan, math.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.mannwhitneyu(y, x, alternative="two-sided")
    return TestResult(float(res.statistic), float(res.pvalue))


@dataclass(frozen=True)
class RatioResult:
    """Geometric mean of paired ratios with its t interval, and the paired t test of log ratio = 0."""

    ratio: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int


def ratio_inference(ratios, confidence: float) -> RatioResult:
    """Inference on paired ratios (e.g. time of a model / time of the baseline, one per interleaved repeat).

    On the log scale, where a ratio's noise is symmetric: the geometric mean exp(mean(log r)), its Student t
    interval exp(mean ± t_{n-1} s / sqrt(n)), and the two-sided one-sample t test of mean(log r) = 0 (i.e. the
    paired t test of log times). Needs two finite positive ratios (NaN otherwise); constant ratios give a
    zero-width interval, and p = 1 if they are all 1, else 0 (the limit, as in :func:`welch_test`).
    """
    r = np.asarray(ratios, dtype=np.float64).ravel()
    r = r[np.isfinite(r) & (r > 0)]
    if r.size < 2:
        return RatioResult(math.nan, math.nan, math.nan, math.nan, int(r.size))
    logs = np.log(r)
    mean, sem = float(logs.mean()), float(logs.std(ddof=1) / np.sqrt(r.size))
    if sem == 0.0:
        return RatioResult(math.exp(mean), math.exp(mean), math.exp(mean), 1.0 if mean == 0 else 0.0, int(r.size))
    half = float(stats.t.ppf(0.5 + confidence / 2, r.size - 1)) * sem
    p = float(2 * stats.t.sf(abs(mean) / sem, r.size - 1))
    return RatioResult(math.exp(mean), math.exp(mean - half), math.exp(mean + half), p, int(r.size))
