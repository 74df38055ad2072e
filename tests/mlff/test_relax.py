"""Batched FIRE relaxation (elign.mlff.relax): ASE's FIRE step for step, known minima, batching, failures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mlff_molecules import batch, molecule

from elign.mlff import MLFFBackend, pad_molecules
from elign.mlff.relax import EV_TO_KCAL_PER_MOL, FireSettings, relax


class HarmonicPairs(MLFFBackend):
    """Toy backend with a known minimum: E = sum over atom pairs of k/2 (r - r0)^2 (eV, Å); NaN for a molecule
    with a pair distance inside ``nan_window`` (Å)."""

    name = "harmonic"

    def __init__(self, k: float = 30.0, r0: float = 1.0, nan_window: tuple[float, float] = (np.inf, np.inf)) -> None:
        super().__init__(dtype="float64")
        self.k, self.r0, self.nan_window = k, r0, nan_window

    @property
    def elements(self) -> frozenset[int]:
        return frozenset({1, 6})

    def reference_energies_ev(self) -> dict[int, float]:
        return {1: 0.0, 6: 0.0}

    def _compute(self, atomic_numbers, positions_ang, charge):
        x = positions_ang.detach().clone().requires_grad_(True)
        mask = atomic_numbers > 0
        pair = (mask[:, :, None] & mask[:, None, :]).triu(1)
        diff = x[:, :, None] - x[:, None, :]
        r = torch.sqrt((diff**2).sum(-1) + (~pair).to(x.dtype))  # 1 off the pairs: no NaN gradient
        energy = (0.5 * self.k * (r - self.r0) ** 2 * pair).sum(dim=(1, 2))
        lo, hi = self.nan_window
        energy = torch.where((pair & (r > lo) & (r < hi)).any(dim=(1, 2)), torch.nan, energy)
        (grad,) = torch.autograd.grad(energy.sum(), x)
        return energy.detach(), -grad


def _bond(positions: np.ndarray, i: int, j: int) -> float:
    return float(np.linalg.norm(positions[i] - positions[j]))


def test_settings_are_checked_and_match_the_config_defaults():
    from elign.config import RelaxConfig

    assert FireSettings(**RelaxConfig().model_dump(exclude={"enabled"})) == FireSettings()
    for bad in ({"max_steps": -1}, {"fmax_ev_per_ang": 0.0}, {"dt": float("nan")}, {"max_step_ang": -0.1}):
        with pytest.raises(ValueError):
            FireSettings(**bad)
    assert EV_TO_KCAL_PER_MOL == pytest.approx(23.0605478, abs=1e-7)  # CODATA 2018


def test_harmonic_diatomic_relaxes_to_its_known_minimum():
    """A bond stretched by d from r0 holds k d^2 / 2 of energy: FIRE releases exactly that, to the tolerance."""
    k, r0, d = 30.0, 1.0, 0.3
    z = np.array([[6, 1]])
    x = np.array([[[0.0, 0.0, 0.0], [0.2, 0.3, r0 + d]]])
    x[0, 1] *= (r0 + d) / np.linalg.norm(x[0, 1])
    settings = FireSettings(max_steps=500, fmax_ev_per_ang=1e-4)
    res = relax(HarmonicPairs(k, r0), z, x, settings)
    assert res.status[0] == "ok" and res.converged[0] and 0 < res.steps[0] < 500
    assert res.energy_initial_ev[0] == pytest.approx(0.5 * k * d**2)
    # |F| = k |r - r0| < fmax at the end, so the residual energy is below fmax^2 / (2k)
    assert res.energy_final_ev[0] < 1e-4**2 / (2 * k) + 1e-15
    assert res.relaxation_energy_kcal_mol[0] == pytest.approx(0.5 * k * d**2 * EV_TO_KCAL_PER_MOL, rel=1e-8)
    assert _bond(res.positions_ang[0], 0, 1) == pytest.approx(r0, abs=1e-4 / k * 1.01)
    # pure internal forces: the centre does not move
    np.testing.assert_allclose(res.positions_ang[0].mean(0), x[0].mean(0), atol=1e-12)


def test_step_cap_and_zero_steps():
    z, x = np.array([[6, 1]]), np.array([[[0.0, 0, 0], [0, 0, 1.5]]])
    backend = HarmonicPairs()
    capped = relax(backend, z, x, FireSettings(max_steps=3))
    assert capped.status[0] == "ok" and capped.steps[0] == 3 and not capped.converged[0]
    assert 0 < capped.relaxation_energy_kcal_mol[0] < 0.5 * 30 * 0.5**2 * EV_TO_KCAL_PER_MOL
    none = relax(backend, z, x, FireSettings(max_steps=0))
    assert none.steps[0] == 0 and none.relaxation_energy_kcal_mol[0] == 0.0 and not none.converged[0]
    np.testing.assert_array_equal(none.positions_ang, x)


def test_a_molecule_that_turns_nan_mid_relaxation_is_a_failure_row():
    # NaN for 1.2 < r < 1.5 Å: from 1.1 the bond relaxes to r0 = 1 without entering it; from 1.8 it must cross
    # it, and a step changes r by at most 2 x 0.2 / sqrt(2) = 0.28 Å < 0.3 Å, so it cannot jump over it
    z = np.array([[6, 1], [6, 1]])
    x = np.array([[[0.0, 0, 0], [0, 0, 1.1]], [[0.0, 0, 0], [0, 0, 1.8]]])
    res = relax(HarmonicPairs(nan_window=(1.2, 1.5)), z, x, FireSettings(max_steps=200))
    assert res.status[0] == "ok" and res.converged[0]
    assert res.status[1] == "non_finite" and res.reason[1].startswith("step ")
    assert int(res.reason[1].split()[1].rstrip(":")) > 0  # it failed after a few steps, not on the input
    assert np.isnan(res.relaxation_energy_kcal_mol[1]) and np.isnan(res.positions_ang[1]).all()
    assert not res.converged[1]


@pytest.fixture(scope="module")
def ani(ani2x64):
    return ani2x64


def _stretched_ethanol(extra_ang: float = 0.4) -> tuple[np.ndarray, np.ndarray]:
    """Ethanol with its C-O bond (atoms 1-2) stretched by ``extra_ang`` (O and its H moved along the bond)."""
    z, x = molecule("ethanol")
    axis = (x[2] - x[1]) / np.linalg.norm(x[2] - x[1])
    x = x.copy()
    x[[2, 3]] += extra_ang * axis
    return z, x


def test_matches_ase_fire_step_for_step(ani):
    """Same trajectory as ASE's FIRE with torchani's own ASE calculator (same defaults, same stopping rule)."""
    from ase import Atoms
    from ase.optimize import FIRE

    z, x = _stretched_ethanol()
    res = relax(ani, z[None], x[None], FireSettings(max_steps=300))
    atoms = Atoms(numbers=z, positions=x)
    atoms.calc = ani.ase_calculator()
    opt = FIRE(atoms, logfile=None)
    assert opt.run(fmax=0.05, steps=300)
    assert res.converged[0] and res.steps[0] == opt.nsteps
    np.testing.assert_allclose(res.positions_ang[0], atoms.get_positions(), atol=1e-6)


def test_stretched_bond_relaxes_back(ani):
    z, x = molecule("ethanol")
    eq = relax(ani, z[None], x[None], FireSettings(max_steps=300))
    zs, xs = _stretched_ethanol(0.4)
    res = relax(ani, zs[None], xs[None], FireSettings(max_steps=300))
    assert eq.converged[0] and res.converged[0]
    r_eq, r_start, r_end = (_bond(p, 1, 2) for p in (eq.positions_ang[0], xs, res.positions_ang[0]))
    assert r_start - r_eq > 0.38
    assert abs(r_end - r_eq) < 0.01  # back at the C-O minimum (1.42 Å), not merely shorter
    # a C-O stretch of 0.4 Å costs tens of kcal/mol (harmonic k ~ 5 mdyn/Å would give ~58; the bond is softer)
    assert res.relaxation_energy_kcal_mol[0] > 20
    assert res.energy_final_ev[0] == pytest.approx(eq.energy_final_ev[0], abs=0.01)  # the same minimum
    heavy = zs > 1
    assert np.abs(res.positions_ang[0][heavy] - xs[heavy]).max() > 0.1  # it did move


@pytest.fixture(scope="module")
def qm9_minima(shared_dir) -> tuple[np.ndarray, np.ndarray]:
    """12 QM9 molecules (B3LYP/6-31G(2df,p) minima) from ../shared/data/qm9, padded."""
    from elign.data.errors import ErrorPolicy
    from elign.data.figshare import parse_archive

    records = parse_archive(shared_dir / "data/qm9/qm9_subset_100_figshare_layout.xyz.tar.bz2", ErrorPolicy())
    picked = records[::8][:12]
    return pad_molecules([r.atomic_numbers for r in picked], [r.positions_ang for r in picked])


def test_qm9_minima_relax_by_almost_nothing(ani, qm9_minima):
    """QM9 geometries are B3LYP minima; ANI-2x (trained on ωB97X/6-31G(d)) puts its minima ~0.01 Å away.

    Bonds that are 0.01 Å off with stretch constants ~30 eV/Å^2 hold ~1.5 meV (0.035 kcal/mol) each, so a
    molecule of ~18 bonds relaxes by well under 3 kcal/mol and its heavy atoms move by well under 0.1 Å.
    Measured on 500 random QM9 test molecules: median 0.41 kcal/mol, 97 % below 3; heavy-atom RMSD median
    0.013 Å. The exceptions are strained polycyclic cages, where ANI-2x and B3LYP disagree more (up to 14
    kcal/mol, RMSD up to 0.17 Å); none is among these 12. A sampled molecule relaxes by hundreds of kcal/mol.
    """
    from elign.metrics.relaxation import heavy_atom_rmsd

    z, x = qm9_minima
    res = relax(ani, z, x, FireSettings(max_steps=300))
    assert (res.status == "ok").all() and res.converged.all()
    assert (res.steps > 0).all()  # the B3LYP minima are not ANI-2x minima: there was something to relax
    e = res.relaxation_energy_kcal_mol
    assert (e > -0.01).all() and (e < 3.0).all(), e
    rmsd = [heavy_atom_rmsd(z[i][z[i] > 0], x[i][z[i] > 0], res.positions_ang[i][z[i] > 0]) for i in range(len(z))]
    assert max(rmsd) < 0.1, rmsd


def test_batched_equals_one_by_one(ani, qm9_minima):
    zs, xs = _stretched_ethanol(0.3)
    zq, xq = qm9_minima
    rng = np.random.default_rng(0)
    mols = [(zs, xs)]
    for name in ("methane", "water", "chloromethane"):
        z, x = molecule(name)
        mols.append((z, x + rng.normal(0, 0.05, x.shape)))
    mols += [(zq[i][zq[i] > 0], xq[i][zq[i] > 0]) for i in range(3)]
    z, x = pad_molecules([m[0] for m in mols], [m[1] for m in mols])
    settings = FireSettings(max_steps=150)
    together = relax(ani, z, x, settings)
    for i in range(len(mols)):
        alone = relax(ani, z[i : i + 1], x[i : i + 1], settings)
        assert alone.steps[0] == together.steps[i] and alone.converged[0] == together.converged[i]
        assert alone.relaxation_energy_kcal_mol[0] == pytest.approx(together.relaxation_energy_kcal_mol[i], abs=1e-6)
        np.testing.assert_allclose(alone.positions_ang[0], together.positions_ang[i], atol=1e-7)


def test_unsupported_element_is_a_failure_row_and_leaves_the_others_alone(ani):
    z, x = batch("bromomethane", "ethanol")
    res = relax(ani, z, x, FireSettings(max_steps=100))
    assert res.status[0] == "unknown_element" and res.reason[0].startswith("step 0: ") and "35" in res.reason[0]
    assert np.isnan(res.relaxation_energy_kcal_mol[0]) and np.isnan(res.positions_ang[0]).all()
    assert res.steps[0] == 0 and not res.converged[0]
    alone = relax(ani, z[1:], x[1:], FireSettings(max_steps=100))
    assert res.status[1] == "ok"
    assert res.relaxation_energy_kcal_mol[1] == pytest.approx(alone.relaxation_energy_kcal_mol[0], abs=1e-9)


def test_rigid_motion_changes_nothing_but_the_frame(ani):
    from scipy.spatial.transform import Rotation

    z, x = _stretched_ethanol(0.3)
    rot = Rotation.from_euler("zyx", [40, -25, 70], degrees=True).as_matrix()
    shift = np.array([3.0, -7.0, 11.0])
    moved = x @ rot.T + shift
    settings = FireSettings(max_steps=300)
    a = relax(ani, z[None], x[None], settings)
    b = relax(ani, z[None], moved[None], settings)
    assert a.steps[0] == b.steps[0]
    assert b.relaxation_energy_kcal_mol[0] == pytest.approx(a.relaxation_energy_kcal_mol[0], abs=1e-5)
    np.testing.assert_allclose(b.positions_ang[0], a.positions_ang[0] @ rot.T + shift, atol=1e-5)
