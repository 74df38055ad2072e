"""Ship a trained backbone: weights, model card (JSON + Markdown), training history and curves.

``elign models ship`` calls :func:`ship_backbone`: it takes a pretraining checkpoint (the resumable one,
which holds the config, the history and every training segment), picks the weights (the final EMA, or an
in-training evaluation's EMA weights chosen by sample stability, not by the loss), measures the validation
loss, samples ``num_molecules`` molecules with a seed that training never used and scores them exactly as
``elign sample`` + ``elign evaluate`` do, then writes ``models/<name>/`` (layout: :mod:`elign.model.zoo`).
All files are published together: a failure leaves a previous version of the folder as it was.
The card's text: :mod:`elign.report.card_text`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from elign.data.sizes import load_size_histogram, resolve_sizes
from elign.diffusion.checkpoint import load_checkpoint, save_checkpoint
from elign.diffusion.factory import build_model
from elign.diffusion.sampler import sample_molecules
from elign.io.atomic import atomic_paths, json_text
from elign.io.molecules import read_molecules
from elign.io.provenance import file_sha256
from elign.metrics.chemistry import training_keys
from elign.metrics.evaluate import evaluate_table, summarize
from elign.model.zoo import CARD_FORMAT
from elign.report.card import json_safe, lr_schedule_text
from elign.report.card_text import card_markdown
from elign.report.plots import plot_pretrain_loss
from elign.training.evaluation import validation_loss

METRIC_KEYS = (
    "atom_stability",
    "molecule_stability",
    "validity",
    "uniqueness",
    "valid_and_unique",
    "novelty",
    "sample_ok_fraction",
)


@dataclass(frozen=True)
class ShipRequest:
    """What to ship: the checkpoint, the weights to take (``final`` or ``step:N`` of an evaluation snapshot,
    or ``best``: the evaluation with the highest molecule, then atom stability), where, and how to measure."""

    checkpoint: Path
    name: str
    models_dir: Path = Path("models")
    data_dir: Path = Path("results/data/qm9")
    select: str = "final"
    num_molecules: int = 1000
    seed: int = 20261128
    batch_size: int = 64
    valid_molecules: int = 2000
    reproduce: str = ""
    summary: str = ""


def _snapshots(checkpoint: Path) -> dict[int, Path]:
    """The kept evaluation weights of a run: ``<out>.evals/step_N.pt`` (``<out>`` = the checkpoint without
    its ``.partial`` suffix)."""
    out_name = checkpoint.name.removesuffix(".partial")
    folder = checkpoint.with_name(out_name + ".evals")
    return {int(p.stem.split("_")[1]): p for p in sorted(folder.glob("step_*.pt"))} if folder.is_dir() else {}


def select_weights(req: ShipRequest, ckpt: dict) -> tuple[dict, int, str]:
    """(weights, step, how they were chosen)."""
    extra = ckpt["extra"]
    if req.select == "final":
        weights = ckpt["ema_state_dict"] if ckpt["ema_state_dict"] is not None else ckpt["state_dict"]
        return weights, int(extra["step"]), "final EMA weights of the checkpoint"
    snaps = _snapshots(req.checkpoint)
    if req.select == "best":
        hist = pd.DataFrame(extra["history"])
        hist = hist[hist["step"].isin(list(snaps)) & hist["eval_molecules"].notna()]
        if hist.empty:
            raise ValueError(f"--select best: {req.checkpoint} has no kept in-training evaluations")
        best = hist.sort_values(["eval_molecule_stability", "eval_atom_stability", "step"]).iloc[-1]
        step = int(best["step"])
        how = (
            f"in-training evaluation with the highest molecule stability ({best['eval_molecule_stability']:.3f} "
            f"on {int(best['eval_molecules'])} molecules; ties: atom stability, then the later step)"
        )
    else:
        step = int(req.select.removeprefix("step:"))
        how = f"EMA weights of the in-training evaluation at step {step} (chosen by hand)"
    if step not in snaps:
        raise ValueError(f"no evaluation snapshot at step {step} beside {req.checkpoint} (have {sorted(snaps)})")
    return load_checkpoint(snaps[step])["state_dict"], step, how


def sample_metrics(model, req: ShipRequest) -> dict[str, Any]:
    """Sample ``num_molecules`` (sizes from the training histogram, seed ``req.seed``) and score them."""
    sizes = resolve_sizes("histogram", req.num_molecules, req.seed, load_size_histogram(req.data_dir / "stats.json"))
    t0 = time.perf_counter()
    result = sample_molecules(model, sizes, req.batch_size, req.seed)
    seconds = time.perf_counter() - t0
    train = read_molecules(req.data_dir / "train.parquet")
    keys = training_keys(train.smiles) if train.smiles is not None else None
    summary = summarize(evaluate_table(result.table, None, keys), "backbone")
    out = {
        "seed": req.seed,
        "num_molecules": req.num_molecules,
        "steps": int(model.T),
        "batch_size": req.batch_size,
        **{k: summary[k] for k in METRIC_KEYS},
    }
    out["sampling"] = {
        "seconds": seconds,
        "molecules_per_s": req.num_molecules / seconds,
        "threads": torch.get_num_threads(),
        "device": "cpu",
    }
    return out


def build_card(
    req: ShipRequest, ckpt: dict, weights_file: Path, step: int, how: str, metrics: dict, valid: dict
) -> dict[str, Any]:
    extra, config = ckpt["extra"], ckpt["extra"]["config"]
    pc = config["pretrain"]
    segments = extra.get("segments", [])
    model = build_model(ckpt["model_config"])
    return {
        "format": CARD_FORMAT,
        "name": req.name,
        "summary": req.summary,
        "weights": {
            "file": weights_file.name,
            "sha256": file_sha256(weights_file),
            "bytes": weights_file.stat().st_size,
            "dtype": "float32",
            "selected_step": step,
            "selection": how,
            "ema_decay": pc["ema_decay"],
        },
        "architecture": {
            "preset": pc["preset"],
            "parameters": sum(p.numel() for p in model.parameters()),
            "model_config": ckpt["model_config"],
        },
        "config": config,
        "data": {
            "dataset": config["data"]["dataset"],
            "source": config["data"]["source"],
            "split": "EDM's: np.random.seed(0) permutation of the 130,831 characterized QM9 molecules; "
            "trained on train (100,000) only",
            **extra["data"],
            **valid,
        },
        "training": {
            "steps": int(extra["step"]),
            "epochs": int(extra["step"]) / int(extra["steps_per_epoch"]),
            "batch_size": pc["batch_size"],
            "lr_schedule": f"{lr_schedule_text(pc)} (AdamW, "
            f"amsgrad, weight decay {pc['weight_decay']:g}), EDM's adaptive gradient clipping",
            "ema_decay": pc["ema_decay"],
            "segments": segments,
            "train_seconds": float(extra["seconds"]),
            "wall_seconds": float(np.nansum([s.get("wall_seconds", np.nan) for s in segments])),
        },
        "reproduce": {"command": req.reproduce, "expected_wall_hours": float(extra["seconds"]) / 3600.0},
        "metrics": metrics,
    }


def ship_backbone(req: ShipRequest) -> dict[str, Any]:
    """Write ``models_dir/name/`` (weights, card.json, card.md, history.parquet, curves.png); returns the card."""
    ckpt = load_checkpoint(req.checkpoint)
    if ckpt.get("extra", {}).get("stage") != "pretrain":
        raise ValueError(f"{req.checkpoint} is not a pretraining checkpoint (it must hold config and history)")
    weights, step, how = select_weights(req, ckpt)
    weights = {k: (v.float() if v.is_floating_point() and k != "schedule.gamma" else v) for k, v in weights.items()}
    model = build_model(ckpt["model_config"])
    model.load_state_dict(weights, strict=True)
    model.eval()
    valid = validation_loss(
        model, read_molecules(req.data_dir / "valid.parquet"), seed=req.seed, max_molecules=req.valid_molecules
    )
    metrics = sample_metrics(model, req)
    folder = req.models_dir / req.name
    folder.mkdir(parents=True, exist_ok=True)
    names = ("weights.pt", "history.parquet", "curves.png", "card.json", "card.md")
    with atomic_paths([folder / n for n in names]) as (w, h, c, cj, cm):
        save_checkpoint(w, ckpt["model_config"], weights, None, {"stage": "shipped", "name": req.name, "step": step})
        history = pd.DataFrame(ckpt["extra"]["history"])
        history.to_parquet(h, index=False)
        plot_pretrain_loss(history, c, dpi=110)
        card = build_card(req, ckpt, w, step, how, metrics, valid)
        card["weights"]["file"] = "weights.pt"
        card = json_safe(card)
        cj.write_text(json_text(card))
        cm.write_text(card_markdown(card))
    return card
