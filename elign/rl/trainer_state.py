"""FED-GRPO run state on disk: resumable checkpoints and ``finetune_history.parquet``.

The same checkpoint/resume implementation as pretraining (:mod:`elign.training.checkpointing`): ``out`` is
the final checkpoint; ``<out>.partial`` is written every ``finetune.checkpoint_every`` iterations and is the
resume file (the restart continues from it, or from ``out`` if that is further along, and reaches the same
final weights); it is deleted once ``out`` is written. Both are our checkpoint format, with the *input*
model's ``model_config`` (same architecture, same sampling cost), the policy weights as ``state_dict`` and
the EMA of the policy (or None) as ``ema_state_dict``, so ``load_model(out)`` gives the aligned model.
``extra`` layout::

    {"stage": "finetune", "finished": bool, "iteration": int (iterations done), "seconds": float,
     "optimizer": AdamW state_dict, "rng": {"torch": ByteTensor, "cuda": [...]},
     "history": {column: [values]}, "config": ElignConfig dump, "seed": int,
     "input": {"path": str, "sha256": str}, "size_histogram": {size: count} | None, "provenance": {...}}

Every random draw of iteration i (prompt sizes, rollout noise, trained-step subsets) comes from generators
seeded by (seed, i), so the saved RNG states are kept for the record only: a resumed run redraws exactly
what the killed one would have drawn.

History columns (one row per iteration; units in the names where they have one): see HISTORY_TYPES.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from elign.config import ConfigError
from elign.training import checkpointing as ckpt_io
from elign.training.checkpointing import Resume

__all__ = [
    "HISTORY_TYPES",
    "HISTORY_COLUMNS",
    "find_resume",
    "check_resume_compatible",
    "write_history",
    "empty_history",
    "RESUMABLE_CHANGES",
    "EVAL_MLFF_COLUMNS",
]

_I, _F = pa.int64(), pa.float64()
HISTORY_TYPES: dict[str, pa.DataType] = {
    "iteration": _I,  # 1-based iteration just finished
    "num_rollouts": _I,
    "mean_num_atoms": _F,
    "force_rms_mean_ev_per_ang": _F,  # over the iteration's scorable final molecules (before the update)
    "force_rms_median_ev_per_ang": _F,
    "formation_energy_mean_ev_per_atom": _F,
    "force_reward_mean": _F,
    "energy_return_mean_ev_per_atom": _F,
    "advantage_mean": _F,
    "advantage_std": _F,
    "advantage_min": _F,
    "advantage_max": _F,
    "ratio_mean": _F,
    "ratio_min": _F,
    "ratio_max": _F,
    "clip_fraction": _F,
    "kl_ref": _F,
    "approx_kl_old": _F,
    "surrogate": _F,
    "loss": _F,
    "grad_norm": _F,
    "lr": _F,  # the rate of the iteration's last optimizer step
    "optimizer_steps": _I,  # cumulative AdamW steps (one per micro-batch and pass)
    "trained_pairs": _I,  # (rollout, step) pairs in the loss, per epoch
    "mlff_failures": _I,  # final molecules the MLFF could not score (incl. non-finite chains)
    "mlff_unknown_element": _I,  # of those, with an element the MLFF does not cover (e.g. Br for ANI-2x)
    "excluded": _I,  # rollouts without a force reward (MLFF failure or stability gate)
    "unstable_excluded": _I,
    "invalid_penalized": _I,
    "novelty_penalized": _I,  # rollouts penalised as RDKit-invalid or seen in the training split
    "unstable_penalized": _I,
    "nonfinite_rollouts": _I,
    "energy_failures": _I,  # ẑ_{0|t} evaluations the MLFF could not score
    "energy_excluded_steps": _I,  # (rollout, trained step) pairs without an energy return
    "degenerate_force_groups": _I,
    "degenerate_energy_group_steps": _I,
    "rollout_molecule_stability": _F,  # the iteration's rollouts (elign.rl.quality)
    "rollout_validity": _F,
    "rollout_uniqueness": _F,
    "rollout_seconds": _F,
    "reward_seconds": _F,
    "update_seconds": _F,
    "seconds": _F,  # cumulative wall time of the run (evaluations not counted)
    # fresh samples every finetune.eval_every iterations (null on other rows; elign.rl.quality)
    "eval_molecules": _I,
    "eval_atom_stability": _F,
    "eval_molecule_stability": _F,
    "eval_validity": _F,
    "eval_uniqueness": _F,
    "eval_seconds": _F,
    "eval_force_rms_mean_ev_per_ang": _F,  # MLFF (finetune.mlff) force RMS of the fresh samples
    "eval_relaxation_energy_mean_kcal_mol": _F,  # their FIRE relaxation energy (finetune.eval_relax_steps)
}
#: MLFF columns of the fresh-sample evaluations (elign.training.evaluation.evaluate_weights with a backend)
EVAL_MLFF_COLUMNS = ("eval_force_rms_mean_ev_per_ang", "eval_relaxation_energy_mean_kcal_mol")
HISTORY_COLUMNS = tuple(HISTORY_TYPES)
#: finetune keys that may change between a run and its resumption (they do not change the trajectory).
RESUMABLE_CHANGES = (
    "iterations",
    "checkpoint_every",
    "device",
    "eval_every",
    "eval_molecules",
    "eval_relax_steps",
    "source",  # only kind 'train' trains; a checkpoint written before the key existed resumes
)


def empty_history() -> dict[str, list]:
    return {c: [] for c in HISTORY_COLUMNS}


def restore_history(saved: dict[str, list]) -> dict[str, list]:
    """A checkpoint's history with every current column (nulls for columns an older version did not write)."""
    rows = len(saved["iteration"])
    return {c: list(saved[c]) if c in saved else [None] * rows for c in HISTORY_COLUMNS}


def find_resume(out: str | Path) -> Resume | None:
    """``<out>.partial`` or ``<out>``, whichever has more iterations; None if neither exists."""
    return ckpt_io.find_resume(out, "finetune", "iteration", "finetune")


#: finetune keys added after runs were checkpointed: a checkpoint without one was written with its default
ADDED_KEYS: dict[str, Any] = {"extra_rewards": [], "max_batch_edges": None}


def trajectory_config(config: dict) -> dict:
    ft = {k: v for k, v in config.get("finetune", {}).items() if k not in RESUMABLE_CHANGES}
    for key, default in ADDED_KEYS.items():
        ft.setdefault(key, default)
    if isinstance(ft.get("mlff"), dict):  # the MLFF's device does not change what it computes
        ft["mlff"] = {k: v for k, v in ft["mlff"].items() if k != "device"}
    return {
        "seed": config.get("seed"),
        "finetune": ft,
        "sample.use_ema": config.get("sample", {}).get("use_ema"),
    }  # picks the starting weights


def check_resume_compatible(extra: dict, config: dict, input_id: dict, histogram: Any, path: Path) -> None:
    """ConfigError if the checkpoint came from another config, another input model or another histogram."""
    ckpt_io.check_trajectory(
        extra.get("config", {}), config, trajectory_config, path, "finetune." + ", finetune.".join(RESUMABLE_CHANGES)
    )
    if extra.get("input", {}).get("sha256") != input_id["sha256"]:
        raise ConfigError(
            f"cannot resume from {path}: it was fine-tuned from another model than "
            f"{input_id['path']}. Delete it to start over."
        )
    if extra.get("size_histogram") != histogram:
        raise ConfigError(
            f"cannot resume from {path}: the size histogram (stats.json) changed. Delete it to start over."
        )


def write_history(path: str | Path, history: dict[str, list], provenance: dict[str, str] | None = None) -> None:
    """Write the history (column → list) to Parquet atomically, provenance in the schema metadata."""
    ckpt_io.write_history(path, history, HISTORY_TYPES, provenance)
