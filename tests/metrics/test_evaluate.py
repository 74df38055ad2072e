"""Per-molecule evaluation: force statistics, status rows, summaries."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from elign.io.table import MoleculeRecord, MoleculeTable
from elign.metrics.evaluate import NOT_SCORED, evaluate_table, force_rms, summarize

METHANE = np.array(
    [[0.0, 0.0, 0.0], [0.629, 0.629, 0.629], [-0.629, -0.629, 0.629], [-0.629, 0.629, -0.629], [0.629, -0.629, -0.629]]
)


def test_force_rms_over_real_atoms_only():
    forces = np.zeros((2, 3, 3))
    forces[0, 0] = [3.0, 4.0, 0.0]  # |F| = 5
    forces[0, 1] = [0.0, 0.0, 0.0]
    forces[1, :2] = [[1.0, 0, 0], [0, 1.0, 0]]
    rms, fmax = force_rms(forces, np.array([2, 2]))
    np.testing.assert_allclose(rms, [np.sqrt(25 / 2), 1.0])
    np.testing.assert_allclose(fmax, [5.0, 1.0])


@pytest.fixture(scope="module")
def ani(shared_dir):
    os.environ.setdefault("TORCHANI_DATA_DIR", str(shared_dir / "mlff/torchani"))
    from elign.mlff import get_backend

    return get_backend("ani2x", device="cpu", dtype="float64")


def _table():
    rng = np.random.default_rng(0)
    recs = [
        MoleculeRecord(0, np.array([6, 1, 1, 1, 1]), METHANE, props={"status": "ok"}),
        MoleculeRecord(1, np.array([6, 1, 1, 1, 1]), METHANE + rng.normal(0, 0.1, (5, 3)), props={"status": "ok"}),
        MoleculeRecord(2, np.array([6, 1, 1, 1, 1]), METHANE * np.nan, props={"status": "nan"}),
        MoleculeRecord(3, np.array([35, 6, 1, 1, 1]), METHANE * 1.6, props={"status": "ok"}),
        MoleculeRecord(4, np.array([6, 1, 1, 1, 1]), METHANE, props={"status": "bad_charge"}),
    ]
    return MoleculeTable.from_records(recs)


def test_evaluate_table_rows_and_statuses(ani):
    frame = evaluate_table(_table(), ani, {"C"})
    assert list(frame["mol_id"]) == [0, 1, 2, 3, 4]
    assert list(frame["mlff_status"]) == ["ok", "ok", NOT_SCORED, "unknown_element", "ok"]
    # a charge-channel mismatch is information only: the molecule is evaluated like EDM does
    assert frame.loc[4, "valid"] and frame.loc[4, "molecule_stable"]
    assert frame.loc[4, "energy_ev"] == frame.loc[0, "energy_ev"]
    assert np.isnan(frame.loc[2, "force_rms_ev_per_ang"]) and np.isnan(frame.loc[3, "energy_ev"])
    assert not frame.loc[2, "valid"] and not frame.loc[2, "molecule_stable"]  # a failed sample is never valid
    # Near-tetrahedral methane at 1.09 Å: stable, valid, small forces; the distorted copy has larger forces.
    assert frame.loc[0, "molecule_stable"] and frame.loc[0, "valid"] and frame.loc[0, "smiles"] is not None
    assert not frame.loc[0, "novel"]  # its key "C" is in the training keys
    assert frame.loc[1, "force_rms_ev_per_ang"] > 3 * frame.loc[0, "force_rms_ev_per_ang"]


def test_summarize_counts():
    frame = pd.DataFrame(
        {
            "mol_id": [0, 1, 2, 3],
            "num_atoms": [5, 5, 3, 2],
            "sample_status": ["ok", "ok", "ok", "nan"],
            "num_stable_atoms": [5, 4, 3, 0],
            "molecule_stable": [True, False, True, False],
            "valid": [True, True, True, False],
            "smiles": ["C", "C", "O", None],
            "novel": [False, False, True, None],
            "mlff_status": ["ok", "ok", "unknown_element", NOT_SCORED],
            "formation_energy_per_atom_ev": [-1.0, -3.0, np.nan, np.nan],
            "force_rms_ev_per_ang": [0.1, 0.3, np.nan, np.nan],
        }
    )
    row = summarize(frame, "m")
    assert row["atom_stability"] == pytest.approx(12 / 15)
    assert row["molecule_stability"] == 0.5 and row["validity"] == 0.75
    assert row["uniqueness"] == pytest.approx(2 / 3) and row["valid_and_unique"] == 0.5
    assert row["novelty"] == 0.5
    assert row["force_rms_ev_per_ang_mean"] == pytest.approx(0.2)
    assert row["formation_energy_per_atom_ev_mean"] == pytest.approx(-2.0)
    assert row["mlff_ok_fraction"] == 0.5 and row["mlff_failures"] == "unknown_element:1"


def test_reference_subset_is_a_seeded_random_sample_of_the_split():
    """The reference row's subset (evaluate.reference_max_molecules): random over the whole split, in file order.

    The split is stored in QM9-index order (small molecules first); the first rows would favour them.
    """
    from scipy import stats

    from elign.metrics.evaluate import random_subset

    n, k = 13083, 2000  # QM9's test split and the default run's reference size
    rows = random_subset(n, k, seed=4000)
    assert len(rows) == k and len(np.unique(rows)) == k and (np.diff(rows) > 0).all()
    assert rows.min() < 0.01 * n and rows.max() > 0.99 * n  # spans the split, not its head
    assert stats.kstest(rows / n, "uniform").pvalue > 1e-3  # positions are uniform over the split
    assert rows.mean() == pytest.approx(n / 2, rel=0.05)
    np.testing.assert_array_equal(rows, random_subset(n, k, seed=4000))
    other = random_subset(n, k, seed=4001)
    assert len(np.intersect1d(rows, other)) < 0.3 * k  # ~k^2/n = 306 shared by chance
    np.testing.assert_array_equal(random_subset(10, 50, seed=1), np.arange(10))
    with pytest.raises(ValueError):
        random_subset(10, 0, seed=1)


def test_evaluate_table_with_relaxation_adds_the_columns(ani):
    from elign.mlff.relax import FireSettings

    frame = evaluate_table(_table(), ani, {"C"}, FireSettings(max_steps=50))
    assert list(frame["relax_status"]) == ["ok", "ok", NOT_SCORED, "unknown_element", "ok"]
    # the distorted methane (row 1) is further from its minimum than the near-tetrahedral one (row 0)
    assert frame.loc[1, "relaxation_energy_kcal_mol"] > 3 * frame.loc[0, "relaxation_energy_kcal_mol"]
    row = summarize(frame, "m")
    assert row["relax_num_scored"] == 3 and row["relax_failures"] == "unknown_element:1"
    assert "relax_status" not in evaluate_table(_table(), ani, {"C"}).columns  # relaxation off: no columns
