"""Effective core potentials for GEOM's heavy elements (def2-SVP: ECP for Z > 36, here iodine).

Without the ECP, PySCF puts all 53 electrons of iodine into def2-SVP's valence basis: before the runner set
``mol.ecp``, HI came out "ok" at -1999.8 Ha (an all-electron iodine is ~ -7115 Ha) and the iodine atom failed
("nelec (27, 26) > Nmo (26)"). The bond energy below is the physics check: it is only right with the ECP.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from elign.constants import HARTREE_TO_EV
from elign.dft import pyscf_runner as pr
from elign.dft.level import DftLevel

DEF2 = DftLevel(basis="def2-svp", grid_level=1, conv_tol=1e-8)
HI = (np.array([1, 53]), np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.609]]))  # r_e(HI) = 1.609 Å (NIST CCCBDB)
HBR = (np.array([1, 35]), np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.414]]))  # r_e(HBr) = 1.414 Å
WATER = (np.array([8, 1, 1]), np.array([[0.0, 0.0, 0.117], [0.0, 0.757, -0.467], [0.0, -0.757, -0.467]]))


def test_def2_ecp_for_iodine_only():
    assert pr.ecp_spec("def2-svp", ["H", "C", "N", "O", "F", "S", "Cl", "Br"]) == {}  # all-electron up to Kr
    assert pr.ecp_spec("def2-svp", ["C", "I", "H", "Hg", "Bi"]) == {"Bi": "def2-svp", "Hg": "def2-svp", "I": "def2-svp"}
    assert pr.ecp_spec("sto-3g", ["I"]) == {}  # STO-3G is all-electron up to Xe
    hi = pr.build_mole(*HI, DEF2, spin=0)
    assert hi.has_ecp() and set(hi._ecp) == {"I"}
    assert hi.nelectron == 1 + 53 - 28  # ECP28MDF: 28 core electrons of iodine replaced by the potential
    hbr = pr.build_mole(*HBR, DEF2, spin=0)
    assert not hbr.has_ecp() and hbr.nelectron == 36


def test_hi_single_point_and_bond_energy_with_ecp():
    """HI at def2-SVP with iodine's ECP: a finite energy near -298.4 Ha, forces, and a bond energy
    D_e = E(H) + E(I) - E(HI) close to experiment (D_0 = 3.05 eV, + ZPE 0.14 eV: D_e ~ 3.2 eV)."""
    row = pr.single_point(*HI, DEF2)
    assert row["status"] == "ok", row["reason"]
    assert math.isfinite(row["energy_ha"]) and -300.0 < row["energy_ha"] < -297.0
    assert np.isfinite(np.array(row["forces_ev_per_ang"])).all()
    iodine, hydrogen = pr.atom_energy(53, 1, DEF2), pr.atom_energy(1, 1, DEF2)
    assert iodine["status"] == "ok" and hydrogen["status"] == "ok"
    d_e_ev = (iodine["energy_ha"] + hydrogen["energy_ha"] - row["energy_ha"]) * HARTREE_TO_EV
    assert 2.6 < d_e_ev < 3.8, d_e_ev


def test_qm9_elements_bit_identical_to_a_mole_without_ecp():
    """A molecule of H/C/N/O/F gets no ECP keyword: the energy equals PySCF's own build without one, bit for bit."""
    from pyscf import dft, gto

    level = replace(DEF2, density_fit=False, grid_level=0, conv_tol=1e-9)
    row = pr.single_point(*WATER, level)
    assert row["status"] == "ok"
    atoms = [(s, tuple(p)) for s, p in zip(("O", "H", "H"), WATER[1].tolist())]
    mol = gto.M(atom=atoms, basis="def2-svp", unit="Angstrom", charge=0, spin=0, cart=False, verbose=0)
    mf = dft.RKS(mol, xc=level.functional)
    mf.grids.level, mf.conv_tol, mf.max_cycle, mf.init_guess = 0, 1e-9, level.max_cycles, "minao"
    assert row["energy_ha"] == mf.kernel()


@pytest.mark.parametrize("basis", ["def2-svp", "sto-3g"])
def test_bromine_stays_all_electron(basis):
    row = pr.single_point(*HBR, replace(DEF2, basis=basis))
    assert row["status"] == "ok" and -2580.0 < row["energy_ha"] < -2540.0  # 36 electrons: -2574 (def2), -2547 (sto-3g)
