"""FED-GRPO advantages: force and energy channels z-scored separately within each group, then mixed.

For group g (the K rollouts of one prompt) and a channel with values v (NaN = excluded member):

    A_i = (v_i − mean_g(v)) / std_g(v)         over the group's scorable members only,

with the unbiased sample std (ddof = 1, as GRPO implementations use) by default, or, with
``finetune.group_std: population``, the official Elign code's ``(v − mean) / (std_pop + 1e-8)`` (ddof = 0,
:data:`POPULATION_EPS` added to the denominator). The force channel has one value per
rollout (the terminal R_F); the energy channel has one value per rollout and trained step (the return G_t),
z-scored across the group at each trained step separately (the K members of a group share their trained
steps). Then

    A = clip(w_F · A_F + w_E · A_E, −c, c).

Degenerate cases get no signal in that channel (advantage 0) and are counted: a group (or group-step) with
fewer than 2 scorable members, or with std ≤ ``min_std`` (all members equal: nothing to prefer). Excluded
members get advantage 0 in that channel (their value never enters any statistic). A (rollout, step) enters
the loss (``in_loss``) only if at least one channel with a positive weight has a value for it; a rollout the
MLFF could not score at all therefore contributes neither policy gradient nor KL.

The rule for groups with unscorable members (one rule, for every reason a member has no reward: an element
the MLFF does not cover, e.g. Br, I, B or P for ANI-2x on GEOM; an odd electron count for a closed-shell MLFF;
a non-finite chain; the stability gate): such a member is *left out*, never scored as 0 or as the group mean.
The group's mean and std are those of its scorable members alone; the left-out member gets no advantage and
no loss term; a group left with fewer than 2 scorable members gives no signal (counted as degenerate). Its
status row (``Rewards.status``: the MLFF's status, e.g. ``unknown_element``) says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Advantages", "group_zscore", "compute_advantages"]

#: a channel whose group std is at or below this counts as degenerate (reward units: eV/Å or eV/atom).
MIN_STD = 1e-8
#: added to the population std in "population" mode (the official code's ``std + 1e-8``).
POPULATION_EPS = 1e-8
STD_MODES = ("sample", "population")


@dataclass
class Advantages:
    """advantage (B, S') mixed and clipped; force (B,) A_F; energy (B, S') A_E; in_loss (B, S') bool;
    counts: degenerate_force_groups, degenerate_energy_group_steps."""

    advantage: np.ndarray
    force: np.ndarray
    energy: np.ndarray
    in_loss: np.ndarray
    counts: dict[str, int] = field(default_factory=dict)


def group_zscore(
    values: np.ndarray, group: np.ndarray, min_std: float = MIN_STD, std_mode: str = "sample"
) -> tuple[np.ndarray, np.ndarray, int]:
    """Z-score each column of ``values`` (B,) or (B, S) within each group, ignoring NaN members.

    std_mode "sample": (v − mean)/std with ddof 1; "population": (v − mean)/(std + 1e-8) with ddof 0.
    Returns (z with 0 where excluded or degenerate, has_signal bool (same shape), number of degenerate
    (group, column) cells). group: (B,) integer labels.
    """
    if std_mode not in STD_MODES:
        raise ValueError(f"std_mode must be one of {STD_MODES}, got {std_mode!r}")
    ddof, eps = (1, 0.0) if std_mode == "sample" else (0, POPULATION_EPS)
    v = np.asarray(values, dtype=np.float64)
    flat = v[:, None] if v.ndim == 1 else v
    z, signal = np.zeros_like(flat), np.zeros(flat.shape, dtype=bool)
    degenerate = 0
    for g in np.unique(group):
        rows = np.flatnonzero(group == g)
        block = flat[rows]
        ok = np.isfinite(block)
        n = ok.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.nansum(block, axis=0) / n
            var = np.nansum((block - mean) ** 2, axis=0) / (n - ddof)
        std = np.sqrt(np.where(n >= 2, var, 0.0))
        good = (n >= 2) & (std > min_std)
        degenerate += int((~good).sum())
        use = ok & good[None, :]
        z[rows] = np.where(use, (block - mean) / np.where(good, std + eps, 1.0), 0.0)
        signal[rows] = use
    if v.ndim == 1:
        return z[:, 0], signal[:, 0], degenerate
    return z, signal, degenerate


def compute_advantages(
    force_reward: np.ndarray,
    energy_return: np.ndarray,
    group: np.ndarray,
    *,
    weight_force: float,
    weight_energy: float,
    clip: float,
    min_std: float = MIN_STD,
    std_mode: str = "sample",
) -> Advantages:
    """Mixed, clipped advantages of B rollouts × S' trained steps (module doc).

    force_reward: (B,) R_F (NaN = excluded); energy_return: (B, S') G_t (NaN = excluded); group: (B,).
    """
    group = np.asarray(group)
    a_f, sig_f, deg_f = group_zscore(force_reward, group, min_std, std_mode)
    a_e, sig_e, deg_e = group_zscore(energy_return, group, min_std, std_mode)
    mixed = np.clip(weight_force * a_f[:, None] + weight_energy * a_e, -clip, clip)
    has_f = np.isfinite(np.asarray(force_reward, dtype=np.float64))[:, None] & (weight_force > 0)
    has_e = np.isfinite(np.asarray(energy_return, dtype=np.float64)) & (weight_energy > 0)
    in_loss = np.broadcast_to(has_f, mixed.shape) | has_e
    counts = {
        "degenerate_force_groups": deg_f,
        "degenerate_energy_group_steps": deg_e,
        "force_signal": int(sig_f.sum()),
        "energy_signal": int(sig_e.sum()),
    }
    return Advantages(mixed, a_f, a_e, in_loss, counts)
