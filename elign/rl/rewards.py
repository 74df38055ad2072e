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
  ``qm9-small`` the force reward alone costs molecule stability); q keeps the valence rules in the reward.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from elign.io.table import MoleculeTable
from elign.metrics.chemistry import evaluate_chemistry
from elign.metrics.evaluate import force_rms
from elign.metrics.stability import check_stability
from elign.mlff.base import MLFFBackend
from elign.rl.rollout import Rollouts

__all__ = ["Rewards", "compute_rewards", "energy_slots", "returns_to_go", "force_reward", "final_table"]


@dataclass
class Rewards:
    """Per-rollout rewards of one iteration (B rollouts, S' trained steps each).

    force_rms: (B,) eV/Å of the final molecule, NaN where unscorable; force_reward: (B,) R_F (after gates
    and penalty), NaN where excluded from the force channel; formation_final: (B,) eV/atom, NaN where
    unscorable; potential: (B, S') Ψ_t at the trained slots (NaN where not evaluated or unscorable);
    energy_return: (B, S') G_t, NaN where unknown; final_ok: (B,) bool; counts: exclusion counters;
    seconds: wall time spent in the MLFF and the gates; status, reason: (B,) the status row of each final
    molecule ("ok", the MLFF's failure status such as ``unknown_element``, or ``non_finite_rollout``).
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


def _gate(numbers, x_ang, ok, reward, stable_only, invalid_penalty, counts, unstable_penalty=None) -> np.ndarray:
    """Apply the optional stability gate, instability penalty and invalidity penalty to the scorable final
    molecules."""
    reward = reward.copy()
    rows = np.flatnonzero(ok)
    counts.update(unstable_excluded=0, invalid_penalized=0, unstable_penalized=0)
    if len(rows) == 0 or (not stable_only and invalid_penalty is None and unstable_penalty is None):
        return reward
    table = final_table(numbers, x_ang, rows)
    stab = check_stability(table)
    unstable = rows[~stab.molecule_stable]
    if stable_only:
        reward[unstable] = np.nan
        counts["unstable_excluded"] = int(len(unstable))
    if unstable_penalty is not None:
        penalized = unstable[np.isfinite(reward[unstable])]
        reward[penalized] -= float(unstable_penalty)
        counts["unstable_penalized"] = int(len(penalized))
    if invalid_penalty is not None:
        invalid = rows[~evaluate_chemistry(table, stab.bonds).valid]
        invalid = invalid[np.isfinite(reward[invalid])]
        reward[invalid] -= float(invalid_penalty)
        counts["invalid_penalized"] = int(len(invalid))
    return reward


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
    result = backend.evaluate(numbers, rollouts.x0_ang[rows, steps].double().cpu().numpy())
    psi = np.full((b_count, n_slots), np.nan)
    psi[rows, np.tile(slots, b_count)] = -result.formation_energy_per_atom_ev
    counts["energy_failures"] = int((~result.ok).sum())
    counts["energy_evaluations"] = int(len(rows))
    return psi


def compute_rewards(
    rollouts: Rollouts,
    trained: np.ndarray,
    backend: MLFFBackend,
    *,
    energy_every: int,
    stable_only: bool = False,
    invalid_penalty: float | None = None,
    unstable_penalty: float | None = None,
) -> Rewards:
    """Force rewards and energy returns of one iteration's rollouts (module doc).

    trained: (B, S') branched-step indices trained for each rollout (ascending = sampling order).
    """
    t0 = time.perf_counter()
    numbers = rollouts.final_numbers.cpu().numpy().astype(np.int64)
    x_ang = rollouts.final_x_ang.double().cpu().numpy()
    final = backend.evaluate(numbers, x_ang)
    ok = final.ok & rollouts.finite.cpu().numpy()
    rms = np.where(ok, force_rms(final.forces_ev_per_ang, final.num_atoms)[0], np.nan)
    counts = {"mlff_failures": int((~ok).sum()), "nonfinite_rollouts": int((~rollouts.finite).sum())}
    reward = _gate(numbers, x_ang, ok, -rms, stable_only, invalid_penalty, counts, unstable_penalty)
    formation = np.where(ok, final.formation_energy_per_atom_ev, np.nan)
    psi = _potentials(rollouts, trained, backend, energy_every, counts)
    returns = returns_to_go(psi, -formation, energy_every)
    counts["force_excluded"] = int((~np.isfinite(reward)).sum())
    counts["energy_excluded_steps"] = int((~np.isfinite(returns)).sum())
    status, reason = final.status.astype(object), final.reason.astype(object)
    chain_bad = ~rollouts.finite.cpu().numpy()
    status[chain_bad], reason[chain_bad] = "non_finite_rollout", "the reverse chain went non-finite"
    counts["unknown_element"] = int((status == "unknown_element").sum())
    seconds = time.perf_counter() - t0
    return Rewards(rms, reward, formation, psi, returns, ok, counts, seconds, status, reason)
