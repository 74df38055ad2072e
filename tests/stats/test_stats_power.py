"""Power of the paired t test, the detectable difference, and the paired DFT rows of the statistics table."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from elign.stats.compare import BootstrapSettings, align_by_mol_id, statistics_table
from elign.stats.paired import paired_columns
from elign.stats.power import detectable_difference, paired_sd, paired_t_power, pairs_needed


def test_power_is_the_noncentral_t_value_g_power_gives():
    # G*Power 3.1, "t tests - means: difference from constant (one sample case)", d = 0.5, alpha 0.05 two-sided:
    # total sample size 34, actual power 0.8077775
    assert paired_t_power(0.5, 1.0, 34, 0.05) == pytest.approx(0.8077775, abs=1e-6)
    assert paired_t_power(-1.0, 2.0, 34, 0.05) == pytest.approx(0.8077775, abs=1e-6)  # scale-free, two-sided
    assert paired_t_power(0.0, 1.0, 20, 0.05) == pytest.approx(0.05, abs=1e-12)  # no effect: the level


def test_power_matches_a_monte_carlo_of_the_paired_t_test():
    rng = np.random.default_rng(0)
    n, delta, sd = 12, 0.7, 1.0
    d = rng.normal(delta, sd, size=(20000, n))
    p = stats.ttest_1samp(d, 0.0, axis=1).pvalue
    assert np.mean(p < 0.05) == pytest.approx(paired_t_power(delta, sd, n), abs=0.01)


def test_detectable_difference_inverts_the_power_and_tends_to_the_normal_formula():
    mde = detectable_difference(0.4, 40, 0.05, 0.8)
    assert paired_t_power(mde, 0.4, 40, 0.05) == pytest.approx(0.8, abs=1e-9)
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)  # 2.8016
    assert detectable_difference(1.0, 20000) == pytest.approx(z / math.sqrt(20000), rel=1e-3)
    assert detectable_difference(1.0, 34) == pytest.approx(0.4950, abs=1e-4)  # just under d = 0.5 at n = 34
    assert math.isnan(detectable_difference(1.0, 1)) and math.isnan(detectable_difference(0.0, 10))


def test_pairs_needed_and_the_sd_of_differences():
    assert pairs_needed(1.0, 0.5) == 34
    assert paired_sd(1.0, 1.0, 0.0) == pytest.approx(math.sqrt(2))
    assert paired_sd(1.4, 1.4, 0.9) == pytest.approx(1.4 * math.sqrt(0.2))
    assert paired_sd(1.0, 1.0, 1.0) == 0.0


def test_paired_columns_count_dropped_pairs_and_state_the_power():
    rng = np.random.default_rng(1)
    a = rng.normal(3, 1, 40)
    b = a - 0.2 + rng.normal(0, 0.3, 40)
    a[3], b[7], b[9] = np.nan, np.nan, np.inf
    cols = paired_columns(a, b, 500, 0.95, np.random.default_rng(2), "percentile", 0.8)
    keep = np.isfinite(a) & np.isfinite(b)
    d = b[keep] - a[keep]
    assert cols["n_pairs"] == 37 and cols["n_pairs_dropped"] == 3
    assert cols["paired_sd"] == pytest.approx(np.std(d, ddof=1))
    assert cols["paired_p"] == pytest.approx(stats.ttest_rel(b[keep], a[keep]).pvalue)
    assert cols["detectable_diff"] == pytest.approx(detectable_difference(np.std(d, ddof=1), 37, 0.05, 0.8))


def _dft(mol_ids, force, energy):
    ok = np.isfinite(force)
    return pd.DataFrame(
        {
            "mol_id": mol_ids,
            "status": np.where(ok, "ok", "scf_not_converged"),
            "force_rms_ev_per_ang": force,
            "formation_energy_per_atom_ev": energy,
        }
    )


def test_dft_rows_of_the_same_mol_ids_are_paired_by_mol_id_not_by_row():
    rng = np.random.default_rng(5)
    n = 36
    ids = rng.permutation(1000)[:n]
    force = np.abs(rng.normal(3.0, 1.4, n))
    aligned = force - 0.25 + rng.normal(0, 0.4, n)
    aligned[4] = np.nan  # an SCF that failed: the pair drops out, counted
    energy = rng.normal(-3.8, 0.2, n)
    order = rng.permutation(n)  # the aligned table in another row order
    dft = {
        "pretrained": _dft(ids, force, energy),
        "aligned": _dft(ids[order], aligned[order], (energy - 0.01)[order]),
        "guided": _dft(ids + 5000, force - 0.3, energy),  # other molecules: never paired
    }
    bs = BootstrapSettings(n_resamples=500, seed=3)
    table = statistics_table({}, dft, "pretrained", bs, paired_models=["aligned", "guided"])
    row = table.set_index(["metric", "model"]).loc[("dft_force_rms_ev_per_ang", "aligned")]
    keep = np.isfinite(aligned)
    assert bool(row["paired"]) and row["n_pairs"] == n - 1 and row["n_pairs_dropped"] == 1
    assert row["paired_diff"] == pytest.approx(np.mean(aligned[keep] - force[keep]))
    assert row["paired_p"] == pytest.approx(stats.ttest_rel(aligned[keep], force[keep]).pvalue)
    assert row["paired_sd"] == pytest.approx(np.std(aligned[keep] - force[keep], ddof=1))
    assert row["welch_p"] == pytest.approx(stats.ttest_ind(aligned[keep], force, equal_var=False).pvalue)
    guided = table.set_index(["metric", "model"]).loc[("dft_force_rms_ev_per_ang", "guided")]
    assert not bool(guided["paired"]) and math.isnan(guided["paired_p"])


def test_align_by_mol_id_needs_the_same_molecules_once_each():
    a = pd.DataFrame({"mol_id": [3, 1, 2], "x": [0, 1, 2]})
    b = pd.DataFrame({"mol_id": [1, 2, 3], "x": [10, 11, 12]})
    assert align_by_mol_id(a, b)["x"].tolist() == [12, 10, 11]
    assert align_by_mol_id(a, b.assign(mol_id=[1, 2, 4])) is None
    assert align_by_mol_id(a, b.iloc[:2]) is None


def test_a_dft_only_model_is_paired_by_its_sample_design():
    from elign.stages.stats import paired_models

    design = {"seed": 1000, "batch_size": 64, "num_molecules": 256}
    summaries = {"pretrained": design, "aligned": dict(design), "guided": {**design, "num_molecules": 64}}
    assert paired_models({}, summaries, "pretrained", ["pretrained", "aligned", "guided"]) == ["aligned"]
    assert paired_models({}, {"pretrained": design}, "pretrained", ["aligned"]) == []
