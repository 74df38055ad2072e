"""Registry, UMA's missing-package message, and the protocol's own logic on a toy backend."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
import torch

from elign.mlff import (
    MissingDependencyError,
    MLFFBackend,
    available_backends,
    get_backend,
    pad_molecules,
    register_backend,
)


class PairBackend(MLFFBackend):
    """E = sum over pairs of (r - 1)^2 eV; raises on any molecule holding Z=9, NaN on any holding Z=7."""

    name = "toy-pair"

    @property
    def elements(self):
        return frozenset({1, 6, 7, 8, 9})

    def _compute(self, atomic_numbers, positions_ang, charge):
        if (atomic_numbers == 9).any():
            raise RuntimeError("toy failure on fluorine")
        with torch.enable_grad():
            x = positions_ang.detach().clone().requires_grad_(True)
            mask = (atomic_numbers > 0).to(x.dtype)
            pair = mask[:, :, None] * mask[:, None, :] * (1 - torch.eye(x.shape[1], dtype=x.dtype))
            r = (x[:, :, None] - x[:, None, :] + torch.eye(x.shape[1], dtype=x.dtype)[..., None]).norm(dim=-1)
            energy = 0.5 * (pair * (r - 1) ** 2).sum(dim=(1, 2)) + atomic_numbers.to(x.dtype).sum(1)
            (grad,) = torch.autograd.grad(energy.sum(), x)
        energy = torch.where((atomic_numbers == 7).any(dim=1), torch.nan, energy.detach())
        return energy, -grad


def test_unknown_backend_name_lists_the_known_ones():
    with pytest.raises(KeyError, match="unknown MLFF backend 'ani3x'.*aimnet2.*ani2x.*mace-off.*uma"):
        get_backend("ani3x")
    assert {"ani2x", "ani1x", "ani1ccx", "aimnet2", "mace-off", "uma"} <= set(available_backends())


def test_register_backend_and_duplicate_name():
    register_backend("toy-pair")(PairBackend)
    assert isinstance(get_backend("TOY-PAIR", dtype="float64", batch_size=2), PairBackend)
    with pytest.raises(ValueError, match="already registered"):
        register_backend("ani2x")(PairBackend)


@pytest.mark.skipif(importlib.util.find_spec("fairchem") is not None, reason="fairchem-core is installed here")
def test_uma_without_fairchem_says_which_environment():
    with pytest.raises(MissingDependencyError) as info:
        get_backend("uma", model_path="uma-s-1p1.pt")
    message = str(info.value)
    assert "pip install fairchem-core" in message and "envs/uma.yaml" in message and "e3nn" in message


def test_failures_are_isolated_per_molecule_and_chunks_agree():
    z, x = pad_molecules(
        [np.array([6, 1]), np.array([9, 1]), np.array([7, 1]), np.array([8, 1, 1])],
        [
            np.zeros((2, 3)) + [[0, 0, 0], [0, 0, 1.3]],
            np.array([[0, 0, 0], [0, 0, 0.9]]),
            np.array([[0, 0, 0], [0, 0, 1.0]]),
            np.array([[0, 0, 0], [0, 0.8, 0.5], [0, -0.8, 0.5]]),
        ],
    )
    toy = PairBackend(dtype="float64", batch_size=3)
    result = toy.evaluate(z, x)
    assert list(result.status) == ["ok", "backend_error", "non_finite", "ok"]
    assert "toy failure on fluorine" in result.reason[1]
    assert result.energy_ev[0] == pytest.approx(7 + 0.3**2)
    np.testing.assert_allclose(result.forces_ev_per_ang[0, :2], [[0, 0, 0.6], [0, 0, -0.6]], atol=1e-12)
    one_by_one = PairBackend(dtype="float64", batch_size=1).evaluate(z, x)
    np.testing.assert_allclose(one_by_one.energy_ev, result.energy_ev, equal_nan=True)


def test_energies_fall_back_to_compute_and_keep_failures_per_molecule():
    """A backend without its own _compute_energy: energies() runs _compute and keeps its energies, with the
    same isolated failures (a raising chunk retried one by one, a NaN energy non-finite) and forces NaN."""
    z, x = pad_molecules(
        [np.array([6, 1]), np.array([9, 1]), np.array([7, 1]), np.array([8, 1, 1])],
        [
            np.array([[0, 0, 0], [0, 0, 1.3]]),
            np.array([[0, 0, 0], [0, 0, 0.9]]),
            np.array([[0, 0, 0], [0, 0, 1.0]]),
            np.array([[0, 0, 0], [0, 0.8, 0.5], [0, -0.8, 0.5]]),
        ],
    )
    toy = PairBackend(dtype="float64", batch_size=3)
    full, alone = toy.evaluate(z, x), toy.energies(z, x)
    assert list(alone.status) == ["ok", "backend_error", "non_finite", "ok"]
    assert alone.energy_ev[0] == pytest.approx(7 + 0.3**2)
    np.testing.assert_array_equal(alone.energy_ev, full.energy_ev)
    assert np.isnan(alone.forces_ev_per_ang).all()


def test_isolated_atom_reference_fallback_is_cached():
    toy = PairBackend(dtype="float64")
    assert toy.reference_energies_ev() == {1: 1.0, 6: 6.0, 8: 8.0}  # Z=7 NaN, Z=9 raises: absent, not made up
    result = toy.evaluate(*pad_molecules([np.array([6, 1])], [np.array([[0, 0, 0], [0, 0, 2.0]])]))
    assert result.formation_energy_per_atom_ev[0] == pytest.approx(1.0 / 2)


def test_bad_shapes_and_options():
    toy = PairBackend()
    with pytest.raises(ValueError, match=r"\(B, N\)"):
        toy.evaluate(np.zeros((2, 3), dtype=int), np.zeros((2, 4, 3)))
    with pytest.raises(ValueError, match="float32"):
        PairBackend(dtype="float16")


def test_missing_torchani_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchani", None)  # what an environment without torchani looks like
    with pytest.raises(MissingDependencyError, match=r"pip install torchani==2\.9\.0"):
        get_backend("ani2x")
