"""MACE backend: a tiny randomly initialised MACE built with mace-torch's own constructors, saved with
torch.save, loaded through the same mace_off(model=path) code path as a real MACE-OFF23 file, and checked
against mace-torch's own ASE calculator (its own neighbour list and data pipeline)."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch
from mlff_molecules import batch, molecule

from elign.mlff import MissingDependencyError, MissingWeightsError, get_backend

# mace-torch and e3nn 0.4.4 use torch.jit.script/save/load (deprecated in torch 2.13) and warn about
# TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD, which `import mace` sets.
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Environment variable TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"),
    pytest.mark.filterwarnings("ignore:The TorchScript type system"),
]

E0_EV = {1: -13.6, 6: -1029.0, 7: -1484.0, 8: -2041.0}


@pytest.fixture(scope="module")
def tiny_mace_path(tmp_path_factory):
    from elign.mlff.mace import import_mace_off

    import_mace_off()  # defuses the e3nn 0.4.4 / torch >= 2.6 import trap before e3nn is imported here
    from e3nn import o3
    from mace import modules

    torch.manual_seed(0)
    block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
    model = modules.ScaleShiftMACE(
        r_max=4.0,
        num_bessel=4,
        num_polynomial_cutoff=5,
        max_ell=1,
        interaction_cls=block,
        interaction_cls_first=block,
        num_interactions=2,
        num_elements=4,
        hidden_irreps=o3.Irreps("4x0e + 4x1o"),
        MLP_irreps=o3.Irreps("4x0e"),
        gate=torch.nn.functional.silu,
        atomic_energies=np.array(list(E0_EV.values())),
        avg_num_neighbors=4.0,
        atomic_numbers=list(E0_EV),
        correlation=2,
        atomic_inter_scale=0.5,
        atomic_inter_shift=0.1,
    )
    path = tmp_path_factory.mktemp("mace") / "tiny.model"
    torch.save(model, path)
    return path


@pytest.fixture(scope="module")
def mace64(tiny_mace_path):
    return get_backend("mace-off", model_path=tiny_mace_path, dtype="float64")


def test_tiny_model_scores_like_maces_own_calculator(mace64, tiny_mace_path):
    import ase
    from mace.calculators import MACECalculator

    reference_model = torch.load(tiny_mace_path, weights_only=False)
    calculator = MACECalculator(models=[reference_model], device="cpu", default_dtype="float64")
    names = ("ethanol", "water", "methane")
    result = mace64.evaluate(*batch(*names, pad_to=11))
    assert list(result.status) == ["ok"] * 3
    for i, name in enumerate(names):
        z, x = molecule(name)
        atoms = ase.Atoms(numbers=z, positions=x)
        atoms.calc = calculator
        assert result.energy_ev[i] == pytest.approx(atoms.get_potential_energy(), abs=1e-8)
        np.testing.assert_allclose(result.forces_ev_per_ang[i, : len(z)], atoms.get_forces(), atol=1e-8)
        assert np.all(result.forces_ev_per_ang[i, len(z) :] == 0.0)


def test_reference_energies_are_the_models_e0s(mace64):
    assert mace64.reference_energies_ev() == pytest.approx(E0_EV)
    result = mace64.evaluate(*batch("ethanol"))
    z, _ = molecule("ethanol")
    reference = sum(E0_EV[int(a)] for a in z)
    # E0s are stored in the model's float32 buffer: -13.6 there is -13.6 +- 1e-6.
    assert result.formation_energy_per_atom_ev[0] == pytest.approx((result.energy_ev[0] - reference) / 9, abs=1e-5)


def test_unknown_element_float32_and_no_unsafe_load_left_behind(tiny_mace_path, mace64, monkeypatch):
    result = mace64.evaluate(*batch("chloromethane", "water"))
    assert list(result.status) == ["unknown_element", "ok"]
    monkeypatch.delenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", raising=False)
    backend32 = get_backend("mace-off", model_path=tiny_mace_path, dtype="float32")
    assert "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" not in os.environ  # torch.load elsewhere stays weights_only
    single = backend32.evaluate(*batch("water"))
    assert single.energy_ev[0] == pytest.approx(result.energy_ev[1], abs=1e-3)


def test_missing_weights_and_missing_package(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(MissingWeightsError, match="MACE-OFF23_small.model"):
        get_backend("mace-off", model="small", allow_download=False)
    with pytest.raises(MissingWeightsError, match="not found"):
        get_backend("mace-off", model_path=tmp_path / "none.model")
    monkeypatch.setitem(sys.modules, "mace", None)  # what an environment without mace-torch looks like
    with pytest.raises(MissingDependencyError, match=r"pip install mace-torch==0\.3\.16"):
        get_backend("mace-off", model="small")
