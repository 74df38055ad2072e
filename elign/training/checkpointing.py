"""The one checkpoint/resume implementation of a training run (pretraining and FED-GRPO alike).

Files (``out`` = the run's final checkpoint, e.g. ``results/models/qm9/pretrained.pt``):

* ``<out>.partial``: the periodic checkpoint. It is the *resume file*: a restarted run continues from it
  (or from ``<out>`` if that is further along) and reaches the same final weights. It lives outside
  Snakemake's declared outputs, so a failed job's cleanup keeps it. It is deleted once ``<out>`` is written.
* ``<out>``: written when the run ends (``extra.finished = True``); it holds the same resumable state, so a
  longer run later continues from it.

Both are our checkpoint format (:mod:`elign.diffusion.checkpoint`, atomic writes), with the run's state in
``extra``: ``stage``, the count of steps or iterations done, the optimizer state, the RNG states
(:func:`rng_state`), the history rows and the config dump. A run changes only the stage-specific parts
(:mod:`elign.training.pretrain_state`, :mod:`elign.rl.trainer_state`). Each candidate file is read once.
The history Parquet carries provenance as JSON under the schema-metadata key ``elign`` (as the molecule
files).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from elign.config import ConfigError
from elign.diffusion.checkpoint import LoadedCheckpoint, read_checkpoint, save_checkpoint
from elign.io.atomic import atomic_path
from elign.io.molecules import METADATA_KEY
from elign.training.optim import EMA

__all__ = [
    "Resume",
    "partial_path",
    "find_resume",
    "diff_configs",
    "check_trajectory",
    "rng_state",
    "restore_rng",
    "write_history",
    "save_run_state",
]


@dataclass(frozen=True)
class Resume:
    """The checkpoint a run resumes from (read once) and how far it got (steps or iterations done)."""

    loaded: LoadedCheckpoint
    position: int

    @property
    def path(self) -> Path:
        return self.loaded.path

    @property
    def checkpoint(self) -> dict[str, Any]:
        return self.loaded.checkpoint


def partial_path(out: str | Path) -> Path:
    """The resume file of a final checkpoint path: ``<out>.partial``."""
    out = Path(out)
    return out.with_name(out.name + ".partial")


def find_resume(out: str | Path, stage: str, counter: str, what: str, hint: str = "") -> Resume | None:
    """``<out>.partial`` or ``<out>``, whichever has done more ``extra[counter]``; None if neither exists.

    A file there that is not a resumable checkpoint of ``stage`` is an error (``what`` names the stage in
    the message, ``hint`` may add a way out).
    """
    out = Path(out)
    found = []
    for path in (partial_path(out), out):
        if not path.is_file():
            continue
        loaded = read_checkpoint(path)
        extra = loaded.checkpoint.get("extra", {})
        if extra.get("stage") != stage or "optimizer" not in extra:
            raise ValueError(f"{path} exists but is not a resumable {what} checkpoint; move it away{hint}")
        found.append(Resume(loaded, int(extra[counter])))
    return max(found, key=lambda r: r.position) if found else None


def diff_configs(old: Any, new: Any, prefix: str = "") -> list[str]:
    """``key.path: old -> new`` for every leaf that differs between two nested dicts."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new)):
            out += diff_configs(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else str(key))
        return out
    return [] if old == new else [f"{prefix}: {old!r} -> {new!r}"]


def check_trajectory(
    old_config: dict, new_config: dict, trajectory: Callable[[dict], dict], path: Path, allowed: str
) -> None:
    """ConfigError if the parts of two config dumps that fix the training trajectory differ."""
    diffs = diff_configs(trajectory(old_config), trajectory(new_config))
    if diffs:
        raise ConfigError(
            f"cannot resume from {path}: the config changed ({'; '.join(diffs)}); only "
            f"{allowed} may change. Delete {path} to start over."
        )


def rng_state() -> dict[str, Any]:
    """The global torch RNG states (CPU, and every GPU's) for ``extra["rng"]``."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
    }


def restore_rng(rng: Mapping[str, Any]) -> None:
    """Set the global torch RNG states saved by :func:`rng_state`."""
    torch.set_rng_state(rng["torch"])
    if rng.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def write_history(
    path: str | Path,
    history: Mapping[str, list],
    types: Mapping[str, pa.DataType],
    provenance: dict[str, str] | None = None,
) -> None:
    """Write the history (column → list) to Parquet atomically, columns and types from ``types``, with
    provenance in the schema metadata."""
    table = pa.table({c: pa.array(history[c], type=t) for c, t in types.items()})
    if provenance:
        table = table.replace_schema_metadata({METADATA_KEY: json.dumps(provenance).encode()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def save_run_state(
    out: str | Path,
    final: bool,
    model_config: Mapping[str, Any],
    model: torch.nn.Module,
    ema: EMA | None,
    extra: Mapping[str, Any],
    write_run_history: Callable[[], None] | None = None,
) -> Path:
    """Checkpoint the model's weights and EMA weights to ``<out>.partial`` (or ``<out>`` when final), then the
    history; a final save removes the resume file. Returns the checkpoint written."""
    out = Path(out)
    path = out if final else partial_path(out)
    save_checkpoint(path, model_config, model.state_dict(), None if ema is None else ema.state_dict(model), extra)
    if write_run_history is not None:
        write_run_history()
    if final:
        partial_path(out).unlink(missing_ok=True)
    return path
