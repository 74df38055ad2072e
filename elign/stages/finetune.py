"""The finetune stage: FED-GRPO post-training of a pretrained model (:func:`elign.rl.trainer.finetune`), or,
with ``finetune.source`` other than ``train``, an aligned model taken as it is
(:func:`elign.rl.aligned_source.materialize_aligned`).

The output checkpoint has the input's architecture (``load_model`` reads it; sampling costs the same).
A killed run restarted with the same request resumes from ``<out>.partial`` (:mod:`elign.training.checkpointing`).
"""

from __future__ import annotations

import gzip
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from elign.config import ConfigError, ElignConfig
from elign.data.sizes import stage_histogram
from elign.diffusion.checkpoint import read_checkpoint
from elign.rl.aligned_source import materialize_aligned
from elign.rl.trainer import FinetuneResult, finetune
from elign.stages.evaluate import reference_keys

log = logging.getLogger("elign.finetune")


@dataclass(frozen=True)
class FinetuneRequest:
    """The stage's files and run settings; ``history`` defaults to finetune_history.parquet beside ``out``."""

    model: str
    out: str
    stats: str | None = None
    history: str | None = None
    dtype: str = "float32"
    train: str | None = None
    progress: bool = True
    max_minutes: float | None = None


def training_keys_of(path: str) -> set[str]:
    """Novelty keys of the training split: from its Parquet, or from a text file of keys, one per line (``.txt``
    or ``.txt.gz``; a compact stand-in for the split on a machine the Parquet cannot be carried to)."""
    if path.endswith((".txt", ".txt.gz")):
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as fh:
            return {line.strip() for line in fh if line.strip()}
    return reference_keys(path, "smiles")


def run_finetune(config: ElignConfig, request: FinetuneRequest) -> None:
    """Align ``request.model`` (or materialize ``finetune.source``) into ``request.out``; see module doc."""
    out = request.out
    history = Path(request.history) if request.history else Path(out).with_name("finetune_history.parquet")
    if config.finetune.source.kind != "train":
        info = materialize_aligned(config.finetune.source, request.model, out, history)
        log.info(
            "finetune: no training; aligned model from %s %s (sha256 %s, aligned from %s) -> %s",
            info["kind"],
            info.get("name", info["weights"]),
            info["sha256"][:12],
            info["backbone"]["sha256"][:12],
            out,
        )
        return
    if not Path(request.model).exists():  # a folder or a damaged file: load_checkpoint says what is wrong
        raise FileNotFoundError(f"--model: checkpoint {request.model} does not exist (run `elign pretrain` first)")
    try:
        model = read_checkpoint(request.model)  # the one read of the input: weights and sha256
    except ValueError as exc:
        raise ConfigError(f"--model: {exc}") from None
    histogram = stage_histogram(request.stats, "finetune.sizes") if config.finetune.sizes == "histogram" else None
    keys = None
    if config.finetune.novelty_penalty is not None:
        if request.train is None or not Path(request.train).is_file():
            raise ConfigError(
                f"finetune.novelty_penalty needs the training split: --train {request.train} is not a file"
            )
        keys = training_keys_of(request.train)
    result = finetune(
        config,
        request.model,
        out,
        history,
        histogram=histogram,
        input_checkpoint=model,
        dtype=getattr(torch, request.dtype),
        progress=request.progress,
        training_keys=keys,
        time_limit_s=None if request.max_minutes is None else 60.0 * request.max_minutes,
    )
    _log_result(result, out, history)


def _log_result(result: FinetuneResult, out: str, history: Path) -> None:
    if Path(result.out) != Path(out):
        log.info(
            "finetune: stopped at iteration %d by --max-minutes; rerun the same command to go on", result.iteration
        )
        return
    last = result.last or {}
    log.info(
        "finetune done: %d iterations, %.1f s; last force RMS %.4g eV/A, KL %.3g; history %s",
        result.iteration,
        result.seconds,
        last.get("force_rms_mean_ev_per_ang", float("nan")),
        last.get("kl_ref", float("nan")),
        history,
    )
