"""Paired inference for models sampled with the baseline's noise (common random numbers).

Paired means the same mol_id and the same noise, nothing else: molecule i of two models sampled with the same
seed, batch size and molecule count (evaluate rows, row by row), or the DFT rows of the same mol_ids
(:mod:`elign.dft.pairing` chooses them once, from the baseline).

The sample stage draws every model's molecules from the same plan: the same sizes in the same batches, and
batch k's noise from a generator seeded with (sample seed, k) (:func:`elign.diffusion.sampler.batch_seed`).
Two models sampled with the same seed, batch size and molecule count therefore start molecule i from the same
noise and draw the same per-step noise; an aligned model is a small change of the pretrained one, so its
molecule i is the pretrained molecule i, moved. The per-molecule values of such a pair are correlated
(MLFF force RMS of aligned and pretrained: r = 0.53 in the default run at 2e72b9d), and a test that ignores the
pairing throws that information away. For a paired model the statistics table adds, per metric:

* the mean of the per-molecule differences d_i = model_i − baseline_i over the pairs where both are finite
  (a failed molecule drops its pair; never imputed), with a bootstrap interval that resamples pairs;
* the paired t test on d (two-sided), i.e. the one-sample t test of mean(d) = 0;
* the power figures: the number of pairs dropped (a failure on either side), the SD of d and the smallest
  difference the test detects with ``power`` at alpha = 1 - confidence (:mod:`elign.stats.power`).

Set-level metrics (uniqueness: whether a SMILES is the first of its set) have no per-molecule pairing and
stay unpaired. Welch's test stays in the table beside the paired one.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from elign.stats.inference import TestResult, bootstrap_mean_ci
from elign.stats.power import detectable_difference

#: sample summary keys that fix the noise of molecule i (with the sizes and batches of the metrics frames)
DESIGN_KEYS = ("seed", "batch_size", "num_molecules")


def paired_design(
    baseline_summary: dict | None,
    model_summary: dict | None,
    baseline_frame: pd.DataFrame,
    model_frame: pd.DataFrame,
) -> tuple[bool, str]:
    """(paired?, why): whether molecule i of both sets was drawn from the same noise.

    Needs both sample summaries with equal ``seed``, ``batch_size`` and ``num_molecules`` and both per-molecule
    frames with equal ``mol_id`` and ``num_atoms`` columns, row by row (then the batch plan, which depends only
    on the sizes and the batch size, is the same too).
    """
    if not baseline_summary or not model_summary:
        return False, "no sample summary"
    for key in DESIGN_KEYS:
        a, b = baseline_summary.get(key), model_summary.get(key)
        if a is None or b is None or a != b:
            return False, f"sample {key} differs ({a} vs {b})"
    for column in ("mol_id", "num_atoms"):
        if column not in baseline_frame or column not in model_frame:
            return False, f"no {column} column"
        a, b = baseline_frame[column].to_numpy(), model_frame[column].to_numpy()
        if a.shape != b.shape or not np.array_equal(a, b):
            return False, f"{column} differs row by row"
    return True, "same sampling noise per molecule"


def paired_differences(baseline, other) -> np.ndarray:
    """(n_pairs,) other_i − baseline_i over the rows where both are finite; the arrays must align row by row."""
    x, y = np.asarray(baseline, dtype=np.float64).ravel(), np.asarray(other, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"paired values need equal lengths, got {x.size} and {y.size}")
    keep = np.isfinite(x) & np.isfinite(y)
    return y[keep] - x[keep]


def paired_t_test(differences: np.ndarray) -> TestResult:
    """Two-sided paired t test (one-sample t of mean(d) = 0); NaN below two pairs. Constant d: t undefined,
    p is the limit (1 for all-zero differences, else 0), as in :func:`elign.stats.inference.welch_test`."""
    d = np.asarray(differences, dtype=np.float64)
    if d.size < 2:
        return TestResult(math.nan, math.nan)
    if np.ptp(d) == 0:
        return TestResult(math.nan, 1.0 if d[0] == 0 else 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.ttest_1samp(d, 0.0)
    return TestResult(float(res.statistic), float(res.pvalue))


def paired_columns(
    baseline_values,
    model_values,
    n_resamples: int,
    confidence: float,
    rng: np.random.Generator,
    method: str,
    power: float = 0.8,
) -> dict:
    """The paired columns of one statistics row: n_pairs, n_pairs_dropped, paired_diff [CI] (pairs resampled),
    paired_t, paired_p, paired_sd (SD of the differences, ddof 1) and detectable_diff (at ``power``)."""
    d = paired_differences(baseline_values, model_values)
    lo, hi = bootstrap_mean_ci(d, n_resamples, confidence, rng, method)
    test = paired_t_test(d)
    sd = float(np.std(d, ddof=1)) if d.size >= 2 else math.nan
    return {
        "paired": True,
        "n_pairs": int(d.size),
        "n_pairs_dropped": int(np.asarray(baseline_values).size - d.size),
        "paired_sd": sd,
        "detectable_diff": detectable_difference(sd, int(d.size), 1 - confidence, power),
        "power": power,
        "paired_diff": float(d.mean()) if d.size else math.nan,
        "paired_ci_low": lo,
        "paired_ci_high": hi,
        "paired_t": test.statistic,
        "paired_p": test.p_value,
    }


UNPAIRED = {
    "paired": False,
    "n_pairs": 0,
    "n_pairs_dropped": 0,
    "paired_sd": math.nan,
    "detectable_diff": math.nan,
    "power": math.nan,
    "paired_diff": math.nan,
    "paired_ci_low": math.nan,
    "paired_ci_high": math.nan,
    "paired_t": math.nan,
    "paired_p": math.nan,
}
