"""``elign models``: list the shipped models; ``elign models ship``: ship a backbone from a training checkpoint;
``elign models ship-aligned``: ship an aligned model with its paired comparison to its backbone.

    elign models                       # name, preset, size, steps, sample quality, sha256 of each
    elign models ship --checkpoint models/qm9-small/training/pretrained.pt.partial --name qm9-small \\
        --select best --num-molecules 1000 --data-dir results/data/qm9 --threads 1

A run uses a shipped backbone with ``pretrain.source: {kind: shipped, name: <name>}``.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="list the shipped backbones (models/); `ship` writes one with its model card")
    p.add_argument("--models-dir", default="models", help="folder of shipped backbones (default: models)")
    p.set_defaults(run=run_list)
    ship_sub = p.add_subparsers(dest="action", metavar="ACTION")
    s = ship_sub.add_parser("ship", help="ship a backbone: weights, card.json, card.md, history, curves")
    s.add_argument("--checkpoint", required=True, help="a pretraining checkpoint (pretrained.pt or .partial)")
    s.add_argument("--name", required=True, help="folder name under --models-dir, e.g. qm9-small")
    s.add_argument("--models-dir", default="models", help="folder of shipped backbones (default: models)")
    s.add_argument("--data-dir", default="results/data/qm9", help="the data stage's folder (valid split, stats)")
    s.add_argument(
        "--select",
        default="best",
        help="final | best (in-training evaluation with the highest molecule stability) | step:N",
    )
    s.add_argument("--num-molecules", type=int, default=1000, help="molecules sampled for the card's metrics")
    s.add_argument("--seed", type=int, default=20261128, help="sampling seed of the metrics (never used in training)")
    s.add_argument("--valid-molecules", type=int, default=2000, help="validation molecules for the valid loss")
    s.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    s.add_argument(
        "--reproduce",
        default="snakemake --cores all --configfile config/experiments/backbone_qm9_small.yaml",
        help="the command that retrains it from scratch (written into the card)",
    )
    s.add_argument("--summary", default="", help="one paragraph for the top of the card")
    s.set_defaults(run=run_ship)
    a = ship_sub.add_parser("ship-aligned", help="ship an aligned model with its paired comparison to the backbone")
    a.add_argument("--checkpoint", required=True, help="a finished FED-GRPO checkpoint (elign finetune's --out)")
    a.add_argument("--name", required=True, help="folder name under --models-dir, e.g. qm9-small-elign")
    a.add_argument("--backbone", required=True, help="the shipped backbone it was aligned from, e.g. qm9-small")
    a.add_argument("--models-dir", default="models")
    a.add_argument("--data-dir", default="results/data/qm9", help="the data stage's folder (stats, train SMILES)")
    a.add_argument("--num-molecules", type=int, default=1000, help="molecules per model in the paired comparison")
    a.add_argument("--seed", type=int, default=20261206, help="sampling seed (never used in training)")
    a.add_argument("--segments", default=None, help="segments.jsonl of the training sittings")
    a.add_argument("--threads", type=int, default=1)
    a.add_argument("--reproduce", default="", help="the command that retrains it (written into the card)")
    a.add_argument("--summary", default="", help="one paragraph for the top of the card")
    a.set_defaults(run=run_ship_aligned)


def epochs(card: dict) -> float:
    """Epochs of the shipped weights (the run may have gone on past the selected step)."""
    t = card["training"]
    return card["weights"]["selected_step"] * t["epochs"] / t["steps"] if t["steps"] else 0.0


def run_list(args: argparse.Namespace) -> int:
    from elign.model.zoo import list_shipped

    models = list_shipped(args.models_dir)
    if not models:
        print(f"no shipped backbones in {args.models_dir}/")
        return 0
    print(
        "| name | preset | parameters | steps | epochs | molecule stab. | atom stab. | validity | uniqueness | "
        "molecules (seed) | sha256 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for m in (m for m in models if m.card.get("kind") != "aligned"):
        c, met = m.card, m.card["metrics"]
        pct = lambda k, met=met: f"{100 * met[k]:.1f} %" if met.get(k) is not None else "n/a"
        print(
            f"| {m.name} | {c['architecture']['preset']} | {c['architecture']['parameters']:,} | "
            f"{c['weights']['selected_step']:,} | {epochs(c):.1f} | {pct('molecule_stability')} | "
            f"{pct('atom_stability')} | {pct('validity')} | {pct('uniqueness')} | "
            f"{met['num_molecules']} ({met['seed']}) | {m.sha256[:12]} |"
        )
    aligned = [m for m in models if m.card.get("kind") == "aligned"]
    if aligned:
        print("\n| aligned model | from | iterations | Δ force RMS (eV/Å) | Δ molecule stab. | pairs (seed) | sha256 |")
        print("|---|---|---|---|---|---|---|")
    for m in aligned:
        c, paired = m.card, m.card["metrics"]["paired"]
        f, st = paired["force_rms_ev_per_ang"], paired["molecule_stable"]
        print(
            f"| {m.name} | {c['backbone']['name']} | {c['training']['iterations']} | {f['paired_diff']:+.3f} "
            f"(p {f['paired_p']:.2g}) | {100 * st['paired_diff']:+.1f} points | {f['n_pairs']} "
            f"({c['metrics']['seed']}) | {m.sha256[:12]} |"
        )
    return 0


def run_ship_aligned(args: argparse.Namespace) -> int:
    import logging

    import torch

    from elign.config import MLFFConfig
    from elign.diffusion.checkpoint import load_checkpoint
    from elign.mlff.registry import backend_from_config
    from elign.report.aligned_card import AlignedShipRequest, ship_aligned

    torch.set_num_threads(max(1, args.threads))
    mlff = load_checkpoint(args.checkpoint)["extra"]["config"]["finetune"]["mlff"]
    backend = backend_from_config(MLFFConfig(**{**mlff, "device": "cpu"}))
    req = AlignedShipRequest(
        Path(args.checkpoint),
        args.name,
        args.backbone,
        Path(args.models_dir),
        Path(args.data_dir),
        args.num_molecules,
        args.seed,
        segments=None if args.segments is None else Path(args.segments),
        reproduce=args.reproduce,
        summary=args.summary,
    )
    card = ship_aligned(req, backend)
    f = card["metrics"]["paired"]["force_rms_ev_per_ang"]
    logging.getLogger("elign.models").info(
        "shipped %s: paired force RMS difference %.3f eV/A [%.3f, %.3f], p %.2g over %d pairs",
        args.name,
        f["paired_diff"],
        f["paired_ci_low"],
        f["paired_ci_high"],
        f["paired_p"],
        f["n_pairs"],
    )
    return 0


def run_ship(args: argparse.Namespace) -> int:
    import logging

    import torch

    from elign.report.card import ShipRequest, ship_backbone

    torch.set_num_threads(max(1, args.threads))
    req = ShipRequest(
        Path(args.checkpoint),
        args.name,
        Path(args.models_dir),
        Path(args.data_dir),
        args.select,
        args.num_molecules,
        args.seed,
        valid_molecules=args.valid_molecules,
        reproduce=args.reproduce,
        summary=args.summary,
    )
    card = ship_backbone(req)
    m = card["metrics"]
    logging.getLogger("elign.models").info(
        "shipped %s (step %d): molecule stability %.3f, atom stability %.3f, validity %.3f, uniqueness %.3f on %d "
        "molecules (seed %d)",
        args.name,
        card["weights"]["selected_step"],
        m["molecule_stability"],
        m["atom_stability"],
        m["validity"],
        m["uniqueness"],
        m["num_molecules"],
        m["seed"],
    )
    return 0
