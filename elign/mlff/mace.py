"""MACE-OFF23 (small / medium / large) and any local MACE model file, through mace-torch.

``pip install mace-torch==0.3.16`` (it pins e3nn 0.4.4, so it cannot share an environment with
fairchem-core / UMA). Options: ``model`` ("small", "medium", "large"; MACE-OFF23, Academic Software
Licence, downloaded by mace-torch into ``~/.cache/mace`` or ``$XDG_CACHE_HOME/mace``) or ``model_path``
(any MACE model file saved with ``torch.save(model)``, e.g. a MACE-OFF23 ``.model`` file you downloaded);
``head`` for multi-head models; ``allow_download`` (False: never touch the network).

Both go through mace-torch's own loader ``mace.calculators.foundations_models.mace_off(model=...,
return_raw_model=True)``. Then the batch is one disjoint graph: every pair of real atoms of the same
molecule closer than the model's ``r_max`` is an edge (no periodic images), as mace-torch's
``get_neighborhood`` builds for a non-periodic molecule. Energy eV, forces -dE/dx eV/Å by the model's own
autograd. Reference energies: the model's ``E0s`` (``atomic_energies_fn.atomic_energies``), eV.

Two import traps handled here: e3nn 0.4.4's import runs ``torch.load`` on a file holding a ``slice``,
which torch >= 2.6 refuses unless ``torch.serialization.add_safe_globals([slice])`` runs first; and
``import mace`` sets ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` for the whole process (every later
``torch.load`` would unpickle arbitrary code): this module restores it after the import and sets it only
around the model-file load.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch

from elign.mlff.base import MissingDependencyError, MissingWeightsError, MLFFBackend
from elign.mlff.registry import register_backend, require

MACE_PIP = "mace-torch==0.3.16"
MACE_OFF_NAMES = ("small", "medium", "large")
_NO_WEIGHTS_ONLY = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"


def import_mace_off():
    """mace-torch's ``mace_off`` loader, with the e3nn/torch>=2.6 import trap defused and the process-wide
    ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` that ``import mace`` sets put back as it was."""
    torch.serialization.add_safe_globals([slice])
    with _env(_NO_WEIGHTS_ONLY, os.environ.get(_NO_WEIGHTS_ONLY)):
        require(
            "mace",
            MACE_PIP,
            "MLFF backend 'mace-off'",
            extra="mace-torch pins e3nn 0.4.4: keep it out of the UMA (fairchem-core) environment",
        )
        try:
            from mace.calculators.foundations_models import mace_off
        except ImportError as exc:
            raise MissingDependencyError(f"mace-torch is installed but its loader failed to import: {exc}") from exc
    return mace_off


@contextlib.contextmanager
def _env(key: str, value: str | None):
    """Set (or unset, for None) an environment variable inside the block; restore it afterwards."""
    saved = os.environ.get(key)
    if value is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = saved


def mace_off_cache_path(name: str) -> Path:
    """Where mace-torch caches the MACE-OFF23 ``name`` model file."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mace"
    return cache / f"MACE-OFF23_{name}.model"


@register_backend("mace-off")
class MACEBackend(MLFFBackend):
    """MACE model; options: model ('small'/'medium'/'large'), model_path, head, allow_download, device,
    dtype, batch_size, reject_odd_electrons."""

    name = "mace-off"

    def __init__(
        self,
        model: str = "medium",
        model_path: str | os.PathLike | None = None,
        head: str | None = None,
        allow_download: bool = True,
        **options,
    ) -> None:
        super().__init__(**options)
        self.source = self._resolve_source(model, model_path, allow_download)
        self.model = self._load(self.source)
        self.r_max_ang = float(self.model.r_max)
        self.z_table = [int(z) for z in self.model.atomic_numbers.tolist()]
        heads = list(getattr(self.model, "heads", None) or ["Default"])
        if head is not None and head not in heads:
            raise ValueError(f"mace-off: head {head!r} not in the model's heads {heads}")
        self.head_index = heads.index(head) if head is not None else 0
        self._index_of_z = torch.full((119,), -1, dtype=torch.long, device=self.device)
        self._index_of_z[self.z_table] = torch.arange(len(self.z_table), device=self.device)

    @staticmethod
    def _resolve_source(model: str, model_path, allow_download: bool) -> str:
        if model_path is not None:
            path = Path(model_path).expanduser()
            if not path.is_file():
                raise MissingWeightsError(f"mace-off: model file not found: {path}")
            return str(path)
        if model not in MACE_OFF_NAMES:
            raise ValueError(f"mace-off: model must be one of {MACE_OFF_NAMES} (or pass model_path), got {model!r}")
        cached = mace_off_cache_path(model)
        if not cached.is_file() and not allow_download:
            raise MissingWeightsError(
                f"MACE-OFF23 {model} weights not found at {cached}. Download MACE-OFF23_{model}.model from the "
                "ACEsuit/mace-off GitHub repository (Academic Software Licence) and put it there, or pass "
                "model_path=...; with internet access mace-torch downloads it by itself."
            )
        return model

    def _load(self, source: str) -> torch.nn.Module:
        mace_off = import_mace_off()
        # A MACE model file is a full pickle: mace_off's torch.load relies on this variable (trusted files only).
        with _env(_NO_WEIGHTS_ONLY, "1"):
            try:
                net = mace_off(model=source, device=str(self.device), return_raw_model=True)
            except RuntimeError as exc:
                raise MissingWeightsError(
                    f"mace-off: could not load or download {source!r}: {exc.__cause__ or exc}"
                ) from exc
        net = net.to(device=self.device, dtype=self.dtype).eval()
        for parameter in net.parameters():
            parameter.requires_grad_(False)
        return net

    @property
    def elements(self) -> frozenset[int]:
        return frozenset(self.z_table)

    def reference_energies_ev(self) -> dict[int, float]:
        """The model's E0s (isolated-atom energies it was trained with), eV, for the chosen head."""
        e0 = self.model.atomic_energies_fn.atomic_energies.detach().double().cpu()
        if e0.ndim == 2:
            e0 = e0[self.head_index]
        return {z: float(e) for z, e in zip(self.z_table, e0.tolist())}

    def _graph(self, atomic_numbers: torch.Tensor, positions_ang: torch.Tensor) -> dict[str, torch.Tensor]:
        """Padded batch (B, N), (B, N, 3) -> mace-torch's batched graph dict (one disjoint graph per molecule)."""
        mask = atomic_numbers > 0
        n_mol = atomic_numbers.shape[0]
        counts = mask.sum(dim=1)
        node_of = torch.full(mask.shape, -1, dtype=torch.long, device=self.device)
        node_of[mask] = torch.arange(int(counts.sum()), device=self.device)
        with torch.no_grad():
            distance = torch.cdist(positions_ang, positions_ang)
        eye = torch.eye(mask.shape[1], dtype=torch.bool, device=self.device)
        pairs = mask[:, :, None] & mask[:, None, :] & ~eye & (distance < self.r_max_ang)
        mol, i, j = pairs.nonzero(as_tuple=True)
        n_edges = mol.numel()
        species = self._index_of_z[atomic_numbers[mask]]
        one_hot = torch.nn.functional.one_hot(species, num_classes=len(self.z_table)).to(self.dtype)
        zeros = torch.zeros((n_edges, 3), dtype=self.dtype, device=self.device)
        return {
            "positions": positions_ang[mask].detach().clone(),
            "node_attrs": one_hot,
            "edge_index": torch.stack([node_of[mol, i], node_of[mol, j]]),
            "shifts": zeros,
            "unit_shifts": zeros.clone(),
            "cell": torch.zeros((3 * n_mol, 3), dtype=self.dtype, device=self.device),
            "batch": torch.repeat_interleave(torch.arange(n_mol, device=self.device), counts),
            "ptr": torch.cat([counts.new_zeros(1), counts.cumsum(0)]),
            "head": torch.full((n_mol,), self.head_index, dtype=torch.long, device=self.device),
        }

    def _compute(self, atomic_numbers, positions_ang, charge):
        """(B, N) Z with 0 = padding, (B, N, 3) Å -> energy (B,) eV, forces (B, N, 3) eV/Å."""
        data = self._graph(atomic_numbers, positions_ang)
        with torch.enable_grad():
            out = self.model(data, training=False, compute_force=True)
        forces = torch.zeros_like(positions_ang)
        forces[atomic_numbers > 0] = out["forces"].detach().to(positions_ang.dtype)
        return out["energy"].detach(), forces

    def describe(self) -> dict:
        return {**super().describe(), "model": self.source, "r_max_ang": self.r_max_ang}
