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

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from elign.config import ElignConfig
from elign.data.sizes import resolve_sizes
from elign.io.table import MoleculeTable
from elign.metrics.evaluate import evaluate_table, summarize
from elign.mlff.base import MLFFBackend
from elign.mlff.relax import FireSettings
from elign.rl.rollout import Rollouts
from elign.rl.trainer_state import EVAL_MLFF_COLUMNS
from elign.training.determinism import derive_seed
from elign.training.evaluation import evaluate_weights


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


def evaluate_policy(
    config: ElignConfig,
    model_config: dict,
    weights: Mapping[str, torch.Tensor],
    histogram: Mapping[int, int] | None,
    device: torch.device,
    backend: MLFFBackend,
) -> dict[str, Any]:
    """The run's fresh-sample evaluation of ``weights``: ``finetune.eval_molecules`` molecules whose sizes and
    noise depend only on the config's seed (the same at every evaluation, so evaluations differ only by the
    weights; the backbone's own evaluation is iteration 0 of the curves). Returns the ``eval_*`` columns."""
    fc = config.finetune
    seed, n, spec = derive_seed(config.seed, "finetune/eval"), fc.eval_molecules, fc.sizes
    if isinstance(spec, list):  # the prompts' sizes, in turn
        sizes = [int(spec[i % len(spec)]) for i in range(n)]
    else:
        sizes = resolve_sizes(spec, n, seed, histogram)  # checked at start-up (prompt_sizes)
    relax = FireSettings(max_steps=fc.eval_relax_steps) if fc.eval_relax_steps > 0 else None
    row = evaluate_weights(model_config, weights, sizes, seed, device=device, backend=backend, relax=relax)
    return {**{c: None for c in EVAL_MLFF_COLUMNS}, **row}
