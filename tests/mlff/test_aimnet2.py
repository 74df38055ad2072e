"""AIMNet2 TorchScript backend (offline copy in ../shared/mlff/aimnet2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mlff_molecules import AIMNET2_PATH, batch, molecule

from elign.mlff import MissingWeightsError, get_backend


def test_energies_finite_and_equal_to_the_model_called_directly(aimnet2):
    result = aimnet2.evaluate(*batch("methane", "water", "bromomethane"))
    assert list(result.status) == ["ok"] * 3
    assert np.isfinite(result.energy_ev).all()
    # wB97M-D3 total energy of water is about -76.4 Ha = -2079 eV: the output is in eV.
    assert result.energy_ev[1] == pytest.approx(-76.4 * 27.2114, abs=5.0)
    z, x = molecule("water")
    model = aimnet2.model  # the TorchScript module as loaded, called by hand
    with torch.jit.optimized_execution(False):
        out = model(
            {
                "coord": torch.tensor(x[None], dtype=torch.float32),
                "numbers": torch.tensor(z[None]),
                "charge": torch.zeros(1),
            }
        )
    assert result.energy_ev[1] == pytest.approx(float(out["energy"][0]), abs=1e-4)
    np.testing.assert_allclose(result.forces_ev_per_ang[1, :3], out["forces"][0].numpy(), atol=1e-5)


def test_forces_are_minus_gradient(aimnet2):
    z, x = molecule("water")
    x = x + np.random.default_rng(0).normal(scale=0.05, size=x.shape)
    step = 1e-2  # the model runs in float32: a larger step keeps round-off below the truncation error
    displaced = np.repeat(x[None], 2 * x.size, axis=0)
    for k in range(x.size):
        displaced[2 * k].reshape(-1)[k] += step
        displaced[2 * k + 1].reshape(-1)[k] -= step
    forces = aimnet2.evaluate(z[None], x[None]).forces_ev_per_ang[0]
    energies = aimnet2.evaluate(np.repeat(z[None], len(displaced), axis=0), displaced).energy_ev
    finite_diff = -(energies[0::2] - energies[1::2]) / (2 * step)
    assert np.abs(forces).max() > 0.3
    np.testing.assert_allclose(forces.reshape(-1), finite_diff, atol=1e-2)


def test_padding_invariance(aimnet2):
    alone = aimnet2.evaluate(*batch("water"))
    together = aimnet2.evaluate(*batch("ethanol", "water", pad_to=11))
    assert together.energy_ev[1] == pytest.approx(alone.energy_ev[0], abs=1e-4)
    np.testing.assert_allclose(together.forces_ev_per_ang[1, :3], alone.forces_ev_per_ang[0], atol=1e-4)


def test_unknown_element_and_odd_electrons_get_status_rows(aimnet2):
    result = aimnet2.evaluate(*batch("lithium_hydride", "methyl", "methane"))
    assert list(result.status) == ["unknown_element", "odd_electrons", "ok"]
    assert "Z=[3]" in result.reason[0] and "9 electrons" in result.reason[1]
    assert np.isnan(result.energy_ev[:2]).all() and np.isfinite(result.energy_ev[2])
    assert np.isnan(result.forces_ev_per_ang[:2]).all()
    # A charge makes the electron count even: the methyl cation is closed-shell and scored.
    cation = aimnet2.evaluate(*batch("methyl"), charge=[1])
    assert cation.status[0] == "ok" and np.isfinite(cation.energy_ev[0])


def test_formation_energy_from_the_models_atomic_shifts(aimnet2):
    tables = [
        m.module.outputs.atomic_shift.shifts.weight.detach().double()[:, 0] for m in aimnet2.model.models.children()
    ]
    shift_ev = torch.stack(tables).mean(0)
    result = aimnet2.evaluate(*batch("ethanol"))
    z, _ = molecule("ethanol")
    reference = float(shift_ev[torch.tensor(z)].sum())
    assert result.reference_energy_ev[0] == pytest.approx(reference, abs=1e-6)
    assert result.formation_energy_per_atom_ev[0] == pytest.approx((result.energy_ev[0] - reference) / 9, abs=1e-9)


def test_missing_model_file_and_float64_are_clear_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("ELIGN_AIMNET2_MODEL", raising=False)
    with pytest.raises(MissingWeightsError, match="ELIGN_AIMNET2_MODEL"):
        get_backend("aimnet2")
    with pytest.raises(MissingWeightsError, match="not found"):
        get_backend("aimnet2", model_path=tmp_path / "nope.jpt")
    with pytest.raises(ValueError, match="float32"):
        get_backend("aimnet2", model_path=AIMNET2_PATH, dtype="float64")
