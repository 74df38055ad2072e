"""FED-GRPO advantages: reward channels (force, energy, and any ``finetune.extra_rewards``) normalized
separately within each group, then mixed. FED-GRPO's force and energy channels are z-scored:

For group g (the K rollouts of one prompt) and a channel with values v (NaN = excluded member):

    A_i = (v_i − mean_g(v)) / std_g(v)         over the group's scorable members only,

with the unbiased sample std (ddof = 1, as GRPO implementations use) by default, or, with
``finetune.group_std: population``, the official Elign code's ``(v − mean) / (std_pop + 1e-8)`` (ddof = 0,
:data:`POPULATION_EPS` added to the denominator). The force channel has one value per
rollout (the terminal R_F); the energy channel has one value per rollout and trained step (the return G_t),
z-scored across the group at each trained step separately (the K members of a group share their trained
steps). Then

    A = clip(w_F · A_F + w_E · A_E, −c, c)    (+ w_c · A_c for each extra channel c, :func:`mix_advantages`).

An extra channel is normalized as its config says (:data:`NORMALIZE_MODES`): ``zscore`` as above, ``center``
(v − group mean, no division; degenerate below 2 members) or ``none`` (the values themselves).

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

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Advantages", "Channel", "group_zscore", "group_center", "mix_advantages", "compute_advantages"]

#: a channel whose group std is at or below this counts as degenerate (reward units: eV/Å or eV/atom).
MIN_STD = 1e-8
#: added to the population std in "population" mode (the official code's ``std + 1e-8``).
POPULATION_EPS = 1e-8
STD_MODES = ("sample", "population")
#: how a channel is normalized within its group (``finetune.extra_rewards[].normalize``)
NORMALIZE_MODES = ("zscore", "center", "none")


@dataclass
class Advantages:
    """advantage (B, S') mixed and clipped; channels: each reward's normalized advantage by name ((B,) for a
    terminal reward, (B, S') per step; ``force`` = A_F, ``energy`` = A_E); in_loss (B, S') bool; counts:
    degenerate_<name>_groups (terminal) or degenerate_<name>_group_steps (per step), and <name>_signal."""

    advantage: np.ndarray
    channels: dict[str, np.ndarray]
    in_loss: np.ndarray
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def force(self) -> np.ndarray:
        return self.channels["force"]

    @property
    def energy(self) -> np.ndarray:
        return self.channels["energy"]


@dataclass(frozen=True)
class Channel:
    """One reward in the advantage: values (B,) terminal or (B, S') per trained step, NaN = no value; its
    weight; how it is normalized within each group (:data:`NORMALIZE_MODES`)."""

    name: str
    values: np.ndarray
    weight: float
    normalize: str = "zscore"


def _by_group(values: np.ndarray, group: np.ndarray, normalize) -> tuple[np.ndarray, np.ndarray, int]:
    """The loop shared by the group normalizations. For each group, ``normalize(block, ok, n)`` (the group's
    rows, which of them have a value, how many per column) gives the normalized block and the columns with a
    signal; members without a value and columns without a signal get 0. Returns (normalized, has_signal,
    number of (group, column) cells without a signal), in the shape of ``values`` (B,) or (B, S)."""
    v = np.asarray(values, dtype=np.float64)
    flat = v[:, None] if v.ndim == 1 else v
    out, signal, degenerate = np.zeros_like(flat), np.zeros(flat.shape, dtype=bool), 0
    for g in np.unique(group):
        rows = np.flatnonzero(group == g)
        block = flat[rows]
        ok = np.isfinite(block)
        with np.errstate(invalid="ignore", divide="ignore"):
            normalized, good = normalize(block, ok, ok.sum(axis=0))
        degenerate += int((~good).sum())
        use = ok & good[None, :]
        out[rows] = np.where(use, normalized, 0.0)
        signal[rows] = use
    return (out[:, 0], signal[:, 0], degenerate) if v.ndim == 1 else (out, signal, degenerate)


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

    def zscore(block, ok, n):
        mean = np.nansum(block, axis=0) / n
        var = np.nansum((block - mean) ** 2, axis=0) / (n - ddof)
        std = np.sqrt(np.where(n >= 2, var, 0.0))
        good = (n >= 2) & (std > min_std)
        return (block - mean) / np.where(good, std + eps, 1.0), good

    return _by_group(values, group, zscore)


def group_center(values: np.ndarray, group: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """v − mean_g(v) over each group's members with a value (NaN = excluded), per column; (centred values, 0
    where excluded or degenerate; has_signal; number of degenerate (group, column) cells: fewer than 2 members)."""

    def center(block, ok, n):
        return block - np.nansum(np.where(ok, block, 0.0), axis=0) / n, n >= 2

    return _by_group(values, group, center)


def normalize_channel(
    values: np.ndarray, group: np.ndarray, mode: str, min_std: float = MIN_STD, std_mode: str = "sample"
) -> tuple[np.ndarray, np.ndarray, int]:
    """(advantage, has_signal, degenerate cells) of one channel: ``zscore`` (:func:`group_zscore`, the GRPO and
    FED-GRPO rule), ``center`` (:func:`group_center`: v − group mean, no division), ``none`` (the values as they
    are; excluded members 0)."""
    if mode == "zscore":
        return group_zscore(values, group, min_std, std_mode)
    if mode == "center":
        return group_center(values, group)
    if mode == "none":
        v = np.asarray(values, dtype=np.float64)
        ok = np.isfinite(v)
        return np.where(ok, v, 0.0), ok, 0
    raise ValueError(f"normalize must be one of {NORMALIZE_MODES}, got {mode!r}")


def mix_advantages(
    channels: Sequence[Channel],
    group: np.ndarray,
    num_steps: int,
    *,
    clip: float,
    min_std: float = MIN_STD,
    std_mode: str = "sample",
) -> Advantages:
    """A = clip(Σ_c w_c · A_c, −clip, clip) over the reward channels, each normalized within its groups
    (module doc); (B, S') with S' = ``num_steps`` (a terminal channel's A_c applies to every step)."""
    if not channels:
        raise ValueError("no reward channel")
    group = np.asarray(group)
    b = len(group)
    mixed, in_loss, per_channel, counts = None, np.zeros((b, num_steps), dtype=bool), {}, {}
    for ch in channels:
        a, signal, degenerate = normalize_channel(ch.values, group, ch.normalize, min_std, std_mode)
        terminal = a.ndim == 1
        term = ch.weight * (a[:, None] if terminal else a)
        mixed = term if mixed is None else mixed + term
        has = np.isfinite(np.asarray(ch.values, dtype=np.float64)) & (ch.weight > 0)
        in_loss = in_loss | np.broadcast_to(has[:, None] if terminal else has, (b, num_steps))
        per_channel[ch.name] = a
        counts[f"degenerate_{ch.name}_{'groups' if terminal else 'group_steps'}"] = degenerate
        counts[f"{ch.name}_signal"] = int(signal.sum())
    mixed = np.clip(np.broadcast_to(mixed, (b, num_steps)), -clip, clip)
    return Advantages(mixed, per_channel, in_loss, counts)


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
    """FED-GRPO's two channels mixed and clipped (module doc): :func:`mix_advantages` of the force and energy
    channels. force_reward: (B,) R_F (NaN = excluded); energy_return: (B, S') G_t (NaN = excluded); group: (B,).
    """
    channels = [Channel("force", force_reward, weight_force), Channel("energy", energy_return, weight_energy)]
    steps = np.asarray(energy_return).shape[1]
    return mix_advantages(channels, group, steps, clip=clip, min_std=min_std, std_mode=std_mode)
