"""Diversity and chemistry while aligning: does FED-GRPO trade uniqueness for reward?

RL post-training of molecule diffusion is known to collapse diversity: a published RL fine-tune of EDM on
QM9 lifted molecule stability from about 0.86 to 0.95 while uniqueness fell to 0.59-0.84 (EDPO; see the
issue tracker's issue 13). Two records in ``finetune_history.parquet`` watch for it:

* every iteration, the **rollouts' own** final molecules (the B = prompts x K chains of the iteration,
  before its update): ``rollout_molecule_stability``, ``rollout_validity`` (RDKit) and ``rollout_uniqueness``
  (distinct canonical SMILES among the valid ones). A group's K members share ``shared_prefix_steps`` of T
  steps, so this uniqueness is bounded by what the branched suffix can change: a fall against its own
  early values is the signal, not its level;
* every ``finetune.eval_every`` iterations (and after the last), **fresh samples** of the current policy
  (:func:`elign.training.evaluation.evaluate_weights`: the full chain, independent noise, the same sizes and
  seed every time, so evaluations differ only by the weights): ``eval_*`` columns, as pretraining records.

Both use :mod:`elign.metrics` (EDM's stability, RDKit validity and uniqueness), the same code as the
evaluate stage.
"""

from __future__ import annotations

import numpy as np

from elign.io.table import MoleculeTable
from elign.metrics.evaluate import evaluate_table, summarize
from elign.rl.rollout import Rollouts


def rollout_table(ro: Rollouts) -> MoleculeTable:
    """The rollouts' final molecules (B rows; a chain that went non-finite gets status "nan")."""
    numbers = ro.final_numbers.cpu().numpy()
    positions = ro.final_x_ang.detach().cpu().double().numpy()
    finite = ro.finite.cpu().numpy()
    real = numbers > 0
    sizes = real.sum(axis=1)
    positions = np.where(finite[:, None, None], positions, 0.0)  # non-finite rows: placeholder, marked below
    return MoleculeTable(
        mol_id=np.arange(len(numbers), dtype=np.int64),
        num_atoms=sizes,
        atomic_numbers=numbers[real],
        positions_ang=positions[real],
        smiles=np.full(len(numbers), None, dtype=object),
        columns={"status": np.where(finite, "ok", "nan").astype(object)},
    )


def rollout_quality(ro: Rollouts) -> dict[str, float]:
    """Molecule stability, validity and uniqueness of the rollouts' final molecules (fractions; NaN-free
    except uniqueness without any valid molecule)."""
    summary = summarize(evaluate_table(rollout_table(ro), None, None), "rollouts")
    return {
        "rollout_molecule_stability": float(summary["molecule_stability"]),
        "rollout_validity": float(summary["validity"]),
        "rollout_uniqueness": float(summary["uniqueness"]),
    }


def evaluation_due(iteration: int, total: int, every: int | None) -> bool:
    """Whether the fresh-sample evaluation runs after 1-based ``iteration`` of ``total``."""
    return every is not None and (iteration % every == 0 or iteration == total)
