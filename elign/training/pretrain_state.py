"""Pretraining state on disk: what a pretraining checkpoint holds, and ``history.parquet``.

Files and resume convention: :mod:`elign.training.checkpointing` (``<out>.partial`` every
``checkpoint_every`` steps; a restarted run reaches bit-identical weights on CPU; raising ``max_steps``
later continues from ``<out>``). ``extra`` layout::

    {"stage": "pretrain", "finished": bool,
     "step": int,                     # optimizer updates done
     "epoch": int, "epoch_step": int, # position of the *next* global batch: epoch, index inside it
     "steps_per_epoch": int, "world_size": int, "seconds": float (cumulative training time),
     "optimizer": AdamW state_dict, "grad_norm_queue": [float, ...] (EDM's queue, newest first),
     "rng": {"noise": ByteTensor (training-noise torch.Generator), "torch": ByteTensor (global CPU RNG),
             "cuda": [ByteTensor, ...]},
     "log_window": {"n": int, "loss_sum": float, "grad_norm_sum": float, "clipped": bool},
     "history": {column: [values]},   # rows so far (what history.parquet holds)
     "config": ElignConfig dump (JSON types), "seed": int,
     "data": {"train_molecules": int, "fingerprint": sha256 of mol_id + num_atoms},
     "init_from": str | None, "provenance": {...},
     "segments": [{start_step, end_step, train_seconds, eval_seconds, wall_seconds, started_utc, git_sha,
                   compiled, processes, host, cpu, cpu_count, threads, device, gpu?, torch}, ...]}
                                      # one per sitting (a resumed run appends one); the model card lists them

``history.parquet`` columns: step (int64), epoch (int64), loss (float64, mean training loss over the
steps since the previous row), grad_norm (float64, mean pre-clipping L2 norm over those steps),
clipped (bool, any of those steps clipped), lr (float64), seconds (float64, cumulative training time),
and the in-training evaluation columns of :mod:`elign.training.evaluation` (null where none ran);
provenance as JSON under the schema-metadata key ``elign`` (as the molecule files).
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from elign.config import ConfigError, LrDecay
from elign.io.provenance import git_sha
from elign.io.table import MoleculeTable
from elign.training import checkpointing as ckpt_io
from elign.training.checkpointing import Resume
from elign.training.evaluation import EVAL_COLUMNS
from elign.training.optim import learning_rate

log = logging.getLogger("elign.pretrain")

HISTORY_COLUMNS = ("step", "epoch", "loss", "grad_norm", "clipped", "lr", "seconds") + EVAL_COLUMNS
_HISTORY_TYPES = {
    "step": pa.int64(),
    "epoch": pa.int64(),
    "loss": pa.float64(),
    "grad_norm": pa.float64(),
    "clipped": pa.bool_(),
    "lr": pa.float64(),
    "seconds": pa.float64(),
    "eval_molecules": pa.int64(),
    **{c: pa.float64() for c in EVAL_COLUMNS[1:]},
}
#: pretrain keys that may change between a run and its resumption: they do not change the trajectory
#: (``compile`` changes the round-off only; a segment that switches it is recorded as such in a model card;
#: ``lr_decay`` may change only where it leaves the rate of every step already taken unchanged).
RESUMABLE_CHANGES = (
    "source",
    "max_steps",
    "checkpoint_every",
    "log_every",
    "device",
    "compile",
    "eval_every",
    "eval_molecules",
    "eval_keep_weights",
    "lr_decay",
)


def data_fingerprint(table: MoleculeTable) -> dict[str, Any]:
    """Identity of the training set (resuming on other data is an error)."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(table.mol_id, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(table.num_atoms, dtype=np.int64).tobytes())
    return {"train_molecules": int(len(table)), "fingerprint": h.hexdigest()}


def find_resume(out: str | Path) -> Resume | None:
    """The checkpoint to resume from: ``<out>.partial`` or ``<out>``, whichever has more steps; else None."""
    return ckpt_io.find_resume(
        out, "pretrain", "step", "pretraining", " (to start from a model's weights use pretrain.init_from)"
    )


def trajectory_config(config: dict) -> dict:
    """The parts of a config dump that fix the training trajectory (seed + pretrain minus resumable keys)."""
    pre = {k: v for k, v in config.get("pretrain", {}).items() if k not in RESUMABLE_CHANGES}
    return {"seed": config.get("seed"), "pretrain": pre}


def check_resume_compatible(extra: dict, config: dict, data: dict, path: Path) -> None:
    """ConfigError if the checkpoint was trained with another trajectory config or other data."""
    ckpt_io.check_trajectory(extra.get("config", {}), config, trajectory_config, path, ", ".join(RESUMABLE_CHANGES))
    _check_schedule_kept(extra, config, path)
    if extra.get("data") != data:
        raise ConfigError(
            f"cannot resume from {path}: it was trained on other data "
            f"({extra.get('data')} vs {data}). Delete it to start over."
        )


def _check_schedule_kept(extra: dict, config: dict, path: Path) -> None:
    """ConfigError if a changed ``pretrain.lr_decay`` changes the rate of a step the checkpoint has taken."""
    old_pc, new_pc = extra.get("config", {}).get("pretrain", {}), config.get("pretrain", {})
    if old_pc.get("lr_decay") == new_pc.get("lr_decay"):
        return
    taken = np.arange(int(extra["step"]))
    old_rate = learning_rate(taken, float(old_pc["lr"]), _decay(old_pc.get("lr_decay")))
    new_rate = learning_rate(taken, float(new_pc["lr"]), _decay(new_pc.get("lr_decay")))
    changed = np.flatnonzero(old_rate != new_rate)
    if changed.size:
        raise ConfigError(
            f"cannot resume from {path} (step {int(extra['step'])}): the new pretrain.lr_decay "
            f"changes the learning rate of steps already taken (first: step {int(changed[0])}, "
            f"{old_rate[changed[0]]:.3g} -> {new_rate[changed[0]]:.3g}); a decay may only start "
            f"at or after the checkpoint's step. Delete {path} to start over."
        )


def _decay(dump: dict | None) -> LrDecay | None:
    return None if dump is None else LrDecay.model_validate(dump)


def empty_history() -> dict[str, list]:
    return {c: [] for c in HISTORY_COLUMNS}


def hardware(device: torch.device | str) -> dict[str, Any]:
    """What a training segment ran on: host, CPU model, torch threads, device (and GPU name), torch version."""
    device = torch.device(device)
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    out = {
        "host": platform.node(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "device": str(device),
        "torch": str(torch.__version__),
    }
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
    return out


def source_sha256() -> str:
    """sha256 over the elign package's Python sources (path and bytes, sorted): the exact code of a segment,
    also when the git tree is dirty."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def new_segment(
    step: int, seconds: float, device: torch.device | str, compiled: bool, processes: int
) -> dict[str, Any]:
    """The record of a training segment that starts now at ``step`` (closed by :func:`close_segment`)."""
    return {
        "start_step": int(step),
        "end_step": int(step),
        "start_seconds": float(seconds),
        "train_seconds": 0.0,
        "eval_seconds": 0.0,
        "wall_seconds": 0.0,
        "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_sha": git_sha(),
        "source_sha256": source_sha256(),
        "compiled": bool(compiled),
        "processes": int(processes),
        **hardware(device),
    }


def close_segment(
    segment: dict[str, Any], step: int, seconds: float, eval_seconds: float, wall_seconds: float
) -> dict[str, Any]:
    """``segment`` brought up to ``step`` (training time ``seconds`` is the run's cumulative total)."""
    return {
        **segment,
        "end_step": int(step),
        "train_seconds": float(seconds - segment["start_seconds"]),
        "eval_seconds": float(eval_seconds),
        "wall_seconds": float(wall_seconds),
    }


def restore_segments(extra: dict[str, Any]) -> list[dict[str, Any]]:
    """Segments of a checkpoint; one written before segments were recorded gets one inferred segment
    from its step count, training time and provenance (hardware unknown)."""
    if "segments" in extra:
        return [dict(s) for s in extra["segments"]]
    prov = extra.get("provenance", {})
    return [
        {
            "start_step": 0,
            "end_step": int(extra["step"]),
            "start_seconds": 0.0,
            "train_seconds": float(extra["seconds"]),
            "eval_seconds": 0.0,
            "wall_seconds": float("nan"),
            "started_utc": None,
            "git_sha": prov.get("git_sha", "unknown"),
            "compiled": False,
            "processes": int(extra.get("world_size", 1)),
            "note": "inferred: written before segments were recorded",
        }
    ]


def restore_history(saved: dict[str, list]) -> dict[str, list]:
    """History from a checkpoint; columns added since it was written are null on its rows."""
    rows = len(saved["step"])
    return {c: list(saved[c]) if c in saved else [None] * rows for c in HISTORY_COLUMNS}


def write_history(path: str | Path, history: dict[str, list], provenance: dict[str, str] | None = None) -> None:
    """Write ``history`` (column → list) to Parquet atomically, with provenance in the schema metadata;
    evaluation columns it lacks are written as nulls."""
    ckpt_io.write_history(path, restore_history(history), {c: _HISTORY_TYPES[c] for c in HISTORY_COLUMNS}, provenance)
