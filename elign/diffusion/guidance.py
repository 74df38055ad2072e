"""MLFF-guided sampling: the inference-time baseline that FED-GRPO amortizes away.

At every reverse step t → s of the *pretrained* model, before z_s is drawn (a hook of
:func:`elign.diffusion.sampler.reverse_step`):

1. the model's clean prediction ẑ_{0|t} = (z_t − σ_t ε̂)/α_t is recovered from the step's mean:
   μ = z_t/α_{t|s} − σ²_{t|s}/(α_{t|s} σ_t)·ε̂ gives ε̂ = (z_t − α_{t|s} μ)·σ_t/σ²_{t|s} (in float64; the
   hook sees μ, not ε̂, and recovering it avoids a second network call);
2. it is decoded to positions in Å (× normalize_factors[0]) and atom types (argmax of the one-hot block);
3. the MLFF gives forces F (eV/Å) on those atoms, and the mean becomes

       μ_x ← μ_x + λ · σ² · (F − mean_atoms(F))        (positions only; features unchanged)

   with σ² the variance of the reverse step p(z_s | z_t) (model units; Å² for EDM's
   normalize_factors[0] = 1, where model units are Å) and λ = ``guidance_scale``. This is classifier
   guidance (Dhariwal & Nichol 2021: μ + s·Σ·∇ log p(y | z)) with the Boltzmann log-density
   log p ∝ −E/(k_B T), whose gradient is F/(k_B T): λ plays the role of 1/(k_B T) in eV⁻¹ (λ = 1 eV⁻¹ is a
   very hot 11600 K, λ ≈ 39 eV⁻¹ is 300 K). The force's centre of mass is removed per molecule so μ_x stays
   in the zero-CoM subspace.
4. trust region (``max_step_sigma`` = c, None = off): where an atom's shift would exceed c·σ (the step's own
   noise std), the molecule's whole shift is scaled down so its largest atom shift is c·σ. One factor per
   molecule keeps the shift's direction and its zero centre of mass. Without it, early steps explode: ẑ_0 of
   a noisy z_t has overlapping atoms whose MLFF forces reach 10³ eV/Å (measured in the default run: 41 of 64
   unclipped samples at λ = 1 eV⁻¹ went beyond 100 Å). Clipping the guidance gradient is the usual remedy
   (e.g. gradient clipping in universal guidance, Bansal et al. 2023); the cap in units of σ makes it
   schedule-free.
5. window (``max_t``, None = every step): guidance acts only at reverse steps with t ≤ max_t (t in [0, 1]),
   decided on the step's index as t_int / T in float64 (:meth:`MLFFGuidance.covers`): the sampler's t tensor
   in float32 rounds 200/1000 above 0.2 and would drop the edge step.
   At high noise ẑ_0 is a blur with overlapping atoms, where an MLFF is out of its domain and its forces
   point into its own short-range artefacts (measured in the default run with the trust region alone:
   λ = 1 eV⁻¹ drove samples to ANI-2x formation energies of −785 eV/atom). Guiding only the late,
   low-noise part of the chain is the usual practice for guidance by a predictor of clean data.

A molecule the MLFF cannot score at that step (status not ok) gets no guidance term at that step; such
molecule-steps are counted (``unscored``), and each molecule gets a status row
(:meth:`MLFFGuidance.molecule_columns`: ``guidance_status`` "ok" when every guided step was scored, else
the MLFF's status of its last unscored step, e.g. ``unknown_element``; ``guidance_reason``;
``guidance_unscored_steps`` of ``guidance_steps``), so a molecule sampled without its guidance term is
never passed off as a guided one. Wall time inside the hook is accumulated in ``seconds``.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from elign.diffusion import geometry as geo
from elign.diffusion.en_diffusion import EnVariationalDiffusion
from elign.diffusion.sampler import StepState, atomic_numbers_of_types
from elign.mlff.base import MLFFBackend

__all__ = ["MLFFGuidance", "cap_atom_shift", "x0_from_mean"]


def x0_from_mean(
    model: EnVariationalDiffusion, z_t: torch.Tensor, mu: torch.Tensor, s: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """ẑ_{0|t} (model units, float64) from the reverse step's mean μ (module doc, step 1)."""
    z_t, mu = z_t.double(), mu.double()
    gamma_s, gamma_t = model.gamma(s, torch.float64), model.gamma(t, torch.float64)
    sigma2_ts, _, alpha_ts = model.sigma_and_alpha_t_given_s(gamma_t, gamma_s, z_t)
    sigma_t = model.sigma(gamma_t, z_t)
    eps = (z_t - alpha_ts * mu) * sigma_t / sigma2_ts
    return model.compute_x_pred(eps, z_t, gamma_t)


def cap_atom_shift(dx: torch.Tensor, cap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale each molecule's shift dx (B, N, 3) so no atom moves more than cap (B, 1, 1); and the (B,) clipped flags.

    One factor per molecule, min(1, cap / max_i |dx_i|): direction and zero centre of mass are kept.
    """
    largest = dx.norm(dim=2).amax(dim=1)  # (B,)
    cap_b = cap.reshape(-1).expand_as(largest)
    factor = torch.where(
        largest > cap_b, cap_b / largest.clamp_min(torch.finfo(dx.dtype).tiny), torch.ones_like(largest)
    )
    return dx * factor[:, None, None], largest > cap_b


class MLFFGuidance:
    """Sampler hook adding λ·σ²·F(ẑ_{0|t}) to the position mean (module doc).

    backend: any MLFF backend; scale: λ (eV⁻¹); max_step_sigma: the trust region c (module doc, step 4);
    max_t: the window (step 5).
    Counters: ``steps`` (hook calls), ``unscored`` (molecule-steps without a guidance term), ``clipped``
    (molecule-steps scaled down by the trust region), ``seconds`` (time spent in the hook).
    """

    def __init__(
        self, backend: MLFFBackend, scale: float, max_step_sigma: float | None = None, max_t: float | None = None
    ):
        if scale < 0:
            raise ValueError(f"guidance scale must be >= 0, got {scale}")
        if max_step_sigma is not None and max_step_sigma <= 0:
            raise ValueError(f"guidance max_step_sigma must be > 0 or None, got {max_step_sigma}")
        if max_t is not None and not 0 < max_t <= 1:
            raise ValueError(f"guidance max_t must be in (0, 1] or None, got {max_t}")
        self.backend, self.scale, self.max_step_sigma, self.max_t = backend, float(scale), max_step_sigma, max_t
        self.steps, self.unscored, self.clipped, self.seconds = 0, 0, 0, 0.0
        self._batch: np.ndarray | None = None  # requested indices of the batch being sampled (begin_batch)
        self._per_molecule: dict[int, list] = {}  # index -> [guided steps, unscored steps, last status, reason]

    def forces(self, model: EnVariationalDiffusion, state: StepState) -> tuple[torch.Tensor, torch.Tensor]:
        """MLFF forces (B, N, 3) eV/Å on the decoded ẑ_{0|t} (zero where unscorable) and the (B,) ok flags."""
        mask = state.node_mask
        x0 = x0_from_mean(model, state.z_t, state.mu, state.s, state.t)
        x_ang, h_cat, _ = model.unnormalize(*model.split_z(x0), mask.double())
        z_of = atomic_numbers_of_types(model).to(mask.device)
        numbers = torch.where(mask[..., 0] > 0, z_of[h_cat.argmax(dim=2)], 0)
        with torch.inference_mode(False):  # the MLFF takes forces by autograd; the sampler runs in inference mode
            result = self.backend.evaluate(numbers.cpu().numpy(), (x_ang * mask).cpu().numpy())
        self._record(result.status, result.reason)
        ok = torch.as_tensor(result.ok, device=mask.device)
        forces = torch.as_tensor(result.forces_ev_per_ang, device=mask.device)
        forces = torch.where(ok[:, None, None], forces, torch.zeros((), dtype=forces.dtype, device=mask.device))
        return forces, ok

    def begin_batch(self, indices) -> None:
        """The sampler's notice of the requested molecules (in batch-row order) of the next batch."""
        self._batch = np.asarray(indices, dtype=np.int64).reshape(-1)

    def _record(self, status: np.ndarray, reason: np.ndarray) -> None:
        if self._batch is None or len(self._batch) != len(status):
            return  # called outside sample_molecules (no begin_batch): the counters above still hold
        for i, st, why in zip(self._batch.tolist(), status.tolist(), reason.tolist()):
            rec = self._per_molecule.setdefault(i, [0, 0, "ok", ""])
            rec[0] += 1
            if st != "ok":
                rec[1], rec[2], rec[3] = rec[1] + 1, st, why

    def molecule_columns(self, n: int) -> dict[str, np.ndarray]:
        """Per requested molecule 0..n-1: guidance_status, guidance_reason, guidance_steps (guided steps it went
        through), guidance_unscored_steps (of those, steps without a guidance term). A molecule that no guided
        step reached has status "not_guided"."""
        status, reason = np.full(n, "not_guided", dtype=object), np.full(n, "", dtype=object)
        steps, unscored = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
        for i, (k, u, st, why) in self._per_molecule.items():
            if i < n:
                steps[i], unscored[i], status[i] = k, u, st
                reason[i] = f"MLFF could not score it at {u} of {k} guided steps: {why}" if u else ""
        return {
            "guidance_status": status,
            "guidance_reason": reason,
            "guidance_steps": steps,
            "guidance_unscored_steps": unscored,
        }

    def delta(self, state: StepState) -> tuple[torch.Tensor, torch.Tensor]:
        """The term added to μ (B, N, D) in μ's dtype, and the (B,) ok flags."""
        model, mask = state.model, state.node_mask
        forces, ok = self.forces(model, state)
        f = geo.remove_mean_with_mask(forces.to(mask.dtype) * mask, mask, check_mask=False)
        sigma = state.sigma.to(f.dtype)
        dx = self.scale * sigma**2 * f
        if self.max_step_sigma is not None:
            dx, clipped = cap_atom_shift(dx, self.max_step_sigma * sigma)
            self.clipped += int(clipped.sum())
        pad = torch.zeros(state.mu.shape[:2] + (state.mu.shape[2] - model.n_dims,), dtype=dx.dtype, device=dx.device)
        return torch.cat([dx, pad], dim=2).to(state.mu.dtype), ok

    def covers(self, t_int: int, num_steps: int) -> bool:
        """Whether the window holds reverse step t = t_int / num_steps (module doc, step 5)."""
        return self.max_t is None or t_int / num_steps <= self.max_t

    def active_fraction(self, num_steps: int) -> float:
        """Share of the reverse steps t_int = 1..num_steps at which the hook acts."""
        return sum(self.covers(k, num_steps) for k in range(1, num_steps + 1)) / num_steps

    def __call__(self, state: StepState) -> torch.Tensor | None:
        if not self.covers(state.t_int, state.model.T):
            return None  # outside the window: the model's own mean
        t0 = time.perf_counter()
        delta, ok = self.delta(state)
        self.steps += 1
        self.unscored += int((~ok).sum())
        self.seconds += time.perf_counter() - t0
        return state.mu + delta

    def summary(self) -> dict:
        return {
            "guidance": "mlff",
            "guidance_scale": self.scale,
            "guidance_seconds": self.seconds,
            "guidance_max_step_sigma": self.max_step_sigma,
            "guidance_max_t": self.max_t,
            "guidance_steps": self.steps,
            "guidance_unscored_molecule_steps": self.unscored,
            "guidance_clipped_molecule_steps": self.clipped,
            "guidance_mlff": self.backend.describe(),
        }
