"""``elign finetune``: FED-GRPO post-training of a pretrained model with MLFF force and energy rewards.

::

    elign finetune --config config/config.yaml --model results/models/qm9/pretrained.pt \\
        --stats results/data/qm9/stats.json --out results/models/qm9/aligned.pt \\
        --history results/models/qm9/finetune_history.parquet

The arguments only; the work: :mod:`elign.stages.finetune`.
"""

from __future__ import annotations

import argparse

from elign.cli.options import (
    add_config_options,
    add_shared_options,
    resolve_config,
    set_threads,
)


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="FED-GRPO: align a pretrained model with MLFF forces and energies")
    add_config_options(p)
    p.add_argument("--model", required=True, help="pretrained checkpoint, e.g. results/models/qm9/pretrained.pt")
    p.add_argument(
        "--stats", default=None, help="stats.json of the data stage (needed when finetune.sizes = 'histogram')"
    )
    p.add_argument(
        "--out",
        required=True,
        help="aligned checkpoint, e.g. results/models/qm9/aligned.pt (periodic checkpoints go to <out>.partial)",
    )
    p.add_argument(
        "--history", default=None, help="per-iteration Parquet (default: finetune_history.parquet beside --out)"
    )
    add_shared_options(p, "--dtype")
    p.add_argument(
        "--train",
        default=None,
        help="training split Parquet, or a .txt(.gz) of its novelty keys, one per line (needed when "
        "finetune.novelty_penalty is set)",
    )
    add_shared_options(p, "--threads", "--no-progress", "--max-minutes")
    p.add_argument(
        "--stop-after-iteration",
        type=int,
        default=None,
        metavar="N",
        help="end this sitting after iteration N with a resume file (<out>.partial), e.g. a short screen of a "
        "setting that a full run may later resume from the same bits",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from elign.stages.finetune import FinetuneRequest, run_finetune

    config = resolve_config(args)
    set_threads(args.threads)
    request = FinetuneRequest(
        args.model,
        args.out,
        args.stats,
        args.history,
        args.dtype,
        args.train,
        not args.no_progress,
        args.max_minutes,
        stop_after_iteration=args.stop_after_iteration,
    )
    run_finetune(config, request)
    return 0
