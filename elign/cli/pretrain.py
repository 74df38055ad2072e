"""``elign pretrain``: train the EDM backbone on a prepared dataset (resumable; torchrun for data parallel).

Single process::

    elign pretrain --config config/config.yaml --data-dir results/data/qm9 \\
        --out results/models/qm9/pretrained.pt --history results/models/qm9/history.parquet

Several processes (CPU: gloo, GPUs: nccl; pretrain.batch_size must be divisible by their number)::

    torchrun --standalone --nproc_per_node 2 -m elign.cli.main pretrain ...

A killed run restarted with the same command resumes from ``<out>.partial``. With ``pretrain.source.kind``
other than ``train`` nothing is trained: the backbone is checked and written to ``--out``.
Either way ``--backbone-json`` (default: backbone.json beside ``--out``) records where the model came from.
The arguments only; the work: :mod:`elign.stages.pretrain`.
"""

from __future__ import annotations

import argparse

from elign.cli.options import (
    add_config_options,
    add_shared_options,
    resolve_config,
)


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
    add_shared_options(p, "--dtype", "--no-progress", "--max-minutes")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from elign.stages.pretrain import PretrainRequest, run_pretrain

    request = PretrainRequest(
        args.data_dir, args.out, args.history, args.backbone_json, args.dtype, not args.no_progress, args.max_minutes
    )
    run_pretrain(resolve_config(args), request)
    return 0
