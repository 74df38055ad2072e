"""The ``elign models`` stage: the table of shipped models, and shipping a backbone or an aligned model with
its log line. Shipping itself: :mod:`elign.stages.ship` (backbone), :mod:`elign.stages.ship_aligned` (aligned).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from elign.config import MLFFConfig
from elign.diffusion.checkpoint import load_checkpoint
from elign.mlff.registry import backend_from_config
from elign.model.zoo import ShippedModel, list_shipped
from elign.stages.ship import ShipRequest, ship_backbone
from elign.stages.ship_aligned import AlignedShipRequest, ship_aligned

log = logging.getLogger("elign.models")


def epochs(card: dict) -> float:
    """Epochs of the shipped weights (the run may have gone on past the selected step)."""
    t = card["training"]
    return card["weights"]["selected_step"] * t["epochs"] / t["steps"] if t["steps"] else 0.0


def _backbone_rows(models: list[ShippedModel]) -> list[str]:
    lines = [
        "| name | preset | parameters | steps | epochs | molecule stab. | atom stab. | validity | uniqueness | "
        "molecules (seed) | sha256 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in models:
        c, met = m.card, m.card["metrics"]
        pct = lambda k, met=met: f"{100 * met[k]:.1f} %" if met.get(k) is not None else "n/a"
        lines.append(
            f"| {m.name} | {c['architecture']['preset']} | {c['architecture']['parameters']:,} | "
            f"{c['weights']['selected_step']:,} | {epochs(c):.1f} | {pct('molecule_stability')} | "
            f"{pct('atom_stability')} | {pct('validity')} | {pct('uniqueness')} | "
            f"{met['num_molecules']} ({met['seed']}) | {m.sha256[:12]} |"
        )
    return lines


def _aligned_rows(models: list[ShippedModel]) -> list[str]:
    lines = [
        "",
        "| aligned model | from | iterations | Δ force RMS (eV/Å) | Δ molecule stab. | pairs (seed) | sha256 |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in models:
        c, paired = m.card, m.card["metrics"]["paired"]
        f, st = paired["force_rms_ev_per_ang"], paired["molecule_stable"]
        lines.append(
            f"| {m.name} | {c['backbone']['name']} | {c['training']['iterations']} | {f['paired_diff']:+.3f} "
            f"(p {f['paired_p']:.2g}) | {100 * st['paired_diff']:+.1f} points | {f['n_pairs']} "
            f"({c['metrics']['seed']}) | {m.sha256[:12]} |"
        )
    return lines


def models_table(models_dir: str | Path) -> str:
    """What ``elign models`` prints: a Markdown table of the shipped backbones, then one of the aligned models."""
    models = list_shipped(models_dir)
    if not models:
        return f"no shipped backbones in {models_dir}/"
    aligned = [m for m in models if m.card.get("kind") == "aligned"]
    lines = _backbone_rows([m for m in models if m.card.get("kind") != "aligned"])
    return "\n".join(lines + (_aligned_rows(aligned) if aligned else []))


def ship_and_log(req: ShipRequest) -> dict[str, Any]:
    """:func:`elign.stages.ship.ship_backbone`, then one log line of the card's metrics."""
    card = ship_backbone(req)
    m = card["metrics"]
    log.info(
        "shipped %s (step %d): molecule stability %.3f, atom stability %.3f, validity %.3f, uniqueness %.3f on %d "
        "molecules (seed %d)",
        req.name,
        card["weights"]["selected_step"],
        m["molecule_stability"],
        m["atom_stability"],
        m["validity"],
        m["uniqueness"],
        m["num_molecules"],
        m["seed"],
    )
    return card


def ship_aligned_and_log(req: AlignedShipRequest) -> dict[str, Any]:
    """:func:`elign.stages.ship_aligned.ship_aligned` with the run's own MLFF (on CPU), then one log line."""
    mlff = load_checkpoint(req.checkpoint)["extra"]["config"]["finetune"]["mlff"]
    backend = backend_from_config(MLFFConfig(**{**mlff, "device": "cpu"}))
    card = ship_aligned(req, backend)
    f = card["metrics"]["paired"]["force_rms_ev_per_ang"]
    log.info(
        "shipped %s: paired force RMS difference %.3f eV/A [%.3f, %.3f], p %.2g over %d pairs",
        req.name,
        f["paired_diff"],
        f["paired_ci_low"],
        f["paired_ci_high"],
        f["paired_p"],
        f["n_pairs"],
    )
    return card
