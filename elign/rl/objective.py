"""FED-GRPO loss: PPO-clipped surrogate on per-step Gaussian log-prob ratios + KL to the frozen reference.

For a trained pair (rollout i, reverse step t → s) with advantage A, old log-prob log p_old(z_s | z_t)
(recorded at rollout time) and the current policy's log p_θ(z_s | z_t) (recomputed with grad)::

    ρ = exp(log p_θ − log p_old)
    L_clip = −min(ρ·A, clip(ρ, 1 − ε, 1 + ε)·A)                    (PPO, Schulman et al. 2017)
    KL_ref = ‖μ_θ − μ_ref‖² / (2σ²)                                (closed form, equal σ)
    loss = Σ_pairs (L_clip + β·KL_ref) / n_pairs

KL_ref is the exact KL(N(μ_θ, σ²) ‖ N(μ_ref, σ²)) of the two reverse steps on EDM's space: the position
part of μ_θ − μ_ref is projected onto the zero-CoM subspace (a no-op up to round-off: both means are
centred) and summed over real atoms, the features over real atoms, i.e. the same (n − 1)·3 + n·F
dimensions as :func:`elign.diffusion.gaussian.reverse_step_log_prob`. σ is the reverse step's std, the same
for θ and the reference (fixed schedule). ``finetune.feature_kl_weight`` w weighs its feature part,
KL_x + w·KL_h; ``finetune.policy_features: false`` takes the log-probs of the position part only
(``(n − 1)·3`` dimensions), so that the reward moves geometry and the KL alone acts on the atom types.

Gradient of the clipped term: zero where the clipped branch is the minimum and active, i.e. A > 0 and
ρ > 1 + ε, or A < 0 and ρ < 1 − ε; elsewhere A·∇ρ. The log-ratio is clamped to ±20 before the exp purely
to keep float32 finite (ρ = e^20 is already far outside any clip range; the clamp only bites where the
clipped branch or a huge unclipped term would dominate anyway).

Statistics: ratio mean/min/max, clip fraction (share of pairs with |ρ − 1| > ε), KL_ref mean, and the
approximate KL to the old policy k3 = mean((ρ − 1) − log ρ) (Schulman's unbiased, non-negative estimator).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from elign.diffusion import geometry as geo
from elign.diffusion.gaussian import kl_equal_sigma

__all__ = ["LossStats", "ppo_kl_loss", "kl_to_reference"]

LOG_RATIO_CLAMP = 20.0


@dataclass
class LossStats:
    """Sums over the pairs of one chunk (so that chunks can be accumulated), and extremes."""

    n: int
    ratio_sum: float
    ratio_min: float
    ratio_max: float
    clipped: int
    kl_ref_sum: float
    approx_kl_sum: float
    surrogate_sum: float

    def merge(self, other: LossStats) -> LossStats:
        return LossStats(
            self.n + other.n,
            self.ratio_sum + other.ratio_sum,
            min(self.ratio_min, other.ratio_min),
            max(self.ratio_max, other.ratio_max),
            self.clipped + other.clipped,
            self.kl_ref_sum + other.kl_ref_sum,
            self.approx_kl_sum + other.approx_kl_sum,
            self.surrogate_sum + other.surrogate_sum,
        )

    @classmethod
    def empty(cls) -> LossStats:
        return cls(0, 0.0, float("inf"), float("-inf"), 0, 0.0, 0.0, 0.0)

    def summary(self) -> dict[str, float]:
        n = max(self.n, 1)
        nan = float("nan")
        return {
            "ratio_mean": self.ratio_sum / n if self.n else nan,
            "ratio_min": self.ratio_min if self.n else nan,
            "ratio_max": self.ratio_max if self.n else nan,
            "clip_fraction": self.clipped / n if self.n else nan,
            "kl_ref": self.kl_ref_sum / n if self.n else nan,
            "approx_kl_old": self.approx_kl_sum / n if self.n else nan,
            "surrogate": self.surrogate_sum / n if self.n else nan,
        }


def kl_to_reference(
    mu: torch.Tensor,
    mu_ref: torch.Tensor,
    sigma: torch.Tensor,
    node_mask: torch.Tensor,
    n_dims: int = 3,
    feature_weight: float = 1.0,
) -> torch.Tensor:
    """(B,) ‖μ − μ_ref‖² / (2σ²) on EDM's space (positions projected to zero CoM, padding masked).

    feature_weight w scales the atom-type/charge part: KL_x + w·KL_h (w = 1: the KL of the whole step).
    """
    diff = (mu - mu_ref) * node_mask
    x = geo.remove_mean_with_mask(diff[..., :n_dims], node_mask, check_mask=False)
    diff = torch.cat([x, diff[..., n_dims:] * feature_weight**0.5], dim=-1)
    return kl_equal_sigma(diff, torch.zeros_like(diff), sigma, node_mask)


def ppo_kl_loss(
    logp_new: torch.Tensor,
    logp_old: torch.Tensor,
    advantage: torch.Tensor,
    mu: torch.Tensor,
    mu_ref: torch.Tensor,
    sigma: torch.Tensor,
    node_mask: torch.Tensor,
    *,
    clip_range: float,
    kl_weight: float,
    denominator: int | None = None,
    feature_kl_weight: float = 1.0,
) -> tuple[torch.Tensor, LossStats]:
    """Loss of M pairs (module doc): Σ (L_clip + β·KL_ref) / denominator (default M), and its statistics.

    logp_new (M,) with grad; logp_old, advantage (M,) constants; mu (M, N, D) with grad; mu_ref (M, N, D)
    constant; sigma (M, 1, 1); node_mask (M, N, 1). feature_kl_weight: see :func:`kl_to_reference`.
    """
    log_ratio = (logp_new - logp_old.detach()).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    ratio = torch.exp(log_ratio)
    adv = advantage.detach().to(ratio.dtype)
    surrogate = -torch.minimum(ratio * adv, torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range) * adv)
    kl_ref = kl_to_reference(mu, mu_ref.detach(), sigma, node_mask, feature_weight=feature_kl_weight)
    denom = float(denominator if denominator is not None else max(len(ratio), 1))
    loss = (surrogate + kl_weight * kl_ref).sum() / denom
    with torch.no_grad():
        r = ratio.detach()
        stats = LossStats(
            int(r.numel()),
            float(r.sum()),
            float(r.min()) if r.numel() else float("inf"),
            float(r.max()) if r.numel() else float("-inf"),
            int(((r - 1.0).abs() > clip_range).sum()),
            float(kl_ref.detach().sum()),
            float(((r - 1.0) - log_ratio.detach()).sum()),
            float(surrogate.detach().sum()),
        )
    return loss, stats
