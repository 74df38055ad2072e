"""FED-GRPO rewards from an ML force field: a terminal force reward and potential-based energy shaping.

Everything goes through the MLFF protocol (:class:`elign.mlff.base.MLFFBackend`): atomic numbers (0 =
padding) and positions in Å in, energies in eV and forces in eV/Å out, one status per molecule. This module
never names a backend; :func:`elign.mlff.registry.backend_from_config` builds the one the config asks for.

Force reward (terminal, per rollout), with F_i the MLFF force on atom i of the final molecule x_0::

    R_F = −sqrt( (1/n) Σ_i ‖F_i‖² )          [eV/Å]   (−RMS over atoms of the force norm)

Energy (potential-based reward shaping, Ng et al. 1999): the potential of the state z_t is
Ψ_t = −E_form(ẑ_{0|t}), the MLFF formation energy per atom (eV/atom) of the model's clean prediction at t,
and Ψ_0 = −E_form(x_0) of the final sample. The shaped per-step reward of the action z_t → z_{t−1} is
r_t = Ψ_{t−1} − Ψ_t, so the return-to-go from step t telescopes to

    G_t = Σ_{t' ≤ t} r_{t'} = Ψ_0 − Ψ_t = E_form(ẑ_{0|t}) − E_form(x_0)     [eV/atom].

Ψ is evaluated at every ``energy_every``-th trained step of a rollout (slots 0, E, 2E, … of its trained
steps in sampling order, i.e. t descending) and at the end. A trained step between two evaluated ones takes
the G of the nearest evaluated step *at or before it in sampling order* (the evaluated slot ⌊j/E⌋·E, at a
larger or equal t): the potential is held piecewise constant from the last evaluation, which is what a
sparse evaluation of Ψ can know at that point of the chain without looking ahead.

Exclusions (never a made-up number; each is counted):

* a final molecule the MLFF cannot score (status not ok, including chains that went non-finite) gets no
  force reward and no energy returns (NaN): it is left out of its group's statistics in both channels;
* a ẑ_{0|t} the MLFF cannot score leaves that step's G (and the steps that inherit it) NaN;
* ``stable_only``: a final molecule that is not EDM-stable gets no force reward (NaN, force channel only);
* ``invalid_penalty`` = p: an RDKit-invalid (but scorable) final molecule gets R_F − p (force channel only,
  the terminal reward), counted as penalised;
* ``unstable_penalty`` = q: a scorable final molecule that is not EDM-stable (an atom with the wrong valence)
  gets R_F − q, counted as penalised. Lowering forces alone can move atoms to where valences break (on
  ``qm9-small`` the force reward alone costs molecule stability); q keeps the valence rules in the reward;
* ``novelty_penalty`` = u (the official code's ``filters.penalty_scale``, 0.5 in its paper config): a scorable
  final molecule that is RDKit-invalid or whose canonical SMILES is in the training split gets R_F − u;
* ``penalties_in_energy``: the penalties of a scorable molecule are also subtracted from its Ψ_0, so every
  return G_t = Ψ_0 − Ψ_t carries them. The official code adds its penalties to the terminal reward of every
  channel; with G_t a return-to-go, that is the same as lowering Ψ_0. Penalties sum when several apply.

The two channels are the registered rewards ``force`` and ``energy`` (:mod:`elign.rl.reward_registry`): each a
function of a :class:`RewardBatch` (the iteration's rollouts, with the MLFF's score of the final molecules and the
gates computed once and shared) returning values and a status per rollout. :func:`compute_rewards` runs them and
any further rewards the config names (``finetune.extra_rewards``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from elign.io.table import MoleculeTable
from elign.metrics.chemistry import evaluate_chemistry
from elign.metrics.evaluate import force_rms
from elign.metrics.stability import check_stability
from elign.mlff.base import MLFFBackend
from elign.rl.advantages import Channel
from elign.rl.reward_registry import RewardValues, register_reward, score_reward
from elign.rl.rollout import Rollouts

__all__ = [
    "Penalties",
    "Rewards",
    "RewardBatch",
    "compute_rewards",
    "reward_channels",
    "energy_slots",
    "returns_to_go",
    "force_reward",
    "final_table",
]


@dataclass
class Rewards:
    """Per-rollout rewards of one iteration (B rollouts, S' trained steps each).

    force_rms: (B,) eV/Å of the final molecule, NaN where unscorable; force_reward: (B,) R_F (after gates
    and penalty), NaN where excluded from the force channel; formation_final: (B,) eV/atom, NaN where
    unscorable; potential: (B, S') Ψ_t at the trained slots (NaN where not evaluated or unscorable);
    energy_return: (B, S') G_t, NaN where unknown; final_ok: (B,) bool; counts: exclusion counters;
    seconds: wall time spent in the MLFF and the gates; status, reason: (B,) the status row of each final
    molecule ("ok", the MLFF's failure status such as ``unknown_element``, or ``non_finite_rollout``);
    channels: every reward computed, by name (``force``, ``energy`` and the extra ones), with its own statuses.
    """

    force_rms: np.ndarray
    force_reward: np.ndarray
    formation_final: np.ndarray
    potential: np.ndarray
    energy_return: np.ndarray
    final_ok: np.ndarray
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    status: np.ndarray | None = None  # (B,) "ok" or why the final molecule has no reward (the MLFF's status)
    reason: np.ndarray | None = None  # (B,) "" where ok
    channels: dict[str, RewardValues] = field(default_factory=dict)


def force_reward(forces_ev_per_ang: np.ndarray, num_atoms: np.ndarray) -> np.ndarray:
    """(B,) R_F = −RMS over atoms of ‖F_i‖ in eV/Å (forces (B, N, 3) eV/Å, zero at padding)."""
    return -force_rms(forces_ev_per_ang, num_atoms)[0]


def energy_slots(num_trained: int, energy_every: int) -> tuple[np.ndarray, np.ndarray]:
    """(evaluated slots, source slot of every slot): slots 0, E, 2E, … are evaluated; slot j takes the
    value of slot ⌊j/E⌋·E (the nearest evaluated slot at or before it in sampling order)."""
    slots = np.arange(0, num_trained, energy_every)
    return slots, (np.arange(num_trained) // energy_every) * energy_every


def returns_to_go(potential_eval: np.ndarray, potential_final: np.ndarray, energy_every: int) -> np.ndarray:
    """G (B, S') = Ψ_0 − Ψ_t at every slot from Ψ at the evaluated slots (B, S') (other entries ignored).

    potential_final: (B,) Ψ_0. NaN propagates (an unscorable Ψ gives an unknown G).
    """
    _, source = energy_slots(potential_eval.shape[1], energy_every)
    return potential_final[:, None] - potential_eval[:, source]


def final_table(numbers: np.ndarray, x_ang: np.ndarray, rows: np.ndarray) -> MoleculeTable:
    """MoleculeTable of the final molecules ``rows`` (padded (B, N) numbers with 0 = padding, (B, N, 3) Å)."""
    zs = [numbers[b][numbers[b] > 0] for b in rows]
    xs = [x_ang[b][numbers[b] > 0] for b in rows]
    n = [len(z) for z in zs]
    cat = lambda a, shape: np.concatenate(a) if a else np.zeros(shape)
    return MoleculeTable(
        np.asarray(rows, dtype=np.int64), n, cat(zs, (0,)), cat(xs, (0, 3)), np.full(len(rows), None, dtype=object)
    )


@dataclass(frozen=True)
class Penalties:
    """The terminal gates and penalties of ``finetune`` (module doc); None = off."""

    stable_only: bool = False
    invalid_penalty: float | None = None
    unstable_penalty: float | None = None
    novelty_penalty: float | None = None
    training_keys: frozenset[str] | None = None
    in_energy: bool = False

    @property
    def active(self) -> bool:
        return self.stable_only or any(
            v is not None for v in (self.invalid_penalty, self.unstable_penalty, self.novelty_penalty)
        )


def _flags(numbers, x_ang, rows, pen: Penalties) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(unstable, invalid, seen) of the final molecules ``rows``: EDM-unstable, RDKit-invalid, and invalid or
    in the training split (not novel). ``seen`` is all-false without a novelty penalty."""
    table = final_table(numbers, x_ang, rows)
    stab = check_stability(table)
    need_chem = pen.invalid_penalty is not None or pen.novelty_penalty is not None
    keys = pen.training_keys if pen.novelty_penalty is not None else None
    chem = evaluate_chemistry(table, stab.bonds, keys) if need_chem else None
    invalid = ~chem.valid if chem is not None else np.zeros(len(rows), dtype=bool)
    seen = ~chem.novel if keys is not None else np.zeros(len(rows), dtype=bool)
    return ~stab.molecule_stable, invalid, seen


def _gate(numbers, x_ang, ok, reward, pen: Penalties, counts) -> tuple[np.ndarray, np.ndarray]:
    """Apply the stability gate and the penalties to the scorable final molecules.

    Returns (force reward (B,), energy penalty (B,): the sum of the penalties of each scorable molecule, which
    ``Penalties.in_energy`` subtracts from Ψ_0; zeros otherwise)."""
    reward, energy_penalty = reward.copy(), np.zeros(len(reward))
    rows = np.flatnonzero(ok)
    counts.update(unstable_excluded=0, invalid_penalized=0, unstable_penalized=0, novelty_penalized=0)
    if len(rows) == 0 or not pen.active:
        return reward, energy_penalty
    unstable_f, invalid_f, seen_f = _flags(numbers, x_ang, rows, pen)
    unstable = rows[unstable_f]
    if pen.stable_only:
        reward[unstable] = np.nan
        counts["unstable_excluded"] = int(len(unstable))
    for name, value, hit in (
        ("unstable_penalized", pen.unstable_penalty, unstable),
        ("invalid_penalized", pen.invalid_penalty, rows[invalid_f]),
        ("novelty_penalized", pen.novelty_penalty, rows[seen_f]),
    ):
        if value is None:
            continue
        penalized = hit[np.isfinite(reward[hit])]
        reward[penalized] -= float(value)
        energy_penalty[hit] += float(value)
        counts[name] = int(len(penalized))
    return reward, (energy_penalty if pen.in_energy else np.zeros(len(reward)))


def _potentials(
    rollouts: Rollouts, trained: np.ndarray, backend: MLFFBackend, energy_every: int, counts: dict
) -> np.ndarray:
    """Ψ (B, S') = −E_form(ẑ_{0|t}) at the evaluated trained slots (NaN elsewhere and where unscorable)."""
    b_count, n_slots = trained.shape
    slots, _ = energy_slots(n_slots, energy_every)
    rows = np.repeat(np.arange(b_count), len(slots))
    steps = trained[rows, np.tile(slots, b_count)]
    z_of = rollouts.type_numbers.cpu().numpy()
    types = rollouts.x0_types[rows, steps].cpu().numpy()
    numbers = np.where(types >= 0, z_of[np.clip(types, 0, None)], 0)
    result = backend.energies(numbers, rollouts.x0_ang[rows, steps].double().cpu().numpy())
    psi = np.full((b_count, n_slots), np.nan)
    psi[rows, np.tile(slots, b_count)] = -result.formation_energy_per_atom_ev
    counts["energy_failures"] = int((~result.ok).sum())
    counts["energy_evaluations"] = int(len(rows))
    return psi


@dataclass
class FinalScore:
    """The MLFF's score of the final molecules, computed once per iteration and shared by the rewards.

    ok: (B,) scored and the chain stayed finite; force_rms (B,) eV/Å and formation (B,) eV/atom, NaN where not
    ok; status, reason: (B,) the MLFF's status (``non_finite_rollout`` where the chain went non-finite);
    gated_force: (B,) R_F after the gates and penalties; energy_penalty: (B,) what ``Penalties.in_energy``
    subtracts from Ψ_0 (zeros otherwise); counts: failures and the gates' counters.
    """

    ok: np.ndarray
    force_rms: np.ndarray
    formation: np.ndarray
    status: np.ndarray
    reason: np.ndarray
    gated_force: np.ndarray
    energy_penalty: np.ndarray
    counts: dict[str, int]


@dataclass
class RewardBatch:
    """What every reward sees of one iteration (:mod:`elign.rl.reward_registry`).

    rollouts; trained: (B, S') branched-step indices trained per rollout; backend: the MLFF; energy_every and
    penalties: the settings of FED-GRPO's channels. ``numbers`` (B, N) int64 (0 = padding), ``x_ang`` (B, N, 3)
    Å and ``finite`` (B,) describe the final molecules; :meth:`final` is the MLFF's score of them.
    """

    rollouts: Rollouts
    trained: np.ndarray
    backend: MLFFBackend
    energy_every: int = 1
    penalties: Penalties = field(default_factory=Penalties)
    _final: FinalScore | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.numbers = self.rollouts.final_numbers.cpu().numpy().astype(np.int64)
        self.x_ang = self.rollouts.final_x_ang.double().cpu().numpy()
        self.finite = self.rollouts.finite.cpu().numpy()

    @property
    def num_rollouts(self) -> int:
        return self.rollouts.num_rollouts

    @property
    def num_trained(self) -> int:
        return int(self.trained.shape[1])

    def final_table(self, rows: np.ndarray) -> MoleculeTable:
        """The final molecules ``rows`` as a MoleculeTable (rows of finite chains only: others are NaN)."""
        return final_table(self.numbers, self.x_ang, rows)

    def final(self) -> FinalScore:
        """The MLFF's score of the final molecules and the gates (one MLFF call per iteration)."""
        if self._final is None:
            final = self.backend.evaluate(self.numbers, self.x_ang)
            ok = final.ok & self.finite
            rms = np.where(ok, force_rms(final.forces_ev_per_ang, final.num_atoms)[0], np.nan)
            counts = {"mlff_failures": int((~ok).sum()), "nonfinite_rollouts": int((~self.rollouts.finite).sum())}
            reward, energy_penalty = _gate(self.numbers, self.x_ang, ok, -rms, self.penalties, counts)
            formation = np.where(ok, final.formation_energy_per_atom_ev, np.nan)
            status, reason = final.status.astype(object), final.reason.astype(object)
            chain_bad = ~self.finite
            status[chain_bad], reason[chain_bad] = "non_finite_rollout", "the reverse chain went non-finite"
            counts["unknown_element"] = int((status == "unknown_element").sum())
            self._final = FinalScore(ok, rms, formation, status, reason, reward, energy_penalty, counts)
        return self._final


@register_reward("force")
def force_channel(batch: RewardBatch) -> RewardValues:
    """R_F = −RMS force of the final molecule after the gates and penalties (module doc); terminal."""
    final = batch.final()
    reward = final.gated_force
    status, reason = final.status.copy(), final.reason.copy()
    gated = final.ok & ~np.isfinite(reward)
    why = ("unstable_excluded", "not EDM-stable (finetune.stable_only)") if batch.penalties.stable_only else None
    status[gated], reason[gated] = why or ("non_finite", "the force reward is not finite")
    return RewardValues(reward, status, reason, {"force_excluded": int((~np.isfinite(reward)).sum())})


@register_reward("energy")
def energy_channel(batch: RewardBatch) -> RewardValues:
    """G_t = Ψ_0 − Ψ_t, the PBRS return-to-go of the formation energy per atom (module doc); per trained step."""
    final, counts = batch.final(), {}
    psi = _potentials(batch.rollouts, batch.trained, batch.backend, batch.energy_every, counts)
    psi_final = -final.formation - final.energy_penalty if batch.penalties.in_energy else -final.formation
    returns = returns_to_go(psi, psi_final, batch.energy_every)
    counts["energy_excluded_steps"] = int((~np.isfinite(returns)).sum())
    return RewardValues(returns, final.status.copy(), final.reason.copy(), counts, {"potential": psi})


def compute_rewards(
    rollouts: Rollouts,
    trained: np.ndarray,
    backend: MLFFBackend,
    *,
    energy_every: int,
    penalties: Penalties | None = None,
    extra: Sequence[str] = (),
) -> Rewards:
    """FED-GRPO's force rewards and energy returns of one iteration's rollouts (module doc), and the rewards
    named in ``extra`` (registered with :func:`elign.rl.reward_registry.register_reward`) in ``channels``.

    trained: (B, S') branched-step indices trained for each rollout (ascending = sampling order).
    """
    penalties = Penalties() if penalties is None else penalties
    t0 = time.perf_counter()
    batch = RewardBatch(rollouts, trained, backend, energy_every, penalties)
    channels = {name: score_reward(name, batch) for name in dict.fromkeys(("force", "energy", *extra))}
    final = batch.final()
    counts = dict(final.counts)
    for values in channels.values():
        counts.update(values.counts)
    force, energy = channels["force"], channels["energy"]
    seconds = time.perf_counter() - t0
    return Rewards(
        final.force_rms,
        force.values,
        final.formation,
        energy.details["potential"],
        energy.values,
        final.ok,
        counts,
        seconds,
        final.status,
        final.reason,
        channels,
    )


def reward_channels(rewards: Rewards, fc: Any) -> list[Channel]:
    """The advantage's channels from ``finetune`` (``fc``): force (weight_force) and energy (weight_energy), z-scored
    with ``group_std``, then each of ``extra_rewards`` with its weight and normalization."""
    channels = [
        Channel("force", rewards.force_reward, fc.weight_force),
        Channel("energy", rewards.energy_return, fc.weight_energy),
    ]
    for spec in fc.extra_rewards:
        channels.append(Channel(spec.name, rewards.channels[spec.name].values, spec.weight, spec.normalize))
    return channels
