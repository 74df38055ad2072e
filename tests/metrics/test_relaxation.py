"""Relaxation metrics: superposed heavy-atom RMSD, the per-molecule relax_* columns, their summary."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.transform import Rotation

from elign.io.table import MoleculeRecord, MoleculeTable
from elign.metrics.evaluate import evaluate_table, summarize
from elign.metrics.relaxation import NO_HEAVY_ATOMS, NOT_SCORED, heavy_atom_rmsd, summarize_relaxation, superposed_rmsd
from elign.mlff.relax import FireSettings
from elign.testing.molecules import MOLECULES

ETHANOL_Z = np.array(MOLECULES["ethanol"][0])
ETHANOL = np.array(MOLECULES["ethanol"][1])


def test_rmsd_ignores_rotation_and_translation():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(7, 3))
    rot, shift = Rotation.from_rotvec([0.3, -1.2, 2.0]).as_matrix(), np.array([5.0, -3.0, 1.0])
    assert superposed_rmsd(a, a @ rot.T + shift) == pytest.approx(0.0, abs=1e-12)
    noise = rng.normal(scale=0.05, size=a.shape)
    moved = (a + noise) @ rot.T + shift
    assert superposed_rmsd(a, moved) == pytest.approx(superposed_rmsd(a, a + noise), abs=1e-12)
    assert 0 < superposed_rmsd(a, a + noise) <= np.sqrt((noise**2).sum(1).mean())  # superposing only helps


def test_rmsd_known_answers():
    # two points at distances d1 and d2: the best superposition leaves each end |d1 - d2| / 2 off
    assert superposed_rmsd([[0, 0, 0], [1.0, 0, 0]], [[0, 0, 0], [0, 1.6, 0]]) == pytest.approx(0.3)
    assert superposed_rmsd([[1.0, 2, 3]], [[-4.0, 0, 9]]) == 0.0  # one point: a translation
    assert np.isnan(superposed_rmsd(np.zeros((0, 3)), np.zeros((0, 3))))
    # a chiral tetrahedron and its mirror image: no proper rotation maps one onto the other
    tet = np.array([[0, 0, 0], [1.0, 0, 0], [0, 1.5, 0], [0, 0, 2.0]])
    assert superposed_rmsd(tet, tet * [1, 1, -1]) > 0.1
    with pytest.raises(ValueError):
        superposed_rmsd(np.zeros((3, 3)), np.zeros((4, 3)))


def test_heavy_atom_rmsd_ignores_hydrogens():
    moved = ETHANOL.copy()
    moved[ETHANOL_Z == 1] += 0.5  # only the hydrogens move
    assert heavy_atom_rmsd(ETHANOL_Z, ETHANOL, moved) == pytest.approx(0.0, abs=1e-12)
    moved[2] += [0.0, 0.0, 0.3]  # out of the C-C-O plane: three points stay a rigid triangle to first order
    assert heavy_atom_rmsd(ETHANOL_Z, ETHANOL, moved) < 0.02
    moved[2] = ETHANOL[2] + 0.3 * (ETHANOL[2] - ETHANOL[1]) / np.linalg.norm(ETHANOL[2] - ETHANOL[1])
    assert heavy_atom_rmsd(ETHANOL_Z, ETHANOL, moved) > 0.05  # a longer C-O bond is a new shape
    assert np.isnan(heavy_atom_rmsd(np.array([1, 1]), np.zeros((2, 3)), np.ones((2, 3))))


@pytest.fixture(scope="module")
def ani(shared_dir):
    os.environ.setdefault("TORCHANI_DATA_DIR", str(shared_dir / "mlff/torchani"))
    from elign.mlff import get_backend

    return get_backend("ani2x", device="cpu", dtype="float64")


def _table() -> MoleculeTable:
    stretched = ETHANOL.copy()
    stretched[[2, 3]] += 0.3 * (ETHANOL[2] - ETHANOL[1]) / np.linalg.norm(ETHANOL[2] - ETHANOL[1])
    recs = [
        MoleculeRecord(0, ETHANOL_Z, stretched, props={"status": "ok"}),
        MoleculeRecord(1, ETHANOL_Z, ETHANOL * np.nan, props={"status": "nan"}),
        MoleculeRecord(2, np.array([35, 6, 1, 1, 1]), ETHANOL[:5], props={"status": "ok"}),
        MoleculeRecord(3, np.array([1, 1]), np.array([[0.0, 0, 0], [0, 0, 0.9]]), props={"status": "ok"}),
    ]
    return MoleculeTable.from_records(recs)


@pytest.fixture(scope="module")
def frame(ani) -> pd.DataFrame:
    return evaluate_table(_table(), ani, set(), FireSettings(max_steps=200))


def test_relaxation_columns_are_values_or_reasons(frame):
    assert list(frame["relax_status"]) == ["ok", NOT_SCORED, "unknown_element", "ok"]
    ok = frame.loc[0]
    assert ok["relax_converged"] and ok["relax_steps"] > 0 and ok["relax_fmax_ev_per_ang"] < 0.05
    assert ok["relaxation_energy_kcal_mol"] > 5 and 0.01 < ok["relax_heavy_rmsd_ang"] < 0.3
    assert ok["relaxed_energy_ev"] == pytest.approx(ok["energy_ev"] - ok["relaxation_energy_kcal_mol"] / 23.0605478)
    for i in (1, 2):  # the failed sample and the bromine molecule: no number, a reason
        row = frame.loc[i]
        assert np.isnan(row["relaxation_energy_kcal_mol"]) and np.isnan(row["relax_heavy_rmsd_ang"])
        assert row["relax_reason"] and not row["relax_converged"] and row["relax_steps"] == 0
    assert "Z=[35]" in frame.loc[2, "relax_reason"]
    h2 = frame.loc[3]  # H2 stretched to 0.9 Å relaxes, but has no heavy atom to superpose
    assert h2["relaxation_energy_kcal_mol"] > 1 and np.isnan(h2["relax_heavy_rmsd_ang"])
    assert h2["relax_reason"] == NO_HEAVY_ATOMS
    assert frame.attrs["relax_seconds"] > 0


def test_summary_counts_only_relaxed_molecules(frame):
    row = summarize(frame, "x")
    assert row["relax_num_scored"] == 2 and row["relax_failures"] == "unknown_element:1"
    assert row["relax_converged_fraction"] == 1.0
    e = frame.loc[[0, 3], "relaxation_energy_kcal_mol"]
    assert row["relaxation_energy_kcal_mol_mean"] == pytest.approx(e.mean())
    assert row["relaxation_energy_kcal_mol_median"] == pytest.approx(e.median())
    assert row["relax_heavy_rmsd_ang_mean"] == pytest.approx(frame.loc[0, "relax_heavy_rmsd_ang"])  # H2 has none


def test_summary_of_nothing_relaxed_is_nan_not_zero():
    empty = pd.DataFrame(
        {
            "relax_status": [NOT_SCORED, "non_finite"],
            "relax_converged": [False, False],
            "relax_steps": [0, 3],
            "relaxation_energy_kcal_mol": [np.nan, np.nan],
            "relax_heavy_rmsd_ang": [np.nan, np.nan],
        }
    )
    row = summarize_relaxation(empty)
    assert row["relax_num_scored"] == 0 and row["relax_failures"] == "non_finite:1"
    assert np.isnan(row["relaxation_energy_kcal_mol_mean"]) and np.isnan(row["relax_converged_fraction"])
