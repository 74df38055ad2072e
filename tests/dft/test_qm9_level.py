"""The stage's own sanity check, at QM9's level (b3lypg / 6-31G(2df,p) as Gaussian defines it, density
fitting): QM9 geometries are stationary points of this level and its energies are QM9's.

Slow tests (tens of seconds on one core): marked ``slow``; they still run in CI (``pytest`` runs all).
"""

from __future__ import annotations

import numpy as np
import pytest
from dft_molecules import QM9_ATOM_U0_HA

from elign.constants import HARTREE_TO_EV as HARTREE_EV
from elign.dft import pyscf_runner as pr
from elign.dft.atoms import AtomReferences

pytestmark = pytest.mark.slow

QM9_SANITY_IDS = (2, 3, 6)  # NH3, H2O, H2CO (QM9 indices 2, 3, 6): N, O and C, <= 2 heavy atoms


@pytest.fixture(scope="module")
def sanity_rows(qm9_first_rows, qm9_level):
    """Single points of the three molecules at their QM9 geometry and displaced by 0.1 Å (seeded)."""
    rng = np.random.default_rng(0)
    out = []
    for i in np.flatnonzero(np.isin(qm9_first_rows.mol_id, QM9_SANITY_IDS)):
        rec = qm9_first_rows.molecule(int(i))
        x = rec.positions_ang.astype(np.float64)
        direction = rng.normal(size=x.shape)
        displaced = x + 0.1 * direction / np.linalg.norm(direction, axis=1, keepdims=True)
        out.append(
            (
                rec,
                pr.single_point(rec.atomic_numbers, x, qm9_level),
                pr.single_point(rec.atomic_numbers, displaced, qm9_level),
            )
        )
    assert len(out) == len(QM9_SANITY_IDS)
    return out


def test_qm9_geometries_are_stationary_and_energies_match_u0_minus_zpve(sanity_rows):
    for rec, row, displaced in sanity_rows:
        reference_ha = rec.props["u0_ha"] - rec.props["zpve_ha"]
        delta_mha = (row["energy_ha"] - reference_ha) * 1e3
        print(
            f"{rec.smiles}: force RMS {row['force_rms_ev_per_ang']:.4f} eV/A (displaced "
            f"{displaced['force_rms_ev_per_ang']:.3f}), E - (U0 - ZPVE) = {delta_mha:+.4f} mHa, "
            f"{row['cycles']} cycles"
        )
        assert row["status"] == "ok" and row["method"] == "RKS"
        assert row["force_rms_ev_per_ang"] < 0.06
        assert displaced["status"] == "ok"
        assert displaced["force_rms_ev_per_ang"] > 10 * row["force_rms_ev_per_ang"]
        assert abs(delta_mha) < 15
        # Gaussian's basis definition (6D7F, scaled 2d exponents) reproduces QM9 far more tightly:
        assert abs(delta_mha) < 0.1
        assert row["force_rms_ev_per_ang"] < 0.02  # QM9's optimizer stops below ~0.02 eV/A per component


def test_isolated_atoms_and_formation_energies_match_qm9(sanity_rows, qm9_level, tmp_path):
    refs = AtomReferences(qm9_level, lambda z, spin: pr.atom_energy(z, spin, qm9_level), tmp_path)
    for z, u0 in QM9_ATOM_U0_HA.items():
        if z == 9:
            continue  # no F in these molecules; saves a calculation
        assert refs.energy_ha(z) == pytest.approx(u0, abs=5e-5), f"Z={z}"
    for rec, row, _ in sanity_rows:
        ours, why = refs.formation_energy_per_atom_ev(row["energy_ha"], rec.atomic_numbers)
        qm9 = rec.props["u0_ha"] - rec.props["zpve_ha"] - sum(QM9_ATOM_U0_HA[int(z)] for z in rec.atomic_numbers)
        qm9 *= HARTREE_EV / len(rec.atomic_numbers)
        assert why == ""
        assert ours == pytest.approx(qm9, abs=2e-3)  # eV/atom
