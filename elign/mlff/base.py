"""The MLFF protocol: padded molecules in, energies (eV) and forces (eV/Å) out, one status per molecule.

Every backend (``ani2x``, ``aimnet2``, ``mace-off``, ``uma``, ...) subclasses :class:`MLFFBackend` and
implements two things:

* ``_compute(atomic_numbers, positions_ang, charge)`` on a batch of molecules it *can* score, all atoms
  packed to the front of each row (``0`` = padding behind them): returns ``energy_ev`` (B,) and
  ``forces_ev_per_ang`` (B, N, 3) as torch tensors, forces = -dE/dx.
* ``reference_energies_ev()``: the backend's own per-element reference energies, {Z: eV}, used for
  the formation energy. Where the model carries them (torchani's ``energy_shifter`` self energies, the
  AIMNet2 ``atomic_shift`` table, MACE's ``E0s``) those are used; otherwise
  :meth:`MLFFBackend.isolated_atom_energies_ev` computes each isolated atom with the model once and
  caches it.

:meth:`MLFFBackend.evaluate` does the rest for every backend: input checks, screening of molecules the
backend cannot score (a status and a reason, NaN values, never a made-up number), packing and trimming of
padding, chunking into ``batch_size`` molecules, non-finite output checks and the formation energy
``(E - sum_i E_ref(Z_i)) / N``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

STATUS_OK = "ok"
STATUS_EMPTY = "empty"  # no atoms at all
STATUS_INVALID_INPUT = "invalid_input"  # NaN/inf coordinate or negative atomic number
STATUS_UNKNOWN_ELEMENT = "unknown_element"  # an element the model was not trained on
STATUS_ODD_ELECTRONS = "odd_electrons"  # closed-shell model, odd electron count
STATUS_UNSUPPORTED_CHARGE = "unsupported_charge"  # a charge for a model without charge input
STATUS_NON_FINITE = "non_finite"  # the model returned NaN/inf
STATUS_BACKEND_ERROR = "backend_error"  # the model raised on this molecule alone
STATUS_SCF_NOT_CONVERGED = "scf_not_converged"  # a self-consistent method (GFN2-xTB) did not converge
STATUS_TIMEOUT = "timeout"  # no result within the backend's per-molecule time limit
FAILURE_STATUSES = (
    STATUS_EMPTY,
    STATUS_INVALID_INPUT,
    STATUS_UNKNOWN_ELEMENT,
    STATUS_ODD_ELECTRONS,
    STATUS_UNSUPPORTED_CHARGE,
    STATUS_NON_FINITE,
    STATUS_BACKEND_ERROR,
    STATUS_SCF_NOT_CONVERGED,
    STATUS_TIMEOUT,
)


class MissingDependencyError(ImportError):
    """An optional package a backend needs is not installed; the message says what to install."""


class MissingWeightsError(FileNotFoundError):
    """Model weights are not where the backend looks; the message says where to put them."""


@dataclass
class MLFFResult:
    """Per-molecule MLFF output for a batch of B molecules padded to N atoms.

    energy_ev: (B,) float64, eV. forces_ev_per_ang: (B, N, 3) float64, eV/Å, 0 at padding.
    reference_energy_ev: (B,) sum of the backend's per-element reference energies, eV.
    formation_energy_per_atom_ev: (B,) (energy_ev - reference_energy_ev) / num_atoms, eV/atom.
    num_atoms: (B,) int64 real atoms. status: (B,) str, "ok" or a failure class; reason: (B,) str, "" if ok.
    Molecules whose status is not "ok" have NaN energy, forces and formation energy.
    backend: the backend's name; meta: its describe() (device, dtype, elements, model, ...) for provenance.
    """

    energy_ev: np.ndarray
    forces_ev_per_ang: np.ndarray
    reference_energy_ev: np.ndarray
    formation_energy_per_atom_ev: np.ndarray
    num_atoms: np.ndarray
    status: np.ndarray
    reason: np.ndarray
    backend: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def ok(self) -> np.ndarray:
        """(B,) bool: True where the molecule was scored."""
        return self.status == STATUS_OK

    def __len__(self) -> int:
        return int(self.energy_ev.shape[0])


def pad_molecules(
    atomic_numbers: Sequence[np.ndarray], positions_ang: Sequence[np.ndarray], num_atoms_max: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Ragged molecules -> padded arrays: (B, N) int64 with 0 = padding, (B, N, 3) float64 in Å."""
    if len(atomic_numbers) != len(positions_ang):
        raise ValueError(f"{len(atomic_numbers)} atomic-number arrays but {len(positions_ang)} position arrays")
    n_max = max([len(z) for z in atomic_numbers] + [num_atoms_max or 0, 1])
    z_pad = np.zeros((len(atomic_numbers), n_max), dtype=np.int64)
    x_pad = np.zeros((len(atomic_numbers), n_max, 3), dtype=np.float64)
    for i, (z, x) in enumerate(zip(atomic_numbers, positions_ang)):
        z_pad[i, : len(z)] = z
        x_pad[i, : len(z)] = np.asarray(x, dtype=np.float64).reshape(len(z), 3)
    return z_pad, x_pad


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """'float32' / 'float64' (or the torch dtypes) -> torch dtype; anything else is an error."""
    table = {
        "float32": torch.float32,
        "float64": torch.float64,
        torch.float32: torch.float32,
        torch.float64: torch.float64,
    }
    if dtype not in table:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return table[dtype]


def _as_numpy_inputs(atomic_numbers, positions_ang, charge) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    z = np.asarray(atomic_numbers.detach().cpu() if torch.is_tensor(atomic_numbers) else atomic_numbers)
    x = positions_ang.detach().cpu().double() if torch.is_tensor(positions_ang) else positions_ang
    x = np.asarray(x, dtype=np.float64)
    if z.ndim != 2 or x.shape != (*z.shape, 3):
        raise ValueError(f"expected atomic_numbers (B, N) and positions_ang (B, N, 3); got {z.shape} and {x.shape}")
    if not np.issubdtype(z.dtype, np.integer):
        raise ValueError(f"atomic_numbers must be integers, got dtype {z.dtype}")
    q = np.zeros(z.shape[0], dtype=np.int64) if charge is None else np.asarray(charge).astype(np.int64).reshape(-1)
    if q.shape != (z.shape[0],):
        raise ValueError(f"charge must have shape ({z.shape[0]},), got {q.shape}")
    return z.astype(np.int64), x, q


class MLFFBackend:
    """Base class of every backend. Subclasses set ``name``, ``elements`` and implement ``_compute``.

    Options common to all: ``device`` ("cpu", "cuda", "cuda:1", ...), ``dtype`` ("float32"/"float64"),
    ``batch_size`` (molecules per model call), ``reject_odd_electrons`` (flag molecules whose electron
    count sum(Z) - charge is odd; default per backend: True where the model is closed-shell and takes a
    charge, i.e. AIMNet2/UMA; False for ANI/MACE which see geometry only).
    """

    name = "base"
    supports_charge = False
    default_reject_odd_electrons = False

    def __init__(
        self,
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype = "float32",
        batch_size: int = 256,
        reject_odd_electrons: bool | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.dtype = resolve_dtype(dtype)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.reject_odd_electrons = (
            self.default_reject_odd_electrons if reject_odd_electrons is None else bool(reject_odd_electrons)
        )
        self._isolated_cache: dict[int, float] = {}

    # --- to implement -------------------------------------------------------------------------------
    @property
    def elements(self) -> frozenset[int]:
        """Atomic numbers the model can score."""
        raise NotImplementedError

    def _compute(
        self, atomic_numbers: torch.Tensor, positions_ang: torch.Tensor, charge: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, N) long (0 = padding, atoms first), (B, N, 3) self.dtype Å, (B,) long -> (B,) eV, (B, N, 3) eV/Å."""
        raise NotImplementedError

    def _compute_energy(
        self, atomic_numbers: torch.Tensor, positions_ang: torch.Tensor, charge: torch.Tensor
    ) -> torch.Tensor:
        """:meth:`_compute`'s energy (B,) eV alone; a backend that can skip the forces' backward pass overrides it."""
        return self._compute(atomic_numbers, positions_ang, charge)[0]

    def reference_energies_ev(self) -> dict[int, float]:
        """{Z: eV} per-element reference; default: isolated atoms computed with the model (cached)."""
        return self.isolated_atom_energies_ev(sorted(self.elements))

    # --- shared -------------------------------------------------------------------------------------
    def isolated_atom_energies_ev(self, elements: Sequence[int]) -> dict[int, float]:
        """Energy of each isolated neutral atom by the model itself, eV; computed once, then cached.

        Elements the model fails on (raises, NaN) are left out, so their molecules get a NaN formation energy.
        """
        todo = [int(z) for z in elements if int(z) not in self._isolated_cache]
        if todo:
            z = np.array(todo, dtype=np.int64)[:, None]
            energy, forces = np.full(len(todo), np.nan), np.full((len(todo), 1, 3), np.nan)
            status = np.full(len(todo), STATUS_OK, dtype=object)
            reason = np.full(len(todo), "", dtype=object)
            self._score_chunk(
                np.arange(len(todo)),
                z,
                np.zeros((len(todo), 1, 3)),
                np.zeros(len(todo), np.int64),
                energy,
                forces,
                status,
                reason,
            )
            energy[status != STATUS_OK] = np.nan
            self._isolated_cache.update(zip(todo, energy.tolist()))
        return {int(z): self._isolated_cache[int(z)] for z in elements if math.isfinite(self._isolated_cache[int(z)])}

    def evaluate(self, atomic_numbers, positions_ang, charge=None) -> MLFFResult:
        """Score a padded batch.

        atomic_numbers: (B, N) int, 0 = padding (anywhere in the row). positions_ang: (B, N, 3) Å.
        charge: (B,) int total charges, default 0. numpy arrays or torch tensors. Returns MLFFResult.
        """
        return self._evaluate(atomic_numbers, positions_ang, charge, energy_only=False)

    def energies(self, atomic_numbers, positions_ang, charge=None) -> MLFFResult:
        """:meth:`evaluate` for a caller that needs no forces (FED-GRPO's potential Ψ): the same energies,
        formation energies and statuses, with ``forces_ev_per_ang`` all NaN and a molecule non-finite only where
        its energy is. A backend that overrides :meth:`_compute_energy` (ANI) skips the backward pass here
        (bench/potentials.py measures the gain)."""
        return self._evaluate(atomic_numbers, positions_ang, charge, energy_only=True)

    def _evaluate(self, atomic_numbers, positions_ang, charge, energy_only: bool) -> MLFFResult:
        z, x, q = _as_numpy_inputs(atomic_numbers, positions_ang, charge)
        n_mol, n_pad = z.shape
        status, reason = self._screen(z, x, q)
        energy = np.full(n_mol, np.nan)
        forces = np.full((n_mol, n_pad, 3), np.nan)
        todo = np.flatnonzero(status == STATUS_OK)
        todo = todo[np.argsort((z[todo] > 0).sum(axis=1), kind="stable")]  # similar sizes share a chunk
        for start in range(0, len(todo), self.batch_size):
            idx = todo[start : start + self.batch_size]
            self._score_chunk(idx, z, x, q, energy, forces, status, reason, energy_only=energy_only)
        if energy_only:
            forces[:] = np.nan  # not computed (a backend that computes them anyway, like xTB, is not asked)
        else:
            forces[z == 0] = 0.0
            forces[status != STATUS_OK] = np.nan
        energy[status != STATUS_OK] = np.nan
        reference = self._reference_sum(z)
        num_atoms = (z > 0).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            formation = (energy - reference) / num_atoms
        return MLFFResult(
            energy,
            forces,
            reference,
            formation,
            num_atoms.astype(np.int64),
            status,
            reason,
            backend=self.name,
            meta=self.describe(),
        )

    def __call__(self, atomic_numbers, positions_ang, charge=None) -> MLFFResult:
        return self.evaluate(atomic_numbers, positions_ang, charge)

    def _screen(self, z: np.ndarray, x: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Status/reason for each molecule before any model call (first failing check wins)."""
        status = np.full(z.shape[0], STATUS_OK, dtype=object)
        reason = np.full(z.shape[0], "", dtype=object)
        known = self.elements
        for i in range(z.shape[0]):
            real = z[i] > 0
            bad = self._screen_one(z[i][real], x[i][real], int(q[i]), known)
            if bad is not None:
                status[i], reason[i] = bad
        return status, reason

    def _screen_one(self, z: np.ndarray, x: np.ndarray, charge: int, known: frozenset[int]):
        if len(z) == 0:
            return STATUS_EMPTY, "molecule has no atoms (all atomic numbers are 0 = padding)"
        if (z < 0).any() or not np.isfinite(x).all():
            return STATUS_INVALID_INPUT, "negative atomic number or non-finite coordinate"
        unknown = sorted(set(z.tolist()) - known)
        if unknown:
            return STATUS_UNKNOWN_ELEMENT, (
                f"{self.name} has no parameters for element(s) Z={unknown}; it knows Z={sorted(known)}"
            )
        if charge != 0 and not self.supports_charge:
            return STATUS_UNSUPPORTED_CHARGE, f"{self.name} takes no charge input; got charge {charge}"
        electrons = int(z.sum()) - charge
        if self.reject_odd_electrons and electrons % 2:
            return STATUS_ODD_ELECTRONS, (
                f"{electrons} electrons (odd): {self.name} is a closed-shell model (open-shell molecule / radical)"
            )
        return None

    def _score_chunk(self, idx, z, x, q, energy, forces, status, reason, energy_only: bool = False) -> None:
        """Run one chunk; if the model raises, retry its molecules one by one to isolate the culprit."""
        try:
            e, f = self._run_packed(z[idx], x[idx], q[idx], energy_only)
        except Exception as exc:  # noqa: BLE001 - the model's own error, kept as a reason
            if len(idx) == 1:
                status[idx[0]] = STATUS_BACKEND_ERROR
                reason[idx[0]] = f"{type(exc).__name__}: {exc}"[:500]
                return
            for i in idx:
                self._score_chunk(np.array([i]), z, x, q, energy, forces, status, reason, energy_only)
            return
        finite = np.isfinite(e)
        if f is not None:
            finite &= np.isfinite(f).all(axis=(1, 2))
            forces[idx] = f
        energy[idx] = e
        for i in idx[~finite]:
            status[i] = STATUS_NON_FINITE
            reason[i] = f"{self.name} returned a non-finite energy or force"

    def _run_packed(self, z: np.ndarray, x: np.ndarray, q: np.ndarray, energy_only: bool = False):
        """Pack real atoms to the front of each row, trim padding, call _compute (or _compute_energy), scatter
        back. -> (B,) eV, and (B, N, 3) eV/Å or None with ``energy_only``."""
        order = np.argsort(z <= 0, axis=1, kind="stable")  # real atoms first, original order kept
        z_sorted = np.take_along_axis(z, order, axis=1)
        x_sorted = np.take_along_axis(x, order[..., None], axis=1)
        n_keep = max(int((z > 0).sum(axis=1).max()), 1)
        z_t = torch.as_tensor(z_sorted[:, :n_keep], dtype=torch.long, device=self.device)
        x_t = torch.as_tensor(x_sorted[:, :n_keep], device=self.device).to(self.dtype)
        x_t = x_t.masked_fill((z_t == 0)[..., None], 0.0)
        q_t = torch.as_tensor(q, dtype=torch.long, device=self.device)
        if energy_only:
            return self._compute_energy(z_t, x_t, q_t).detach().double().cpu().numpy().reshape(-1), None
        e_t, f_t = self._compute(z_t, x_t, q_t)
        e = e_t.detach().double().cpu().numpy().reshape(-1)
        f_sorted = np.zeros(x.shape, dtype=np.float64)
        f_sorted[:, :n_keep] = f_t.detach().double().cpu().numpy()
        f = np.zeros_like(f_sorted)
        np.put_along_axis(f, order[..., None], f_sorted, axis=1)
        return e, f

    def _reference_sum(self, z: np.ndarray) -> np.ndarray:
        """(B,) sum of per-element reference energies over real atoms; NaN where an element has none."""
        ref = self.reference_energies_ev()
        table = np.full(max(int(z.max(initial=0)), max(ref, default=0)) + 1, math.nan)
        for element, value in ref.items():
            table[element] = value
        table[0] = 0.0
        return table[np.clip(z, 0, None)].sum(axis=1)

    def describe(self) -> dict:
        """Plain-data summary (for logs and provenance)."""
        return {
            "backend": self.name,
            "device": str(self.device),
            "dtype": str(self.dtype).replace("torch.", ""),
            "batch_size": self.batch_size,
            "elements": sorted(self.elements),
            "reject_odd_electrons": self.reject_odd_electrons,
        }
