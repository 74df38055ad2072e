"""Toy pieces for the FED-GRPO tests: a harmonic force field behind the MLFF protocol, tiny models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from elign.diffusion.checkpoint import save_checkpoint
from elign.diffusion.factory import build_model, model_config_of
from elign.mlff.base import MLFFBackend
from elign.model.presets import make_model_config

QM9_Z = (1, 6, 7, 8, 9)


class HarmonicBackend(MLFFBackend):
    """E = ½ k Σ_i ‖x_i‖² − c·Σ_i x_i (eV, x in Å), F = −k x + c (eV/Å); reference energies 0, so the
    formation energy per atom is E / n. ``unknown`` elements get status unknown_element and molecules with
    more than ``fail_above`` atoms a NaN energy (status non_finite), to test exclusions."""

    name = "harmonic"

    def __init__(
        self,
        k: float = 0.5,
        unknown: tuple[int, ...] = (),
        shift: tuple[float, float, float] = (0, 0, 0),
        fail_above: int | None = None,
        **options,
    ):
        super().__init__(**{"dtype": "float64", **options})
        self.k, self.shift, self.fail_above = float(k), torch.tensor(shift, dtype=torch.float64), fail_above
        self._elements = frozenset(z for z in QM9_Z if z not in unknown)
        self.calls = 0

    @property
    def elements(self) -> frozenset[int]:
        return self._elements

    def reference_energies_ev(self) -> dict[int, float]:
        return {z: 0.0 for z in QM9_Z}

    def _compute(self, atomic_numbers, positions_ang, charge):
        self.calls += 1
        mask = (atomic_numbers > 0)[..., None].to(positions_ang.dtype)
        x = positions_ang * mask
        c = self.shift.to(x.dtype)
        energy = 0.5 * self.k * (x**2).sum(dim=(1, 2)) - (x * c).sum(dim=(1, 2))
        if self.fail_above is not None:
            energy = torch.where(mask.sum(dim=(1, 2)) > self.fail_above, float("nan"), energy)
        return energy, (-self.k * x + c) * mask


def tiny_model(dtype=torch.float64, timesteps: int = 20, seed: int = 0):
    torch.manual_seed(seed)
    config = make_model_config("small_cpu", n_layers=1, hidden_nf=16, diffusion={"timesteps": timesteps})
    return build_model(config, dtype=dtype).eval()


def save_tiny(path: Path, dtype=torch.float64, timesteps: int = 20, seed: int = 0) -> Path:
    model = tiny_model(dtype, timesteps, seed)
    save_checkpoint(path, model_config_of(model), model.state_dict())
    return path


def molecule_batch(*mols: tuple[list[int], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    n = max(len(z) for z, _ in mols)
    zs, xs = np.zeros((len(mols), n), dtype=np.int64), np.zeros((len(mols), n, 3))
    for i, (z, x) in enumerate(mols):
        zs[i, : len(z)], xs[i, : len(z)] = z, x
    return zs, xs


METHANE = (
    [6, 1, 1, 1, 1],
    np.array(
        [
            [0.0, 0.0, 0.0],
            [0.629, 0.629, 0.629],
            [-0.629, -0.629, 0.629],
            [-0.629, 0.629, -0.629],
            [0.629, -0.629, -0.629],
        ]
    ),
)
_D = 1.09
CH5 = ([6, 1, 1, 1, 1, 1], np.array([[0, 0, 0], [_D, 0, 0], [-_D, 0, 0], [0, _D, 0], [0, -_D, 0], [0, 0, _D]], float))


def fake_rollouts(
    numbers: np.ndarray,
    x_ang: np.ndarray,
    group: list[int],
    x0_ang: np.ndarray | None = None,
    x0_numbers: np.ndarray | None = None,
):
    """A Rollouts holding only what the rewards read: final molecules (B, N) / (B, N, 3) Å and, optionally,
    the clean predictions at S steps (B, S, N, 3) with their atomic numbers (B, S, N) (0 = padding)."""
    from elign.rl.rollout import Prompt, Rollouts

    b, n = numbers.shape
    if x0_ang is None:
        x0_ang, x0_numbers = x_ang[:, None], numbers[:, None]
    s = x0_ang.shape[1]
    type_numbers = torch.tensor(QM9_Z)
    index = {z: i for i, z in enumerate(QM9_Z)}
    x0_types = np.vectorize(lambda z: index.get(int(z), -1))(x0_numbers)
    mask = torch.as_tensor(numbers > 0, dtype=torch.float64)[..., None]
    zeros = torch.zeros((b, s, n, 9), dtype=torch.float64)
    return Rollouts(
        [Prompt(int(m)) for m in mask.sum(1)[:, 0].long()],
        torch.as_tensor(group),
        mask,
        torch.arange(s, 0, -1),
        torch.zeros((b, s + 1, n, 9), dtype=torch.float64),
        zeros,
        torch.ones(s, dtype=torch.float64),
        torch.zeros((b, s), dtype=torch.float64),
        torch.as_tensor(x0_ang, dtype=torch.float64),
        torch.as_tensor(x0_types, dtype=torch.long),
        torch.as_tensor(x_ang, dtype=torch.float64),
        torch.as_tensor(numbers, dtype=torch.long),
        torch.ones(b, dtype=torch.bool),
        type_numbers,
    )
