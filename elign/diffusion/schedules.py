"""EDM's predefined noise schedules, kept as a γ lookup table (Hoogeboom et al. 2022, App. B).

γ(t) = −log(α_t² / σ_t²) with α_t² + σ_t² = 1 (variance preserving), so α_t² = sigmoid(−γ),
σ_t² = sigmoid(γ), SNR(t) = exp(−γ(t)). ``polynomial_<p>`` (EDM's default p = 2):

    x = linspace(0, T + 1, T + 1);  f = (1 − (x / (T + 1))^p)²
    α̃² = cumprod(clip(f_t / f_{t−1}, 0.001, 1))      (``clip_noise_schedule``, f_{−1} = 1)
    α² = (1 − 2s)·α̃² + s                              (precision s, EDM: 1e-5)

as in ``equivariant_diffusion/en_diffusion.py`` (``polynomial_schedule``, ``clip_noise_schedule``,
``PredefinedNoiseSchedule``). The table has T + 1 entries and is read at round(t·T). EDM stores it as a
float32 parameter; by default we round it to float32 the same way (``edm_float32=True``) so a fresh model
behaves as EDM's, and an imported checkpoint brings its own stored table (buffer ``gamma``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def clip_noise_schedule(alphas2: np.ndarray, clip_value: float = 0.001) -> np.ndarray:
    """Clip α_t²/α_{t−1}² to [clip_value, 1] and re-accumulate (EDM ``clip_noise_schedule``)."""
    alphas2 = np.concatenate([np.ones(1), alphas2], axis=0)
    step = np.clip(alphas2[1:] / alphas2[:-1], a_min=clip_value, a_max=1.0)
    return np.cumprod(step, axis=0)


def polynomial_schedule(timesteps: int, s: float = 1e-4, power: float = 3.0) -> np.ndarray:
    """α_t² for t = 0..T (float64, T + 1 entries), EDM ``polynomial_schedule``."""
    steps = timesteps + 1
    x = np.linspace(0, steps, steps)
    alphas2 = (1 - np.power(x / steps, power)) ** 2
    alphas2 = clip_noise_schedule(alphas2, clip_value=0.001)
    precision = 1 - 2 * s
    return precision * alphas2 + s


def cosine_schedule(timesteps: int, s: float = 0.008) -> np.ndarray:
    """α_t² of the cosine schedule (Nichol & Dhariwal 2021) as EDM builds it (``cosine_beta_schedule``)."""
    steps = timesteps + 2
    x = np.linspace(0, steps, steps)
    ac = np.cos(((x / steps) + s) / (1 + s) * np.pi * 0.5) ** 2
    ac = ac / ac[0]
    betas = np.clip(1 - (ac[1:] / ac[:-1]), a_min=0, a_max=0.999)
    return np.cumprod(1.0 - betas, axis=0)


def gamma_table(noise_schedule: str, timesteps: int, precision: float) -> np.ndarray:
    """γ_t = −(log α_t² − log σ_t²) for t = 0..T in float64.

    noise_schedule: 'polynomial_<power>' (e.g. 'polynomial_2') or 'cosine'.
    """
    if noise_schedule == "cosine":
        alphas2 = cosine_schedule(timesteps)
    elif noise_schedule.startswith("polynomial_"):
        try:
            power = float(noise_schedule.split("_", 1)[1])
        except ValueError:
            raise ValueError(f"bad noise schedule {noise_schedule!r}; expected e.g. 'polynomial_2'") from None
        alphas2 = polynomial_schedule(timesteps, s=precision, power=power)
    else:
        raise ValueError(
            f"unknown noise schedule {noise_schedule!r} ('learned' is not supported); "
            "use 'polynomial_<power>' or 'cosine'"
        )
    sigmas2 = 1 - alphas2
    return -(np.log(alphas2) - np.log(sigmas2))


class PredefinedNoiseSchedule(nn.Module):
    """γ(t) looked up at round(t·T) in a (T + 1,) table held in buffer ``gamma``.

    Args:
        noise_schedule, timesteps, precision: as :func:`gamma_table`.
        table: a stored table (e.g. EDM's ``gamma.gamma`` from a checkpoint) used instead of rebuilding.
        edm_float32: round a rebuilt table to float32 like EDM's stored parameter.
    """

    def __init__(
        self,
        noise_schedule: str = "polynomial_2",
        timesteps: int = 1000,
        precision: float = 1e-5,
        table: torch.Tensor | None = None,
        edm_float32: bool = True,
    ):
        super().__init__()
        self.noise_schedule = noise_schedule
        self.timesteps = int(timesteps)
        self.precision = float(precision)
        if table is None:
            values = torch.from_numpy(gamma_table(noise_schedule, timesteps, precision))
            if edm_float32:
                values = values.float()
            table = values.double()
        table = torch.as_tensor(table).detach().clone()
        if table.shape != (self.timesteps + 1,):
            raise ValueError(f"gamma table must have shape ({self.timesteps + 1},), got {tuple(table.shape)}")
        # Kept in float64 until the module is cast; callers cast γ to their working dtype.
        self.register_buffer("gamma", table.to(torch.float64))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """t ∈ [0, 1] of any shape -> γ(t) of the same shape (table dtype)."""
        t_int = torch.round(t * self.timesteps).long()
        return self.gamma[t_int]
