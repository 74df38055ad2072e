"""ANI-2x / ANI-1x / ANI-1ccx through torchani 2.9 (``pip install torchani==2.9.0``).

* Elements: ANI-2x H C N O F S Cl; ANI-1x and ANI-1ccx H C N O. Others get status ``unknown_element``.
* Units: torchani returns Hartree; converted with :data:`elign.constants.HARTREE_TO_EV` (CODATA 2018).
  Forces are -dE/dx by autograd on the positions, eV/Å.
* Reference energies: the model's own self-atomic energies (``model.energy_shifter.self_energies``, the
  linear-fit SAEs stored in the state dict), converted to eV.
* Weights: torchani looks for ``$TORCHANI_DATA_DIR/StateDicts/{ani2x,ani1x,ani1ccx}_state_dict.pt``
  (default ``~/.local/share/Torchani``) and downloads them when missing and online. Offline, point
  ``TORCHANI_DATA_DIR`` at a copy (in this project: ``../shared/mlff/torchani``), or pass ``data_dir``.
  ``allow_download=False`` never touches the network and fails with a message saying where to put them.
* ``model_index=None`` is the full 8-member ensemble (mean energy); ``model_index=k`` one member.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from elign.constants import HARTREE_TO_EV
from elign.mlff.base import MissingWeightsError, MLFFBackend
from elign.mlff.registry import register_backend, require

# name -> (torchani constructor, state-dict file, elements)
ANI_MODELS = {
    "ani2x": ("ANI2x", "ani2x_state_dict.pt", (1, 6, 7, 8, 9, 16, 17)),
    "ani1x": ("ANI1x", "ani1x_state_dict.pt", (1, 6, 7, 8)),
    "ani1ccx": ("ANI1ccx", "ani1ccx_state_dict.pt", (1, 6, 7, 8)),
}
TORCHANI_PIP = "torchani==2.9.0"


def torchani_weights_path(model: str, data_dir: str | os.PathLike | None = None) -> Path:
    """Where torchani looks for ``model``'s state dict (without creating folders as torchani's helpers do)."""
    root = data_dir or os.environ.get("TORCHANI_DATA_DIR") or Path.home() / ".local" / "share" / "Torchani"
    return Path(root) / "StateDicts" / ANI_MODELS[model][1]


def _missing_weights_message(model: str, path: Path) -> str:
    return (
        f"{model} weights not found at {path}. Put {path.name} there, or set TORCHANI_DATA_DIR (or the "
        f"backend option data_dir) to a folder holding StateDicts/{path.name} (this project keeps a copy in "
        f"../shared/mlff/torchani). With internet access torchani downloads it by itself."
    )


class ANIBackend(MLFFBackend):
    """torchani ANI model; options: model ('ani2x'/'ani1x'/'ani1ccx'), model_index, data_dir,
    allow_download, device, dtype, batch_size, reject_odd_electrons."""

    def __init__(
        self,
        model: str = "ani2x",
        model_index: int | None = None,
        data_dir: str | os.PathLike | None = None,
        allow_download: bool = True,
        **options,
    ) -> None:
        super().__init__(**options)
        model = model.lower()
        if model not in ANI_MODELS:
            raise ValueError(f"unknown ANI model {model!r}; choose one of {sorted(ANI_MODELS)}")
        self.name = model if model_index is None else f"{model}[{model_index}]"
        self.model_name = model
        self.model_index = model_index
        self.model = self._load(model, model_index, data_dir, allow_download)
        self._elements = frozenset(int(z) for z in self.model.atomic_numbers.tolist())
        self.cutoff_ang = float(self.model.cutoff)

    def _load(self, model: str, model_index: int | None, data_dir, allow_download: bool):
        os.environ.setdefault("TORCHANI_NO_WARN_EXTENSIONS", "1")
        torchani = require("torchani", TORCHANI_PIP, f"MLFF backend {model!r}")
        path = torchani_weights_path(model, data_dir)
        if not path.is_file() and not allow_download:
            raise MissingWeightsError(_missing_weights_message(model, path))
        constructor = getattr(torchani.models, ANI_MODELS[model][0])
        saved = os.environ.get("TORCHANI_DATA_DIR")
        if data_dir is not None:
            os.environ["TORCHANI_DATA_DIR"] = str(data_dir)
        try:
            net = constructor(model_index=model_index, periodic_table_index=True)
        except Exception as exc:  # torchani raises URLError / ValueError / OSError when it cannot fetch
            if path.is_file():
                raise
            raise MissingWeightsError(_missing_weights_message(model, path) + f" (download failed: {exc})") from exc
        finally:
            if data_dir is not None:
                _restore_env("TORCHANI_DATA_DIR", saved)
        return net.to(device=self.device, dtype=self.dtype).eval()

    @property
    def elements(self) -> frozenset[int]:
        return self._elements

    def reference_energies_ev(self) -> dict[int, float]:
        """The model's self-atomic energies (energy_shifter), Hartree -> eV."""
        sae_ha = self.model.energy_shifter.self_energies.detach().double().cpu().tolist()
        return {int(z): sae * HARTREE_TO_EV for z, sae in zip(self.model.atomic_numbers.tolist(), sae_ha)}

    def _compute(self, atomic_numbers, positions_ang, charge):
        """(B, N) Z with 0 = padding, (B, N, 3) Å -> energy (B,) eV, forces (B, N, 3) eV/Å.

        All real atoms of the batch go through torchani as one flat system, with a neighbour list that only
        pairs atoms of the same molecule (torchani's ``compute_from_external_neighbors``): no padded atoms in
        the AEVs or the networks, which is ~20% faster than torchani's padded batch on QM9-sized molecules.
        """
        mask = atomic_numbers > 0
        with torch.enable_grad():
            coords = positions_ang[mask].detach().clone().unsqueeze(0).requires_grad_(True)
            energy_ha = self._energy_ha(atomic_numbers, positions_ang, coords)
            (grad_ha,) = torch.autograd.grad(energy_ha.sum(), coords)
        forces = torch.zeros_like(positions_ang)
        forces[mask] = -grad_ha[0] * HARTREE_TO_EV
        return energy_ha.detach() * HARTREE_TO_EV, forces

    def _compute_energy(self, atomic_numbers, positions_ang, charge):
        """(B, N) Z, (B, N, 3) Å -> energy (B,) eV: :meth:`_compute`'s forward pass alone (same values)."""
        with torch.no_grad():
            coords = positions_ang[atomic_numbers > 0].unsqueeze(0)
            return self._energy_ha(atomic_numbers, positions_ang, coords) * HARTREE_TO_EV

    def _energy_ha(self, atomic_numbers, positions_ang, coords):
        """(B,) Hartree from the flat real-atom coordinates ``coords`` (1, A, 3) of the padded batch."""
        mask = atomic_numbers > 0
        counts = mask.sum(dim=1)
        node_of = torch.full(mask.shape, -1, dtype=torch.long, device=self.device)
        node_of[mask] = torch.arange(int(counts.sum()), device=self.device)
        with torch.no_grad():  # candidate pairs; torchani re-screens them exactly against its cutoff
            distance = torch.cdist(positions_ang, positions_ang, compute_mode="donot_use_mm_for_euclid_dist")
        upper = torch.ones(mask.shape[1], mask.shape[1], dtype=torch.bool, device=self.device).triu(1)
        pairs = upper & mask[:, :, None] & mask[:, None, :] & (distance <= self.cutoff_ang + 0.1)
        mol, i, j = pairs.nonzero(as_tuple=True)
        neighbor_idxs = torch.stack([node_of[mol, i], node_of[mol, j]])
        shifts = torch.zeros((neighbor_idxs.shape[1], 3), dtype=positions_ang.dtype, device=self.device)
        molecule_of_atom = torch.repeat_interleave(torch.arange(mask.shape[0], device=self.device), counts)
        atomic_ha = self.model.compute_from_external_neighbors(
            atomic_numbers[mask].unsqueeze(0), coords, neighbor_idxs, shifts, atomic=True
        ).energies[0]
        return atomic_ha.new_zeros(mask.shape[0]).index_add(0, molecule_of_atom, atomic_ha)

    def ase_calculator(self):
        """torchani's own ASE calculator for the same model (one molecule at a time; for comparisons)."""
        return self.model.ase()

    def describe(self) -> dict:
        return {**super().describe(), "model": self.model_name, "model_index": self.model_index}


def _restore_env(key: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = value


@register_backend("ani2x")
def _ani2x(**options) -> ANIBackend:
    return ANIBackend(model="ani2x", **options)


@register_backend("ani1x")
def _ani1x(**options) -> ANIBackend:
    return ANIBackend(model="ani1x", **options)


@register_backend("ani1ccx")
def _ani1ccx(**options) -> ANIBackend:
    return ANIBackend(model="ani1ccx", **options)
