"""``elign models``: list the shipped models; ``elign models ship``: ship a backbone from a training checkpoint;
``elign models ship-aligned``: ship an aligned model with its paired comparison to its backbone.

    elign models                       # name, preset, size, steps, sample quality, sha256 of each
    elign models ship --checkpoint models/qm9-small/training/pretrained.pt.partial --name qm9-small \\
        --select best --num-molecules 1000 --data-dir results/data/qm9 --threads 1

A run uses a shipped backbone with ``pretrain.source: {kind: shipped, name: <name>}``.
The arguments only; the work: :mod:`elign.stages.models`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from elign.cli.options import add_shared_options, request_from_args, set_threads

_THREADS = "CPU threads for torch (default: 1)"


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
    add_shared_options(s, "--threads", default=1, help=_THREADS)
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
    a.add_argument("--models-dir", default="models", help="folder of shipped models (default: models)")
    a.add_argument("--data-dir", default="results/data/qm9", help="the data stage's folder (stats, train SMILES)")
    a.add_argument("--num-molecules", type=int, default=1000, help="molecules per model in the paired comparison")
    a.add_argument("--seed", type=int, default=20261206, help="sampling seed (never used in training)")
    a.add_argument("--segments", default=None, help="segments.jsonl of the training sittings")
    add_shared_options(a, "--threads", default=1, help=_THREADS)
    a.add_argument("--reproduce", default="", help="the command that retrains it (written into the card)")
    a.add_argument("--summary", default="", help="one paragraph for the top of the card")
    a.set_defaults(run=run_ship_aligned)


def run_list(args: argparse.Namespace) -> int:
    from elign.stages.models import models_table

    print(models_table(args.models_dir))
    return 0


def run_ship(args: argparse.Namespace) -> int:
    from elign.stages.models import ship_and_log
    from elign.stages.ship import ShipRequest

    set_threads(args.threads)
    paths = {k: Path(getattr(args, k)) for k in ("checkpoint", "models_dir", "data_dir")}
    ship_and_log(request_from_args(ShipRequest, args, **paths))
    return 0


def run_ship_aligned(args: argparse.Namespace) -> int:
    from elign.stages.models import ship_aligned_and_log
    from elign.stages.ship_aligned import AlignedShipRequest

    set_threads(args.threads)
    paths = {k: Path(getattr(args, k)) for k in ("checkpoint", "models_dir", "data_dir")}
    segments = None if args.segments is None else Path(args.segments)
    ship_aligned_and_log(request_from_args(AlignedShipRequest, args, segments=segments, **paths))
    return 0
