"""``elign pretrain``: train the EDM backbone on a prepared dataset (resumable; torchrun for data parallel).

Single process::

    elign pretrain --config config/config.yaml --data-dir results/data/qm9 \\
        --out results/models/qm9/pretrained.pt --history results/models/qm9/history.parquet

Several processes (CPU: gloo, GPUs: nccl; pretrain.batch_size must be divisible by their number)::

    torchrun --standalone --nproc_per_node 2 -m elign.cli.main pretrain ...

A killed run restarted with the same command resumes from ``<out>.partial`` (see
:mod:`elign.training.pretrain_state`).

With ``pretrain.source.kind`` other than ``train`` (a shipped backbone, a file, an EDM checkpoint) nothing is
trained: the backbone is checked and written to ``--out`` (:mod:`elign.training.backbone`).
Either way ``--backbone-json`` (default: backbone.json beside ``--out``) records where the model came from.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from elign.cli.options import add_config_options, resolve_config

log = logging.getLogger("elign.pretrain")

_DTYPES = ("float32", "float64")


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="pretrain the EDM backbone on {data-dir}/train.parquet; write a checkpoint")
    add_config_options(p)
    p.add_argument("--data-dir", required=True, help="folder of the data stage, e.g. results/data/qm9")
    p.add_argument(
        "--out",
        required=True,
        help="final checkpoint, e.g. results/models/qm9/pretrained.pt (periodic checkpoints go to <out>.partial)",
    )
    p.add_argument("--history", default=None, help="history.parquet path (default: history.parquet beside --out)")
    p.add_argument(
        "--backbone-json", default=None, help="where the model came from (default: backbone.json beside --out)"
    )
    p.add_argument(
        "--dtype",
        choices=_DTYPES,
        default="float32",
        help="model and compute precision (float64 for exact comparisons in tests)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="end this sitting after so many minutes with a resume file (<out>.partial); rerun to go on",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from elign.io.molecules import read_molecules
    from elign.training import distributed as ddp
    from elign.training.pretrain import pretrain

    config = resolve_config(args)
    history = Path(args.history) if args.history else Path(args.out).with_name("history.parquet")
    backbone_json = Path(args.backbone_json) if args.backbone_json else Path(args.out).with_name("backbone.json")
    if config.pretrain.source.kind != "train":
        from elign.training.backbone import materialize_pretrained

        stats = Path(args.data_dir) / "stats.json"
        info = materialize_pretrained(
            config.pretrain.source, args.out, history, backbone_json, stats if stats.is_file() else None
        )
        log.info(
            "pretrain: no training; backbone from %s %s (sha256 %s) -> %s",
            info["kind"],
            info.get("name", info["weights"]),
            info["sha256"][:12],
            args.out,
        )
        return 0
    train_path = Path(args.data_dir) / "train.parquet"
    if not train_path.is_file():
        raise FileNotFoundError(f"training split not found: {train_path} (run `elign prepare` first)")
    info = ddp.init_from_env(config.pretrain.device)
    try:
        if not info.is_main:
            logging.getLogger("elign").setLevel(logging.WARNING)
        train = read_molecules(train_path)
        result = pretrain(
            config,
            train,
            args.out,
            history,
            dtype=getattr(torch, args.dtype),
            progress=not args.no_progress,
            source=str(train_path),
            time_limit_s=None if args.max_minutes is None else 60.0 * args.max_minutes,
        )
    finally:
        ddp.shutdown()
    if info.is_main and Path(result.out) != Path(args.out):
        log.info("pretrain: stopped at step %d by --max-minutes; rerun the same command to go on", result.step)
        return 0
    if info.is_main:
        from elign.io.atomic import write_json_atomic
        from elign.io.provenance import git_sha

        write_json_atomic(
            backbone_json,
            {
                "kind": "train",
                "weights": str(args.out),
                "steps": result.step,
                "train_seconds": result.seconds,
                "git_sha": git_sha(),
            },
        )
        loss = "n/a" if result.loss is None else f"{result.loss:.5f}"
        log.info(
            "pretrain done: step %d, last logged loss %s, %.1f s; history %s",
            result.step,
            loss,
            result.seconds,
            history,
        )
    return 0
