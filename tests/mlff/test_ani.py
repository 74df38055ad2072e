"""ANI backends: same numbers as torchani called directly, eV units, -grad E forces, padding, status rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mlff_molecules import batch, molecule

from elign.mlff import HARTREE_TO_EV, MissingWeightsError, get_backend


def _torchani_direct(model, name: str) -> tuple[float, np.ndarray]:
    """One molecule through torchani by hand: Hartree -> eV with the CODATA 2018 constant, F = -dE/dx."""
    z, x = molecule(name)
    species = torch.tensor(z).unsqueeze(0)
    coords = torch.tensor(x, dtype=torch.float64).unsqueeze(0).requires_grad_(True)
    energy_ha = model((species, coords)).energies
    (grad,) = torch.autograd.grad(energy_ha.sum(), coords)
    return float(energy_ha.detach()) * 27.211386245988, (-grad[0] * 27.211386245988).numpy()


def test_energies_and_forces_equal_torchani_direct(ani2x64, torchani_ani2x64):
    names = ("methane", "water", "ethanol", "chloromethane")
    result = ani2x64.evaluate(*batch(*names))
    assert list(result.status) == ["ok"] * 4
    for i, name in enumerate(names):
        energy_ev, forces = _torchani_direct(torchani_ani2x64, name)
        n = len(forces)
        assert result.energy_ev[i] == pytest.approx(energy_ev, abs=1e-9)
        np.testing.assert_allclose(result.forces_ev_per_ang[i, :n], forces, atol=1e-9)
        assert np.all(result.forces_ev_per_ang[i, n:] == 0.0)


def test_forces_are_minus_gradient_by_central_differences(ani2x64):
    z, x = molecule("ethanol")
    x = x + np.random.default_rng(0).normal(scale=0.05, size=x.shape)  # off equilibrium: sizeable forces
    step = 1e-4
    displaced = np.repeat(x[None], 2 * x.size, axis=0)
    for k in range(x.size):
        displaced[2 * k].reshape(-1)[k] += step
        displaced[2 * k + 1].reshape(-1)[k] -= step
    forces = ani2x64.evaluate(z[None], x[None]).forces_ev_per_ang[0]
    energies = ani2x64.evaluate(np.repeat(z[None], len(displaced), axis=0), displaced).energy_ev
    finite_diff = -(energies[0::2] - energies[1::2]) / (2 * step)
    assert np.abs(forces).max() > 0.5
    np.testing.assert_allclose(forces.reshape(-1), finite_diff, atol=2e-6)


def test_units_are_ev(ani2x64, torchani_ani2x64):
    # wB97X/6-31G(d) total energies: CH4 about -40.50 Ha, H2O about -76.38 Ha. In eV: x 27.2114.
    result = ani2x64.evaluate(*batch("methane", "water"))
    assert result.energy_ev[0] / HARTREE_TO_EV == pytest.approx(-40.50, abs=0.05)
    assert result.energy_ev[1] / HARTREE_TO_EV == pytest.approx(-76.38, abs=0.05)
    assert HARTREE_TO_EV == 27.211386245988
    species = torch.tensor(molecule("methane")[0][None])
    coords = torch.tensor(molecule("methane")[1][None])
    energy_ha = float(torchani_ani2x64((species, coords)).energies)
    assert result.energy_ev[0] == pytest.approx(energy_ha * 27.211386245988, abs=1e-9)


def test_padding_invariance(ani2x64):
    alone = ani2x64.evaluate(*batch("water"))
    z, x = batch("ethanol", "water", pad_to=12)
    # Padding also in the middle of a row: atoms O, pad, H, pad, H.
    z_mid = np.zeros((1, 12), dtype=np.int64)
    x_mid = np.full((1, 12, 3), 123.0)
    z_mid[0, [0, 2, 4]] = molecule("water")[0]
    x_mid[0, [0, 2, 4]] = molecule("water")[1]
    together = ani2x64.evaluate(np.concatenate([z, z_mid]), np.concatenate([x, x_mid]))
    for row, slots in ((1, [0, 1, 2]), (2, [0, 2, 4])):
        assert together.energy_ev[row] == pytest.approx(alone.energy_ev[0], abs=1e-9)
        np.testing.assert_allclose(together.forces_ev_per_ang[row, slots], alone.forces_ev_per_ang[0], atol=1e-9)
        pad = np.setdiff1d(np.arange(12), slots)
        assert np.all(together.forces_ev_per_ang[row, pad] == 0.0)
    assert together.num_atoms.tolist() == [9, 3, 3]


def test_unknown_element_gets_status_row_and_others_are_scored(ani2x64):
    result = ani2x64.evaluate(*batch("methane", "bromomethane", "water"))
    assert list(result.status) == ["ok", "unknown_element", "ok"]
    assert "35" in result.reason[1] and result.reason[0] == "" and result.reason[2] == ""
    assert np.isnan(result.energy_ev[1]) and np.isnan(result.formation_energy_per_atom_ev[1])
    assert np.isnan(result.forces_ev_per_ang[1]).all()
    alone = ani2x64.evaluate(*batch("methane", "water"))
    np.testing.assert_allclose(result.energy_ev[[0, 2]], alone.energy_ev, atol=1e-9)
    assert result.ok.tolist() == [True, False, True]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_energies_without_forces_equal_evaluate_bit_for_bit(dtype):
    """backend.energies (FED-GRPO's potential) skips the backward pass: the same energies to the bit, the same
    statuses and formation energies, forces NaN (not computed) rather than zeros that could be mistaken for
    a minimum."""
    ani = get_backend("ani2x", dtype=dtype)
    rng = np.random.default_rng(3)
    z, x = batch("methane", "bromomethane", "ethanol", "chloromethane", "water")
    x = x + rng.normal(0.0, 0.05, x.shape) * (z > 0)[..., None]
    full, alone = ani.evaluate(z, x), ani.energies(z, x)
    assert list(alone.status) == list(full.status) == ["ok", "unknown_element", "ok", "ok", "ok"]
    np.testing.assert_array_equal(alone.energy_ev, full.energy_ev)
    np.testing.assert_array_equal(alone.formation_energy_per_atom_ev, full.formation_energy_per_atom_ev)
    assert list(alone.reason) == list(full.reason)
    assert np.isnan(alone.forces_ev_per_ang).all()
    assert np.isfinite(full.forces_ev_per_ang[full.ok]).all()


def test_ani1x_knows_only_hcno():
    ani1x = get_backend("ani1x", dtype="float64")
    result = ani1x.evaluate(*batch("chloromethane", "ethanol"))
    assert list(result.status) == ["unknown_element", "ok"]
    assert ani1x.elements == frozenset({1, 6, 7, 8})


def test_formation_energy_per_atom_uses_torchani_self_energies(ani2x64, torchani_ani2x64):
    sae_ha = dict(zip(torchani_ani2x64.atomic_numbers.tolist(), torchani_ani2x64.energy_shifter.self_energies.tolist()))
    result = ani2x64.evaluate(*batch("ethanol", "chloromethane"))
    for i, name in enumerate(("ethanol", "chloromethane")):
        z, _ = molecule(name)
        reference_ev = sum(sae_ha[int(a)] for a in z) * HARTREE_TO_EV
        assert result.reference_energy_ev[i] == pytest.approx(reference_ev, abs=1e-9)
        expected = (result.energy_ev[i] - reference_ev) / len(z)
        assert result.formation_energy_per_atom_ev[i] == pytest.approx(expected, abs=1e-12)
        # ANI's self energies are a linear fit, not isolated-atom DFT energies: what is left is small, < 0.
        assert -1.0 < result.formation_energy_per_atom_ev[i] < 0.0


def test_single_member_and_float32(torchani_ani2x64):
    import torchani

    member = get_backend("ani2x", model_index=3, dtype="float64")
    direct = torchani.models.ANI2x(model_index=3, periodic_table_index=True).double()
    z, x = molecule("ethanol")
    expected_ha = float(direct((torch.tensor(z[None]), torch.tensor(x[None]))).energies)
    assert member.evaluate(z[None], x[None]).energy_ev[0] == pytest.approx(expected_ha * HARTREE_TO_EV, abs=1e-9)
    ensemble_ha = float(torchani_ani2x64((torch.tensor(z[None]), torch.tensor(x[None]))).energies)
    assert abs(expected_ha - ensemble_ha) > 1e-6  # really one member, not the ensemble mean
    single = get_backend("ani2x", dtype="float32").evaluate(z[None], x[None])
    assert single.energy_ev[0] == pytest.approx(ensemble_ha * HARTREE_TO_EV, abs=5e-3)


def test_empty_and_invalid_inputs(ani2x64):
    z, x = batch("water", "methane")
    z[1] = 0
    x2 = x.copy()
    z2 = z.copy()
    z2[1, :3], x2[1, 0, 0] = molecule("water")[0], np.nan
    result = ani2x64.evaluate(np.concatenate([z, z2[1:]]), np.concatenate([x, x2[1:]]))
    assert list(result.status) == ["ok", "empty", "invalid_input"]
    assert np.isnan(result.energy_ev[1:]).all()


def test_missing_weights_message(tmp_path):
    with pytest.raises(MissingWeightsError, match="TORCHANI_DATA_DIR") as info:
        get_backend("ani2x", data_dir=tmp_path, allow_download=False)
    assert str(tmp_path / "StateDicts" / "ani2x_state_dict.pt") in str(info.value)
