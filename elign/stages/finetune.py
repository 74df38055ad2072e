"""The finetune stage: FED-GRPO post-training of a pretrained model (:func:`elign.rl.trainer.finetune`), or,
with ``finetune.source`` other than ``train``, an aligned model taken as it is
(:func:`elign.rl.aligned_source.materialize_aligned`).

The output checkpoint has the input's architecture (``load_model`` reads it; sampling costs the same).
A killed run restarted with the same request resumes from ``<out>.partial`` (:mod:`elign.training.checkpointing`).
Either way the stage writes ``aligned.json`` beside ``out`` (:func:`aligned_record`: what "aligned" is in this run,
for the report).
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
from elign.io.atomic import write_json_atomic
from elign.model.zoo import find_shipped
from elign.rl.aligned_source import materialize_aligned
from elign.rl.trainer import FinetuneResult, finetune
from elign.stages.evaluate import reference_keys

log = logging.getLogger("elign.finetune")


@dataclass(frozen=True)
class FinetuneRequest:
    """The stage's files and run settings; ``history`` and ``aligned_json`` default to finetune_history.parquet
    and aligned.json beside ``out``."""

    model: str
    out: str
    stats: str | None = None
    history: str | None = None
    dtype: str = "float32"
    train: str | None = None
    progress: bool = True
    max_minutes: float | None = None
    aligned_json: str | None = None
    stop_after_iteration: int | None = None


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
        write_json_atomic(_record_path(request), aligned_record(config, info))
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
        stop_after_iteration=request.stop_after_iteration,
    )
    _log_result(result, out, history)
    if Path(result.out) == Path(out):  # finished (not stopped by --max-minutes or --stop-after-iteration)
        write_json_atomic(_record_path(request), aligned_record(config, None))


def _record_path(request: FinetuneRequest) -> Path:
    return Path(request.aligned_json) if request.aligned_json else Path(request.out).with_name("aligned.json")


TRAIN_KEYS = ("iterations", "prompts_per_iteration", "rollouts_per_prompt", "shared_prefix_steps", "reference_prefix")
TRAIN_KEYS += ("lr", "kl_weight", "weight_force", "weight_energy", "stable_only")


def aligned_record(config: ElignConfig, info: dict | None) -> dict:
    """What "aligned" is in this run (aligned.json): FED-GRPO trained here (``info`` None: the settings that
    shape the method), or the shipped model / checkpoint file ``info`` (materialize_aligned's provenance) with,
    for a shipped model, its card's summary, training and paired comparison with its backbone."""
    ft = config.finetune
    if info is None:
        settings = {k: getattr(ft, k) for k in TRAIN_KEYS}
        return {"kind": "train", "settings": settings, "mlff": ft.mlff.backend}
    record = dict(info)
    if info["kind"] == "shipped":
        shipped = find_shipped(info["name"], ft.source.models_dir)
        card = shipped.card
        metrics, training = card.get("metrics", {}), card.get("training", {})
        record["card"] = {
            "path": str(shipped.folder / "card.md"),
            "summary": card.get("summary", ""),
            "training": {
                k: training.get(k) for k in ("iterations", "optimizer_steps", "train_seconds", "wall_seconds")
            },
            "comparison": {k: metrics.get(k) for k in ("num_molecules", "seed", "paired", "sets")},
        }
    return record


def _log_result(result: FinetuneResult, out: str, history: Path) -> None:
    if Path(result.out) != Path(out):
        log.info(
            "finetune: stopped at iteration %d (--max-minutes or --stop-after-iteration); rerun to go on",
            result.iteration,
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
