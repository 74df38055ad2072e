"""UMA (fairchem-core), OMol25 task: the separate-environment backend.

fairchem-core needs e3nn >= 0.5 while mace-torch pins e3nn 0.4.4, so the two cannot share an environment:
UMA runs from its own environment (``envs/uma.yaml``, or ``pip install fairchem-core`` into an environment
without mace-torch). In the main environment, building this backend raises MissingDependencyError saying so.

Weights: the UMA checkpoints are gated on Hugging Face (facebook/UMA: accept the licence, then
``huggingface-cli login`` or ``HF_TOKEN``). Either name a released model (``model="uma-s-1p1"``; fairchem
downloads it with your token) or pass ``model_path`` to a checkpoint file you downloaded (``uma-s-1p1.pt``),
which needs no network.

* Task ``omol`` (molecules; charge and spin multiplicity from the inputs: multiplicity 1 for an even
  electron count, 2 for an odd one, so radicals are scored as doublets; ``reject_odd_electrons=True``
  flags them instead).
* Reference energies: the predict unit's ``atom_refs`` for the task (isolated-atom DFT energies, eV) where
  it has them, else isolated atoms by the model.
* Energy eV, forces eV/Å (the model's own conservative forces).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from elign.mlff.base import MissingWeightsError, MLFFBackend
from elign.mlff.registry import register_backend, require

FAIRCHEM_PIP = "fairchem-core"
UMA_ENV_HINT = (
    "UMA needs e3nn>=0.5, which conflicts with mace-torch (e3nn 0.4.4) in this environment: use the "
    "separate environment envs/uma.yaml (conda env create -f envs/uma.yaml), or pip install "
    "fairchem-core into an environment without mace-torch"
)
UMA_ELEMENTS = tuple(range(1, 84))  # OMol25 covers H to Bi


@register_backend("uma")
class UMABackend(MLFFBackend):
    """fairchem UMA; options: model (released name, e.g. 'uma-s-1p1'), model_path (local checkpoint),
    task ('omol'), inference_settings, elements, device, dtype, batch_size, reject_odd_electrons."""

    name = "uma"
    supports_charge = True

    def __init__(
        self,
        model: str = "uma-s-1p1",
        model_path: str | os.PathLike | None = None,
        task: str = "omol",
        inference_settings: str = "default",
        elements=None,
        **options,
    ) -> None:
        super().__init__(**options)
        require("fairchem.core", FAIRCHEM_PIP, "MLFF backend 'uma'", extra=UMA_ENV_HINT)
        from fairchem.core.calculate import pretrained_mlip

        self.task = task
        self._elements = frozenset(int(z) for z in (elements or UMA_ELEMENTS))
        device = "cuda" if self.device.type == "cuda" else "cpu"
        if model_path is not None:
            path = Path(model_path).expanduser()
            if not path.is_file():
                raise MissingWeightsError(f"uma: checkpoint not found: {path}")
            self.source = str(path)
            self.predictor = pretrained_mlip.load_predict_unit(
                self.source, inference_settings=inference_settings, device=device
            )
        else:
            self.source = model
            try:
                self.predictor = pretrained_mlip.get_predict_unit(
                    model, inference_settings=inference_settings, device=device
                )
            except Exception as exc:  # gated download without token / offline
                raise MissingWeightsError(
                    f"uma: could not get {model!r} ({exc}). UMA weights are gated: accept the licence of "
                    "facebook/UMA on Hugging Face and log in (HF_TOKEN), or download the checkpoint and pass "
                    "model_path=..."
                ) from exc

    @property
    def elements(self) -> frozenset[int]:
        return self._elements

    def reference_energies_ev(self) -> dict[int, float]:
        refs = (getattr(self.predictor, "atom_refs", None) or {}).get(self.task)
        if refs is None:
            return self.isolated_atom_energies_ev(sorted(self._elements))
        out = {}
        for z in sorted(self._elements):
            value = refs.get(z) if hasattr(refs, "get") else refs[z]
            if isinstance(value, dict):  # omol: {charge: energy}
                value = value.get(0)
            if value is not None:
                out[z] = float(value)
        return out

    def _compute(self, atomic_numbers, positions_ang, charge):
        """(B, N) Z with 0 = padding, (B, N, 3) Å, (B,) charge -> energy (B,) eV, forces (B, N, 3) eV/Å."""
        from ase import Atoms
        from fairchem.core.datasets import data_list_collater
        from fairchem.core.datasets.atomic_data import AtomicData

        z_np = atomic_numbers.cpu().numpy()
        x_np = positions_ang.detach().double().cpu().numpy()
        items = []
        for z, x, q in zip(z_np, x_np, charge.cpu().tolist()):
            real = z > 0
            atoms = Atoms(numbers=z[real], positions=x[real])
            electrons = int(z[real].sum()) - int(q)
            atoms.info.update(charge=int(q), spin=1 + electrons % 2)
            items.append(AtomicData.from_ase(atoms, task_name=self.task, r_edges=False, r_data_keys=["spin", "charge"]))
        batch = data_list_collater(items, otf_graph=True)
        pred = self.predictor.predict(batch)
        energy = torch.as_tensor(pred["energy"]).detach().reshape(-1)
        forces_flat = torch.as_tensor(pred["forces"]).detach().to(positions_ang.device, positions_ang.dtype)
        forces = torch.zeros_like(positions_ang)
        forces[atomic_numbers > 0] = forces_flat
        return energy, forces

    def describe(self) -> dict:
        return {**super().describe(), "model": self.source, "task": self.task}
