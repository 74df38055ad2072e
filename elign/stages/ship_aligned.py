"""Ship an aligned model: weights, card (JSON + Markdown), FED-GRPO history and curves, and the final
paired comparison with the backbone it was aligned from.

``elign models ship-aligned`` calls :func:`ship_aligned`. It takes a finished FED-GRPO checkpoint (its
config, history and input identity), checks that the named shipped backbone is the model FED-GRPO started
from (sha256), samples ``num_molecules`` molecules from both with one noise plan (sizes from the training
histogram, batch k seeded by (seed, k): molecule i of both models starts from the same noise), with a seed
FED-GRPO never used, scores them as ``elign evaluate`` does (EDM stability, RDKit validity and uniqueness,
MLFF force RMS and FIRE relaxation energy with the run's MLFF) and compares them pair by pair: the mean
paired difference, a bootstrap interval over pairs, and the paired t test. Uniqueness is a property of a set
and is compared unpaired. ``models/<name>/`` is published as a whole (layout: :mod:`elign.model.zoo`, plus
``kind: aligned`` and ``backbone`` in the card).
The paired statistics and the card's text: :mod:`elign.report.aligned_card`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from elign.config import ElignConfig
from elign.data.sizes import load_size_histogram, resolve_sizes
from elign.diffusion.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from elign.diffusion.factory import build_model, model_config_of
from elign.diffusion.sampler import sample_molecules
from elign.io.atomic import atomic_paths, json_text
from elign.io.molecules import read_molecules
from elign.io.provenance import file_sha256
from elign.metrics.chemistry import training_keys
from elign.metrics.evaluate import evaluate_table, summarize, valid_and_unique_flags
from elign.mlff.base import MLFFBackend
from elign.mlff.relax import FireSettings
from elign.model.zoo import CARD_FORMAT, ShippedModelError, find_shipped, verify_weights
from elign.report.aligned_card import SET_KEYS, aligned_card_markdown, paired_comparison
from elign.report.card import json_safe
from elign.report.plots import plot_finetune
from elign.rl.quality import evaluate_policy
from elign.rl.trainer_state import EVAL_MLFF_COLUMNS


@dataclass(frozen=True)
class AlignedShipRequest:
    checkpoint: Path
    name: str
    backbone: str
    models_dir: Path = Path("models")
    data_dir: Path = Path("results/data/qm9")
    num_molecules: int = 1000
    seed: int = 20261206
    batch_size: int = 64
    relax_steps: int = 100
    segments: Path | None = None
    reproduce: str = ""
    summary: str = ""


def _frame(model, sizes, req: AlignedShipRequest, backend: MLFFBackend, keys) -> tuple[pd.DataFrame, float]:
    t0 = time.perf_counter()
    result = sample_molecules(model, sizes, req.batch_size, req.seed)
    seconds = time.perf_counter() - t0
    frame = evaluate_table(result.table, backend, keys, FireSettings(max_steps=req.relax_steps))
    frame["atom_stable_fraction"] = frame["num_stable_atoms"] / frame["num_atoms"]
    frame["valid_and_unique"] = valid_and_unique_flags(frame)
    return frame, seconds


def _model(ckpt: dict, weights: dict) -> torch.nn.Module:
    model = build_model(ckpt["model_config"])
    model.load_state_dict(weights, strict=True)
    return model.eval()


def compare_with_backbone(req: AlignedShipRequest, ckpt: dict, backbone_ckpt: dict, backend) -> dict[str, Any]:
    """Sample both models with one noise plan and compare them (module doc)."""
    hist = load_size_histogram(req.data_dir / "stats.json")
    sizes = resolve_sizes("histogram", req.num_molecules, req.seed, hist)
    train = read_molecules(req.data_dir / "train.parquet")
    keys = training_keys(train.smiles) if train.smiles is not None else None
    weights = ckpt["ema_state_dict"] if ckpt.get("ema_state_dict") is not None else ckpt["state_dict"]
    models = {"backbone": _model(backbone_ckpt, backbone_ckpt["state_dict"]), "aligned": _model(ckpt, weights)}
    frames, seconds, sets = {}, {}, {}
    for name, model in models.items():
        frames[name], seconds[name] = _frame(model, sizes, req, backend, keys)
        summary = summarize(frames[name], name)
        sets[name] = {k: summary.get(k) for k in SET_KEYS}
    return {
        "seed": req.seed,
        "num_molecules": req.num_molecules,
        "batch_size": req.batch_size,
        "mlff": backend.describe(),
        "relax_max_steps": req.relax_steps,
        "sets": sets,
        "paired": paired_comparison(frames, req.seed),
        "sampling_seconds": seconds,
        "threads": torch.get_num_threads(),
    }


EVAL_KEYS = ("eval_molecules", "eval_molecule_stability", "eval_validity", "eval_uniqueness", *EVAL_MLFF_COLUMNS)


def evaluations(req: AlignedShipRequest, ckpt: dict, backbone_ckpt: dict, backend: MLFFBackend) -> list[dict]:
    """The run's fresh-sample evaluations (fixed noise, every ``finetune.eval_every`` iterations) with the
    backbone's own evaluation on the same noise as iteration 0, the weights FED-GRPO started from."""
    config = ElignConfig.model_validate(ckpt["extra"]["config"])
    start = model_from_checkpoint(backbone_ckpt, use_ema=config.sample.use_ema)
    histogram = load_size_histogram(req.data_dir / "stats.json") if config.finetune.sizes == "histogram" else None
    row = evaluate_policy(config, model_config_of(start), start.state_dict(), histogram, torch.device("cpu"), backend)
    rows = [{"iteration": 0, "model": "backbone", **{k: row.get(k) for k in EVAL_KEYS}}]
    history = pd.DataFrame(ckpt["extra"]["history"])
    if "eval_molecules" in history:
        for _, h in history[history["eval_molecules"].notna()].iterrows():
            rows.append({"iteration": int(h["iteration"]), "model": "aligned", **{k: h.get(k) for k in EVAL_KEYS}})
    return rows


def _segments(path: Path | None) -> list[dict]:
    if path is None or not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def build_card(req: AlignedShipRequest, ckpt: dict, backbone, weights_file: Path, comparison: dict) -> dict:
    extra = ckpt["extra"]
    segments = _segments(req.segments)
    return {
        "format": CARD_FORMAT,
        "kind": "aligned",
        "name": req.name,
        "summary": req.summary,
        "backbone": {"name": backbone.name, "sha256": backbone.sha256},
        "weights": {
            "file": weights_file.name,
            "sha256": file_sha256(weights_file),
            "bytes": weights_file.stat().st_size,
        },
        "architecture": dict(backbone.card["architecture"], model_config=ckpt["model_config"]),
        "config": extra["config"],
        "data": dict(backbone.card.get("data", {})),
        "training": {
            "iterations": int(extra["iteration"]),
            "optimizer_steps": int(extra.get("optimizer_steps", extra["iteration"])),
            "segments": segments,
            "train_seconds": float(extra["seconds"]),
            "wall_seconds": float(sum(s.get("wall_seconds", 0.0) for s in segments)),
            "code_shas": list(dict.fromkeys(s["code_sha"] for s in segments if s.get("code_sha"))),  # as they ran
        },
        "reproduce": {"command": req.reproduce, "expected_wall_hours": float(extra["seconds"]) / 3600.0},
        "metrics": comparison,
    }


def ship_aligned(req: AlignedShipRequest, backend: MLFFBackend) -> dict[str, Any]:
    """Write ``models_dir/name/`` (weights, card.json, card.md, finetune_history.parquet, curves.png)."""
    ckpt = load_checkpoint(req.checkpoint)
    extra = ckpt.get("extra", {})
    if extra.get("stage") != "finetune" or not extra.get("finished"):
        raise ValueError(f"{req.checkpoint} is not a finished FED-GRPO checkpoint (elign finetune's final --out)")
    backbone = find_shipped(req.backbone, req.models_dir)
    if extra["input"]["sha256"] != backbone.sha256:
        raise ShippedModelError(
            f"{req.checkpoint} was aligned from weights sha256 {extra['input']['sha256'][:12]}, not from the shipped "
            f"backbone {backbone.name} ({backbone.sha256[:12]})"
        )
    backbone_ckpt = load_checkpoint(verify_weights(backbone))
    comparison = compare_with_backbone(req, ckpt, backbone_ckpt, backend)
    evaluated = evaluations(req, ckpt, backbone_ckpt, backend)
    weights = ckpt["ema_state_dict"] if ckpt.get("ema_state_dict") is not None else ckpt["state_dict"]
    folder = req.models_dir / req.name
    folder.mkdir(parents=True, exist_ok=True)
    names = ("weights.pt", "finetune_history.parquet", "curves.png", "card.json", "card.md")
    with atomic_paths([folder / n for n in names]) as (w, h, c, cj, cm):
        save_checkpoint(w, ckpt["model_config"], weights, None, {"stage": "shipped", "name": req.name})
        history = pd.DataFrame(extra["history"])
        history.to_parquet(h, index=False)
        plot_finetune(history, c, dpi=110, start=evaluated[0])
        card = build_card(req, ckpt, backbone, w, comparison)
        card["training"]["evaluations"] = evaluated
        card["weights"]["file"] = "weights.pt"
        card = json_safe(card)
        cj.write_text(json_text(card))
        cm.write_text(aligned_card_markdown(card))
    return card
