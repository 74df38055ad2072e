"""Paired inference for a model sampled with the baseline's noise (elign/stats/paired.py)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from elign.stats.compare import BootstrapSettings, statistics_table
from elign.stats.paired import paired_columns, paired_design, paired_differences, paired_t_test

SUMMARY = {"seed": 1000, "batch_size": 64, "num_molecules": 6}


def _frame(n=6, **cols):
    base = {"mol_id": np.arange(n), "num_atoms": np.array([9, 9, 12, 14, 17, 20][:n])}
    return pd.DataFrame({**base, **cols})


def test_the_same_seed_batches_and_sizes_make_a_paired_design():
    ok, why = paired_design(SUMMARY, dict(SUMMARY), _frame(), _frame())
    assert ok and "same sampling noise" in why


@pytest.mark.parametrize(
    "change, expect",
    [
        ({"seed": 1001}, "seed differs"),
        ({"batch_size": 32}, "batch_size differs"),
        ({"num_molecules": 5}, "num_molecules differs"),
    ],
)
def test_another_seed_batch_size_or_count_is_unpaired(change, expect):
    ok, why = paired_design(SUMMARY, {**SUMMARY, **change}, _frame(), _frame())
    assert not ok and expect in why


def test_other_sizes_ids_or_a_missing_summary_are_unpaired():
    sizes = _frame()
    sizes.loc[2, "num_atoms"] = 13
    assert paired_design(SUMMARY, SUMMARY, _frame(), sizes) == (False, "num_atoms differs row by row")
    ids = _frame()
    ids["mol_id"] = ids["mol_id"][::-1].to_numpy()
    assert paired_design(SUMMARY, SUMMARY, _frame(), ids) == (False, "mol_id differs row by row")
    assert paired_design(SUMMARY, SUMMARY, _frame(), _frame(5))[0] is False
    assert paired_design(None, SUMMARY, _frame(), _frame()) == (False, "no sample summary")


def test_a_failed_molecule_drops_its_pair_never_imputed():
    d = paired_differences([1.0, np.nan, 3.0, 4.0], [2.0, 5.0, np.inf, 1.0])
    assert d.tolist() == [1.0, -3.0]
    with pytest.raises(ValueError, match="equal lengths"):
        paired_differences([1.0, 2.0], [1.0])


def test_the_paired_t_test_is_scipys_and_its_limits():
    rng = np.random.default_rng(0)
    x = rng.normal(2.6, 1.4, 50)
    y = x + rng.normal(-0.2, 0.5, 50)
    ref = stats.ttest_rel(y, x)
    got = paired_t_test(paired_differences(x, y))
    assert got.statistic == pytest.approx(ref.statistic) and got.p_value == pytest.approx(ref.pvalue)
    assert paired_t_test(np.zeros(5)).p_value == 1.0 and paired_t_test(np.full(5, 0.3)).p_value == 0.0
    assert math.isnan(paired_t_test(np.array([0.1])).p_value)


def test_pairing_finds_a_shift_that_the_spread_between_molecules_hides():
    """Correlated pairs (as samples from one noise): Welch cannot see a 0.2 shift under a spread of 1.4; the paired
    test can, and its interval (pairs resampled) covers the true shift and is much narrower."""
    rng = np.random.default_rng(1)
    x = np.abs(rng.normal(2.6, 1.4, 256))
    y = x - 0.2 + rng.normal(0.0, 0.4, 256)
    welch = stats.ttest_ind(y, x, equal_var=False).pvalue
    cols = paired_columns(x, y, 2000, 0.95, np.random.default_rng(2), "percentile")
    assert welch > 0.05 and cols["paired_p"] < 1e-6
    assert (
        cols["paired_ci_low"] < -0.2 < cols["paired_ci_high"] and cols["paired_ci_high"] - cols["paired_ci_low"] < 0.15
    )
    assert cols["n_pairs"] == 256 and cols["paired_diff"] == pytest.approx((y - x).mean())


def test_the_table_pairs_per_molecule_metrics_of_paired_models_only():
    rng = np.random.default_rng(3)
    n = 80
    force = np.abs(rng.normal(2.6, 1.4, n))
    valid = rng.random(n) < 0.6

    def frame(f):
        return _frame(
            n,
            num_atoms=np.full(n, 12),
            mlff_status="ok",
            force_rms_ev_per_ang=f,
            molecule_stable=valid,
            valid=valid,
            smiles=[f"C{i}" if v else None for i, v in enumerate(valid)],
        )

    metrics = {"pretrained": frame(force), "aligned": frame(force - 0.3), "guided": frame(force - 0.3)}
    bs = BootstrapSettings(n_resamples=500, seed=4)
    table = statistics_table(metrics, {}, "pretrained", bs, paired_models=["aligned"]).set_index(["metric", "model"])
    row = table.loc[("mlff_force_rms_ev_per_ang", "aligned")]
    assert bool(row["paired"]) and row["paired_diff"] == pytest.approx(-0.3) and row["paired_p"] == 0.0
    assert row["welch_p"] > 0.1  # the same numbers, unpaired
    assert not table.loc[("mlff_force_rms_ev_per_ang", "guided"), "paired"]  # not declared paired
    assert math.isnan(table.loc[("mlff_force_rms_ev_per_ang", "guided"), "paired_p"])
    assert not table.loc[("uniqueness", "aligned"), "paired"]  # a set-level property has no pairs
    assert table.loc[("molecule_stable", "aligned"), "paired_p"] == 1.0  # the same molecules stable: no change
