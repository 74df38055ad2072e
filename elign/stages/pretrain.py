"""The pretrain stage: the backbone of a run, trained (single process or ``torchrun``) or taken from
``pretrain.source`` (a shipped backbone, a file, an EDM checkpoint: :mod:`elign.training.backbone`).

Either way it writes the checkpoint, ``history.parquet`` and ``backbone.json`` (where the model came from).
A killed training run restarted with the same request resumes from ``<out>.partial``
(:mod:`elign.training.pretrain_state`); with ``max_minutes`` a sitting ends early with that resume file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from elign.config import ElignConfig
from elign.io.atomic import write_json_atomic
from elign.io.molecules import read_molecules
from elign.io.provenance import git_sha
from elign.training import distributed as ddp
from elign.training.backbone import materialize_pretrained
from elign.training.pretrain import PretrainResult, pretrain

log = logging.getLogger("elign.pretrain")


@dataclass(frozen=True)
class PretrainRequest:
    """The stage's files and run settings; ``history`` / ``backbone_json`` default to files beside ``out``."""

    data_dir: str
    out: str
    history: str | None = None
    backbone_json: str | None = None
    dtype: str = "float32"
    progress: bool = True
    max_minutes: float | None = None


def run_pretrain(config: ElignConfig, request: PretrainRequest) -> None:
    """Train (``pretrain.source.kind: train``) or materialize the configured backbone; see module doc."""
    out = request.out
    history = Path(request.history) if request.history else Path(out).with_name("history.parquet")
    backbone_json = Path(request.backbone_json) if request.backbone_json else Path(out).with_name("backbone.json")
    if config.pretrain.source.kind != "train":
        stats = Path(request.data_dir) / "stats.json"
        info = materialize_pretrained(
            config.pretrain.source, out, history, backbone_json, stats if stats.is_file() else None
        )
        log.info(
            "pretrain: no training; backbone from %s %s (sha256 %s) -> %s",
            info["kind"],
            info.get("name", info["weights"]),
            info["sha256"][:12],
            out,
        )
        return
    train_path = Path(request.data_dir) / "train.parquet"
    if not train_path.is_file():
        raise FileNotFoundError(f"training split not found: {train_path} (run `elign prepare` first)")
    info = ddp.init_from_env(config.pretrain.device)
    try:
        if not info.is_main:
            logging.getLogger("elign").setLevel(logging.WARNING)
        result = pretrain(
            config,
            read_molecules(train_path),
            out,
            history,
            dtype=getattr(torch, request.dtype),
            progress=request.progress,
            source=str(train_path),
            time_limit_s=None if request.max_minutes is None else 60.0 * request.max_minutes,
        )
    finally:
        ddp.shutdown()
    if info.is_main:
        _finish(result, out, history, backbone_json)


def _finish(result: PretrainResult, out: str, history: Path, backbone_json: Path) -> None:
    """Rank 0 after training: ``backbone.json`` when the run is complete, and the log line."""
    if Path(result.out) != Path(out):
        log.info("pretrain: stopped at step %d by --max-minutes; rerun the same command to go on", result.step)
        return
    write_json_atomic(
        backbone_json,
        {
            "kind": "train",
            "weights": str(out),
            "steps": result.step,
            "train_seconds": result.seconds,
            "git_sha": git_sha(),
        },
    )
    loss = "n/a" if result.loss is None else f"{result.loss:.5f}"
    log.info(
        "pretrain done: step %d, last logged loss %s, %.1f s; history %s", result.step, loss, result.seconds, history
    )
