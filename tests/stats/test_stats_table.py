"""The statistics table: metrics from the stage artifacts, NaN exclusion counts, proportions, seeding."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from elign.metrics.evaluate import summarize
from elign.stats.compare import (
    METRICS,
    BootstrapSettings,
    markdown_table,
    statistics_table,
    unique_among_valid,
    valid_and_unique,
)

BS = BootstrapSettings(n_resamples=1000, confidence=0.95, seed=11)


def _metrics(n: int, force_shift: float, valid_p: float, seed: int, mlff_failed: int = 0) -> pd.DataFrame:
    """A frame with the evaluate stage's columns (elign.metrics.evaluate docstring)."""
    rng = np.random.default_rng(seed)
    valid = rng.random(n) < valid_p
    num_atoms = rng.integers(5, 20, n)
    status = np.array(["ok"] * (n - mlff_failed) + ["nan"] * mlff_failed, dtype=object)
    force = np.abs(rng.normal(1.0 + force_shift, 0.2, n))
    return pd.DataFrame(
        {
            "mol_id": np.arange(n),
            "num_atoms": num_atoms,
            "sample_status": "ok",
            "num_stable_atoms": np.where(valid, num_atoms, num_atoms - 1),
            "molecule_stable": valid,
            "valid": valid,
            "smiles": [f"C{'C' * (i % 7)}O" if v else None for i, v in enumerate(valid)],
            "invalid_reason": [None if v else "valence" for v in valid],
            "novel": valid,
            "mlff_status": status,
            "mlff_reason": "",
            "energy_ev": rng.normal(-4000, 10, n),
            "formation_energy_per_atom_ev": np.where(status == "ok", rng.normal(-3, 0.1, n), np.nan),
            "force_rms_ev_per_ang": np.where(status == "ok", force, np.nan),
            "force_max_ev_per_ang": 2 * force,
            "relax_status": status,
            "relaxation_energy_kcal_mol": np.where(status == "ok", 100 * force, np.nan),
            "relax_heavy_rmsd_ang": np.where(status == "ok", 0.3 * force, np.nan),
            "relax_converged": status == "ok",
            "relax_steps": 50,
        }
    )


def _dft(n: int, shift: float, failed: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ok = np.arange(n) < n - failed
    return pd.DataFrame(
        {
            "status": np.where(ok, "ok", "scf_not_converged"),
            "force_rms_ev_per_ang": np.where(ok, np.abs(rng.normal(0.5 + shift, 0.1, n)), np.nan),
            "formation_energy_per_atom_ev": np.where(ok, rng.normal(-2.5, 0.05, n), np.nan),
            "relax_status": np.where(ok, "ok", "skipped"),
            "relaxation_energy_kcal_mol": np.where(ok, np.abs(rng.normal(5.0, 1.0, n)), np.nan),
            "relax_steps": np.where(ok, rng.integers(5, 40, n), 0),
            "relax_heavy_rmsd_ang": np.where(ok, np.abs(rng.normal(0.2, 0.05, n)), np.nan),
        }
    )


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    metrics = {
        "pretrained": _metrics(200, 0.0, 0.6, 0, mlff_failed=7),
        "aligned": _metrics(150, -0.4, 0.8, 1, mlff_failed=3),
        "guided": _metrics(150, 0.0, 0.6, 2),
    }
    dft = {"pretrained": _dft(16, 0.0, 2, 3), "aligned": _dft(16, -0.3, 1, 4), "guided": _dft(16, 0.0, 16, 5)}
    return statistics_table(metrics, dft, "pretrained", BS)


def _row(table, metric, model):
    rows = table[(table.metric == metric) & (table.model == model)]
    assert len(rows) == 1
    return rows.iloc[0]


def test_one_row_per_metric_and_model(table):
    assert set(table.model) == {"aligned", "guided"} and set(table.baseline) == {"pretrained"}
    assert set(table.metric) == {s.key for s in METRICS}
    relax = {"dft_relaxation_energy_kcal_mol", "dft_relax_steps", "dft_relax_heavy_rmsd_ang"}
    # every guided DFT row failed, so none was relaxed: no relaxation rows for it (not rows of NaN)
    assert set(table[table.model == "guided"].metric) == {s.key for s in METRICS} - relax
    assert len(table) == 2 * len(METRICS) - len(relax)


def test_failed_rows_are_excluded_and_counted(table):
    r = _row(table, "mlff_force_rms_ev_per_ang", "aligned")
    assert (r.n_used, r.n_failed, r.n_used_baseline, r.n_failed_baseline) == (147, 3, 193, 7)
    base = _metrics(200, 0.0, 0.6, 0, mlff_failed=7)["force_rms_ev_per_ang"]
    assert r.mean_baseline == pytest.approx(np.nanmean(base))
    assert r.ci_low_baseline < r.mean_baseline < r.ci_high_baseline
    d = _row(table, "dft_force_rms_ev_per_ang", "aligned")
    assert (d.n_used, d.n_failed, d.n_used_baseline, d.n_failed_baseline) == (15, 1, 14, 2)


def test_a_model_whose_dft_rows_all_failed_has_no_numbers_and_says_so(table):
    r = _row(table, "dft_force_rms_ev_per_ang", "guided")
    assert (r.n_used, r.n_failed) == (0, 16)
    assert math.isnan(r["mean"]) and math.isnan(r.mean_diff) and math.isnan(r.welch_p)
    assert "model: no usable rows" in r.note
    assert r.n_used_baseline == 14 and np.isfinite(r.mean_baseline)


def test_shift_is_detected_and_no_shift_is_not(table):
    r = _row(table, "mlff_force_rms_ev_per_ang", "aligned")
    assert r.welch_p < 0.01 and r.mannwhitney_p < 0.01
    assert r.diff_ci_low < r.mean_diff < r.diff_ci_high < 0
    g = _row(table, "mlff_force_rms_ev_per_ang", "guided")
    assert g.welch_p > 0.01


def test_binary_metrics_are_proportions_with_intervals(table):
    r = _row(table, "valid", "aligned")
    aligned = _metrics(150, -0.4, 0.8, 1, mlff_failed=3)
    pretrained = _metrics(200, 0.0, 0.6, 0, mlff_failed=7)
    assert r["mean"] == pytest.approx(aligned["valid"].mean())
    assert r.mean_baseline == pytest.approx(pretrained["valid"].mean())
    assert r.mean_diff == pytest.approx(aligned["valid"].mean() - pretrained["valid"].mean())
    assert 0 <= r.ci_low < r["mean"] < r.ci_high <= 1
    assert r.diff_ci_low < r.mean_diff < r.diff_ci_high
    assert (r.n_used, r.n_failed) == (150, 0)


def test_valid_and_unique_per_molecule_matches_the_evaluate_summary():
    frame = _metrics(120, 0.0, 0.7, 9)
    assert valid_and_unique(frame).mean() == pytest.approx(summarize(frame, "x")["valid_and_unique"])
    assert valid_and_unique(frame).sum() == frame.loc[frame.valid, "smiles"].nunique()


def test_same_seed_same_table_other_seed_other_intervals(table):
    metrics = {
        "pretrained": _metrics(200, 0.0, 0.6, 0, mlff_failed=7),
        "aligned": _metrics(150, -0.4, 0.8, 1, mlff_failed=3),
        "guided": _metrics(150, 0.0, 0.6, 2),
    }
    dft = {"pretrained": _dft(16, 0.0, 2, 3), "aligned": _dft(16, -0.3, 1, 4), "guided": _dft(16, 0.0, 16, 5)}
    again = statistics_table(metrics, dft, "pretrained", BS)
    pd.testing.assert_frame_equal(again, table)
    other = statistics_table(metrics, dft, "pretrained", BootstrapSettings(1000, 0.95, seed=12))
    assert not np.allclose(other.ci_low.to_numpy(float), table.ci_low.to_numpy(float), equal_nan=True)
    # a row does not depend on which other models are in the table
    only = statistics_table({k: metrics[k] for k in ("pretrained", "aligned")}, {}, "pretrained", BS)
    pd.testing.assert_series_equal(
        only.set_index("metric").loc["valid"], table[table.model == "aligned"].set_index("metric").loc["valid"]
    )


def test_missing_baseline_is_an_error():
    with pytest.raises(ValueError, match="baseline model 'pretrained'"):
        statistics_table({"aligned": _metrics(10, 0, 0.5, 0)}, {}, "pretrained", BS)


def test_markdown_names_the_method_and_the_counts(table):
    md = markdown_table(table)
    assert "1000 resamples" in md and "percentile" in md
    assert "aligned vs pretrained" in md and "0/16 vs 14/2" in md


def test_uniqueness_is_a_proportion_among_valid_molecules():
    frame = _metrics(120, 0.0, 0.7, 9)
    u = unique_among_valid(frame)
    assert np.isnan(u[~frame.valid.to_numpy()]).all()
    assert np.nanmean(u) == pytest.approx(summarize(frame, "x")["uniqueness"])


def test_relaxation_and_dft_convergence_rows(table):
    r = _row(table, "relaxation_energy_kcal_mol", "aligned")
    assert (r.n_used, r.n_failed) == (147, 3)  # the molecules the MLFF could not relax are excluded, counted
    assert r.mean_diff == pytest.approx(100 * _row(table, "mlff_force_rms_ev_per_ang", "aligned").mean_diff)
    assert r.welch_p < 0.01 and r.diff_ci_high < 0
    c = _row(table, "dft_converged", "guided")
    assert (c.n_used, c.n_failed, c["mean"], c.mean_baseline) == (16, 0, 0.0, 14 / 16)
    assert _row(table, "dft_converged", "aligned")["mean"] == 15 / 16
