"""DFT relaxation (geomeTRIC + PySCF): a known minimum, the step cap, failures as rows, the stage's columns."""

from __future__ import annotations

import numpy as np
import pytest
from dft_molecules import THREADS

from elign.dft.jobs import MoleculeJob, compute_row
from elign.dft.level import DftLevel
from elign.dft.relax import HARTREE_TO_KCAL_PER_MOL, relax
from elign.dft.results import rows_to_arrow
from elign.dft.worker import DftWorker

# RHF/STO-3G water: E = -74.965901 Ha at r(OH) = 0.9894 Å, angle(HOH) = 100.03° (NIST CCCBDB, HF/STO-3G;
# Szabo & Ostlund's textbook value of the energy)
HF_STO3G = DftLevel(functional="hf", basis="sto-3g", density_fit=False, grid_level=1, conv_tol=1e-10)
WATER_START = (np.array([8, 1, 1]), np.array([[0.0, 0.0, 0.0], [0.0, 0.8, 0.6], [0.0, -0.8, 0.6]]))


def _geometry(positions):
    p = np.asarray(positions)
    r1, r2 = np.linalg.norm(p[1] - p[0]), np.linalg.norm(p[2] - p[0])
    angle = np.degrees(np.arccos(np.dot(p[1] - p[0], p[2] - p[0]) / (r1 * r2)))
    return r1, r2, angle


def test_water_relaxes_to_the_known_hf_sto3g_minimum():
    z, x = WATER_START
    row = relax(z, x, HF_STO3G, max_steps=50)
    assert row["relax_status"] == "ok" and row["relax_reason"] == ""
    assert row["relax_energy_ha"] == pytest.approx(-74.965901, abs=2e-6)
    r1, r2, angle = _geometry(row["relaxed_positions_ang"])
    assert r1 == pytest.approx(0.9894, abs=2e-3) and r2 == pytest.approx(0.9894, abs=2e-3)
    assert angle == pytest.approx(100.03, abs=0.3)
    assert 1 <= row["relax_steps"] <= 15
    assert row["relaxation_energy_kcal_mol"] > 0  # the start is above the minimum
    assert row["relax_heavy_rmsd_ang"] == 0.0  # one heavy atom: nothing to misalign


def test_the_step_cap_gives_a_not_converged_row_with_its_best_geometry():
    z, x = WATER_START
    row = relax(z, x, HF_STO3G, max_steps=1)
    assert row["relax_status"] == "not_converged" and "relax_max_steps = 1" in row["relax_reason"]
    assert row["relax_steps"] >= 1 and np.isfinite(row["relax_energy_ha"])
    assert row["relaxation_energy_kcal_mol"] >= 0  # the lowest energy seen: a lower bound, never negative
    assert len(row["relaxed_positions_ang"]) == 3


def test_bad_input_and_a_failed_scf_are_rows():
    row = relax(np.array([8, 1]), np.array([[0, 0, 0], [0, 0, 0.01]]), HF_STO3G, 10)
    assert row["relax_status"] == "error" and "bad input" in row["relax_reason"]
    capped = DftLevel(functional="hf", basis="sto-3g", density_fit=False, max_cycles=1, newton_cycles=0)
    row = relax(*WATER_START, capped, 10)
    assert row["relax_status"] == "scf_not_converged" and "step 1" in row["relax_reason"]
    assert np.isnan(row["relaxation_energy_kcal_mol"])


def test_the_stage_row_carries_the_relaxation_columns(tmp_path):
    z, x = WATER_START
    jobs = [MoleculeJob(7, z, x, 0, 3, relax_max_steps=50), MoleculeJob(8, z, x, 1, 3)]
    with DftWorker(THREADS, 300) as worker:
        rows = [compute_row(j, worker, HF_STO3G, None) for j in jobs]
    relaxed, plain = rows
    assert relaxed["status"] == "ok" and relaxed["relax_status"] == "ok" and relaxed["relax_seconds"] > 0
    # the relaxation starts at the single point's geometry: its first energy is the single point's
    start_ha = relaxed["relax_energy_ha"] + relaxed["relaxation_energy_kcal_mol"] / HARTREE_TO_KCAL_PER_MOL
    assert start_ha == pytest.approx(relaxed["energy_ha"], abs=1e-7)
    assert plain["relax_status"] == "skipped" and plain["relax_steps"] == 0
    table = rows_to_arrow(rows).to_pandas()
    assert table["relax_status"].tolist() == ["ok", "skipped"]
