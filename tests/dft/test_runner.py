"""One molecule through PySCF: spin choice, units of the forces, failure rows (cheap basis, in-process)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from dft_molecules import METHANE, METHYL, WATER

from elign.constants import HA_PER_BOHR_TO_EV_PER_ANG
from elign.constants import HARTREE_TO_EV as HARTREE_EV
from elign.dft import pyscf_runner as pr
from elign.dft.level import DftLevel


def test_codata_2018_constants():
    assert HARTREE_EV == 27.211386245988
    assert HA_PER_BOHR_TO_EV_PER_ANG == pytest.approx(27.211386245988 / 0.529177210903, rel=1e-15)
    # independent: CODATA 2018 atomic unit of force 8.2387234983e-8 N, e = 1.602176634e-19 C (exact)
    assert HA_PER_BOHR_TO_EV_PER_ANG == pytest.approx(8.2387234983e-8 / 1.602176634e-19 * 1e-10, rel=1e-10)


def test_even_electrons_rks_odd_electrons_uks(cheap_level):
    assert pr.electron_spin(METHANE[0]) == (10, 0)
    assert pr.electron_spin(METHYL[0]) == (9, 1)
    assert pr.electron_spin(METHYL[0], charge=1) == (8, 0)
    closed = pr.single_point(*METHANE, cheap_level)
    radical = pr.single_point(*METHYL, cheap_level)
    assert (closed["status"], closed["method"], closed["spin"]) == ("ok", "RKS", 0)
    assert math.isnan(closed["s2"])
    assert (radical["status"], radical["method"], radical["spin"]) == ("ok", "UKS", 1)
    assert radical["s2"] == pytest.approx(0.75, abs=0.02)  # a doublet, not a singlet forced onto 9 electrons
    assert closed["energy_ev"] == pytest.approx(closed["energy_ha"] * HARTREE_EV, rel=1e-14)


def test_forces_are_minus_energy_gradient_in_ev_per_ang():
    """Analytic forces (converted Ha/Bohr -> eV/Å) vs a central difference of the energy in Å."""
    level = DftLevel(basis="sto-3g", grid_level=3, conv_tol=1e-10)
    z, x = WATER
    row = pr.single_point(z, x, level)
    assert row["status"] == "ok"
    forces = np.array(row["forces_ev_per_ang"])
    assert forces.shape == (3, 3)
    h = 1e-3
    for atom, axis in [(0, 2), (1, 1)]:
        plus, minus = x.copy(), x.copy()
        plus[atom, axis] += h
        minus[atom, axis] -= h
        e_plus = pr.single_point(z, plus, level)["energy_ev"]
        e_minus = pr.single_point(z, minus, level)["energy_ev"]
        fd = -(e_plus - e_minus) / (2 * h)
        assert abs(fd) > 0.3  # a real force, so a wrong factor (Bohr, Hartree) would show
        assert forces[atom, axis] == pytest.approx(fd, abs=2e-3)  # grid error ~3e-4 eV/Å at level 3
    rms = np.sqrt((np.linalg.norm(forces, axis=1) ** 2).mean())
    assert row["force_rms_ev_per_ang"] == pytest.approx(rms)
    assert row["force_max_ev_per_ang"] == pytest.approx(np.linalg.norm(forces, axis=1).max())


def test_unconverged_scf_is_a_row_with_a_reason(cheap_level):
    row = pr.single_point(*WATER, replace(cheap_level, max_cycles=1, newton_cycles=0))
    assert row["status"] == "scf_not_converged"
    assert row["scf_converged"] is False
    assert "not converged in 1 cycles" in row["reason"]
    assert math.isnan(row["energy_ha"]) and row["forces_ev_per_ang"] is None


def test_newton_rescue_converges_to_the_same_scf_solution(cheap_level):
    """DIIS stopped after 2 cycles, then second-order SCF from its density: the energy DIIS alone reaches."""
    reference = pr.single_point(*WATER, cheap_level)
    rescued = pr.single_point(*WATER, replace(cheap_level, max_cycles=2, newton_cycles=30))
    assert reference["scf_solver"] == "diis" and rescued["scf_solver"] == "diis+newton"
    assert rescued["status"] == "ok" and rescued["scf_converged"] is True and rescued["cycles"] > 2
    assert rescued["energy_ha"] == pytest.approx(reference["energy_ha"], abs=1e-7)
    assert np.allclose(rescued["forces_ev_per_ang"], reference["forces_ev_per_ang"], atol=1e-4)
    stuck = pr.single_point(*WATER, replace(cheap_level, max_cycles=1, newton_cycles=1, conv_tol=1e-12))
    assert stuck["status"] == "scf_not_converged" and "newton_cycles 1" in stuck["reason"]


@pytest.mark.parametrize(
    "z, x, expected",
    [
        ([6, 1], [[0, 0, 0], [np.nan, 0, 0]], "non-finite coordinate"),
        ([6, 0], [[0, 0, 0], [1.1, 0, 0]], "unknown atomic number 0"),
        ([6, 200], [[0, 0, 0], [1.1, 0, 0]], "unknown atomic number 200"),
        ([1, 1], [[0, 0, 0], [0.01, 0, 0]], "apart"),
        ([], np.zeros((0, 3)), "no atoms"),
        ([6, 1], [[0, 0, 0]], "shape"),
    ],
)
def test_bad_input_is_an_error_row(cheap_level, z, x, expected):
    row = pr.single_point(np.array(z, dtype=int), np.array(x, dtype=float), cheap_level)
    assert row["status"] == "error"
    assert expected in row["reason"]


@pytest.mark.filterwarnings("ignore:Basis may be available")
def test_element_missing_from_the_basis_is_an_error_row(cheap_level):
    row = pr.single_point(np.array([118, 1]), np.array([[0, 0, 0], [1.5, 0, 0]]), cheap_level)
    assert row["status"] == "error" and row["reason"]


def test_basis_convention():
    assert DftLevel().basis_convention == "gaussian"
    assert DftLevel(basis="sto-3g").basis_convention == "pyscf"
    with pytest.raises(ValueError, match="only for"):
        DftLevel(basis="cc-pvdz", basis_convention="gaussian")
    spec, cart = pr.basis_spec(DftLevel(), ["C", "H"])
    assert cart is True
    d_exponents = sorted(s[1][0] for s in spec["C"] if s[0] == 2)
    assert d_exponents == [0.4, 1.6]  # Gaussian: 2x and 1/2x the 6-31G* exponent 0.8 (BSE: 1.252, 0.313)
    assert [s[0] for s in spec["H"]] == [0, 0, 1]
    assert pr.basis_spec(DftLevel(basis_convention="pyscf"), ["C"]) == ("6-31g(2df,p)", False)


def test_cuda_without_gpu4pyscf_stops_with_a_clear_message():
    pytest.importorskip("pyscf")
    try:
        import gpu4pyscf  # noqa: F401
    except ImportError:
        with pytest.raises(pr.DftDeviceError, match="gpu4pyscf"):
            pr.check_cuda()
    else:
        pytest.skip("gpu4pyscf is installed here")


@pytest.mark.slow
def test_gaussian_6d7f_gradient_matches_finite_difference(qm9_level):
    """The 6D7F subspace SCF (cart=True + pure f) keeps analytic gradients exact: HF molecule, bond axis."""
    z = np.array([9, 1])
    x = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.95]])
    level = replace(qm9_level, density_fit=False, grid_level=4, conv_tol=1e-11)
    mol = pr.build_mole(z, x, level, 0)
    assert mol.cart and pr.pure_f_transform(mol).shape == (mol.nao, mol.nao - 3)  # one f shell: 10F -> 7F
    row = pr.single_point(z, x, level)
    h = 2e-3
    e = [pr.single_point(z, x + np.array([[0, 0, 0], [0, 0, s * h]]), level)["energy_ev"] for s in (1, -1)]
    fd = -(e[0] - e[1]) / (2 * h)
    assert abs(fd) > 0.1
    assert row["forces_ev_per_ang"][1][2] == pytest.approx(fd, abs=2e-3)


@pytest.mark.slow
def test_a_backend_that_ignores_the_6d7f_restriction_is_caught(qm9_level):
    """Without the orthogonalizer the SCF runs in 6D10F: check_in_subspace must say so (the GPU guard)."""
    from pyscf import dft

    z, x = np.array([9, 1]), np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.92]])
    mol = pr.build_mole(z, x, qm9_level, 0)
    transform = pr.pure_f_subspace(mol, qm9_level)
    plain = dft.RKS(mol, xc="b3lypg").density_fit()
    plain.kernel()
    assert "leave the 6D7F space" in pr.check_in_subspace(plain, transform)
    restricted = pr.make_scf(mol, qm9_level, unrestricted=False)
    restricted.kernel()
    assert pr.check_in_subspace(restricted, transform) is None
    assert restricted.e_tot > plain.e_tot  # 7F is a subspace of 10F: variationally higher


def test_level_from_the_default_config_is_qm9s_level():
    from elign.config import DftConfig

    level = DftLevel.from_config(DftConfig())
    assert level == DftLevel()
    assert (level.functional, level.basis, level.basis_convention, level.density_fit) == (
        "b3lypg",
        "6-31g(2df,p)",
        "gaussian",
        True,
    )
    assert level.reference_key() != DftLevel(grid_level=4).reference_key()
    assert level.reference_key() == DftLevel(max_cycles=5, newton_cycles=0, device="cuda").reference_key()
