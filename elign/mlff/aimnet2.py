"""AIMNet2 (wB97M-D3 ensemble) as a TorchScript file: needs only torch.

Model file: ``model_path`` option, else the environment variable ``ELIGN_AIMNET2_MODEL``. The published
file is ``models/aimnet2_wb97m-d3_ens.jpt`` of the isayevlab/AIMNet2 repository (MIT; in this project a
copy lies in ``../shared/mlff/aimnet2/``).

* Inputs (the model's own): ``coord`` (B, N, 3) Å float32, ``numbers`` (B, N) long with 0 = padding,
  ``charge`` (B,) float. Outputs: ``energy`` (B,) eV (float64), ``forces`` (B, N, 3) eV/Å (the model's
  own autograd, -dE/dx), ``charges``. The network runs in float32 whatever the input dtype, so this
  backend accepts ``dtype='float32'`` only.
* Elements: H B C N O F Si P S Cl As Se Br I (override with ``elements`` for another AIMNet2 file);
  unknown elements get status ``unknown_element``.
* Closed-shell: molecules with an odd electron count (sum(Z) - charge) get status ``odd_electrons``
  unless ``reject_odd_electrons=False``.
* Reference energies: the per-element ``atomic_shift`` table of each ensemble member (eV), averaged over
  the members; a file without that table falls back to isolated atoms computed once by the model.
* TorchScript's profiling executor re-specialises the graph for every new input shape, which costs
  seconds per call when molecule sizes vary; it is switched off around the call (``jit_optimize=False``).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from elign.mlff.base import MissingWeightsError, MLFFBackend
from elign.mlff.registry import register_backend

AIMNET2_ELEMENTS = (1, 5, 6, 7, 8, 9, 14, 15, 16, 17, 33, 34, 35, 53)
AIMNET2_ENV = "ELIGN_AIMNET2_MODEL"
AIMNET2_FILE = "aimnet2_wb97m-d3_ens.jpt"


def resolve_aimnet2_path(model_path: str | os.PathLike | None) -> Path:
    """model_path, else $ELIGN_AIMNET2_MODEL; a clear error when neither names an existing file."""
    chosen = model_path or os.environ.get(AIMNET2_ENV)
    if not chosen:
        raise MissingWeightsError(
            f"aimnet2 needs its TorchScript model file: pass model_path=... or set {AIMNET2_ENV}. The file is "
            f"models/{AIMNET2_FILE} of the isayevlab/AIMNet2 GitHub repository (this project keeps a copy in "
            f"../shared/mlff/aimnet2/{AIMNET2_FILE})"
        )
    path = Path(chosen).expanduser()
    if not path.is_file():
        raise MissingWeightsError(
            f"aimnet2 model file not found: {path} (download models/{AIMNET2_FILE} from "
            f"the isayevlab/AIMNet2 repository, or fix model_path / {AIMNET2_ENV})"
        )
    return path


@register_backend("aimnet2")
class AIMNet2Backend(MLFFBackend):
    """AIMNet2 TorchScript ensemble; options: model_path, elements, jit_optimize, device, dtype ('float32'),
    batch_size, reject_odd_electrons (default True)."""

    name = "aimnet2"
    supports_charge = True
    default_reject_odd_electrons = True

    def __init__(
        self, model_path: str | os.PathLike | None = None, elements=None, jit_optimize: bool = False, **options
    ) -> None:
        super().__init__(**options)
        if self.dtype != torch.float32:
            raise ValueError("aimnet2: the TorchScript model computes in float32; use dtype='float32'")
        self.model_path = resolve_aimnet2_path(model_path)
        with warnings.catch_warnings():  # torch >= 2.10 deprecates TorchScript; the published model is one
            warnings.simplefilter("ignore", DeprecationWarning)
            self.model = torch.jit.load(str(self.model_path), map_location=self.device).eval()
        self._elements = frozenset(int(z) for z in (elements or AIMNET2_ELEMENTS))
        self.jit_optimize = bool(jit_optimize)

    @property
    def elements(self) -> frozenset[int]:
        return self._elements

    def reference_energies_ev(self) -> dict[int, float]:
        """Ensemble mean of the members' atomic_shift tables (eV); isolated atoms if the file has none."""
        try:
            members = list(self.model.models.children())
            tables = [m.module.outputs.atomic_shift.shifts.weight.detach().double().reshape(-1) for m in members]
        except (AttributeError, RuntimeError):
            return self.isolated_atom_energies_ev(sorted(self._elements))
        mean = torch.stack(tables).mean(dim=0).cpu()
        return {z: float(mean[z]) for z in sorted(self._elements) if z < mean.numel()}

    def _compute(self, atomic_numbers, positions_ang, charge):
        """(B, N) Z with 0 = padding, (B, N, 3) Å, (B,) charge -> energy (B,) eV, forces (B, N, 3) eV/Å."""
        data = {
            "coord": positions_ang.detach().to(torch.float32),
            "numbers": atomic_numbers.to(torch.long),
            "charge": charge.to(torch.float32),
        }
        with torch.jit.optimized_execution(self.jit_optimize):
            out = self.model(data)
        return out["energy"].detach(), out["forces"].detach()

    def describe(self) -> dict:
        return {**super().describe(), "model_path": str(self.model_path)}
