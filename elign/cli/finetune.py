"""``elign finetune``: FED-GRPO post-training of a pretrained model with MLFF force and energy rewards.

::

    elign finetune --config config/config.yaml --model results/models/qm9/pretrained.pt \\
        --stats results/data/qm9/stats.json --out results/models/qm9/aligned.pt \\
        --history results/models/qm9/finetune_history.parquet

The output checkpoint has the input's architecture (``load_model`` reads it; sampling costs the same).
A killed run restarted with the same command resumes from ``<out>.partial`` (:mod:`elign.training.checkpointing`).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from elign.cli.options import add_config_options, resolve_config
from elign.config import ConfigError

log = logging.getLogger("elign.finetune")


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
    p.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        default="float32",
        help="policy precision (float64 for exact comparisons in tests)",
    )
    p.add_argument(
        "--train",
        default=None,
        help="training split Parquet, or a .txt(.gz) of its novelty keys, one per line (needed when "
        "finetune.novelty_penalty is set)",
    )
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="end this sitting after the first iteration past so many minutes, with a resume file "
        "(<out>.partial); rerun the same command to go on",
    )
    p.set_defaults(run=run)


def training_keys_of(path: str) -> set[str]:
    """Novelty keys of the training split: from its Parquet, or from a text file of keys, one per line (``.txt``
    or ``.txt.gz``; a compact stand-in for the split on a machine the Parquet cannot be carried to)."""
    if path.endswith((".txt", ".txt.gz")):
        import gzip

        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as fh:
            return {line.strip() for line in fh if line.strip()}
    from elign.stages.evaluate import reference_keys

    return reference_keys(path, "smiles")


def run(args: argparse.Namespace) -> int:
    import torch

    from elign.data.sizes import stage_histogram
    from elign.diffusion.checkpoint import read_checkpoint
    from elign.rl.trainer import finetune

    config = resolve_config(args)
    if args.threads is not None:
        torch.set_num_threads(max(1, args.threads))
    history = Path(args.history) if args.history else Path(args.out).with_name("finetune_history.parquet")
    if config.finetune.source.kind != "train":
        from elign.rl.aligned_source import materialize_aligned

        info = materialize_aligned(config.finetune.source, args.model, args.out, history)
        log.info(
            "finetune: no training; aligned model from %s %s (sha256 %s, aligned from %s) -> %s",
            info["kind"],
            info.get("name", info["weights"]),
            info["sha256"][:12],
            info["backbone"]["sha256"][:12],
            args.out,
        )
        return 0
    if not Path(args.model).exists():  # a folder or a damaged file: load_checkpoint says what is wrong
        raise FileNotFoundError(f"--model: checkpoint {args.model} does not exist (run `elign pretrain` first)")
    try:
        model = read_checkpoint(args.model)  # the one read of the input: weights and sha256
    except ValueError as exc:
        raise ConfigError(f"--model: {exc}") from None
    histogram = stage_histogram(args.stats, "finetune.sizes") if config.finetune.sizes == "histogram" else None
    keys = None
    if config.finetune.novelty_penalty is not None:
        if args.train is None or not Path(args.train).is_file():
            raise ConfigError(f"finetune.novelty_penalty needs the training split: --train {args.train} is not a file")
        keys = training_keys_of(args.train)
    result = finetune(
        config,
        args.model,
        args.out,
        history,
        histogram=histogram,
        input_checkpoint=model,
        dtype=getattr(torch, args.dtype),
        progress=not args.no_progress,
        training_keys=keys,
        time_limit_s=None if args.max_minutes is None else 60.0 * args.max_minutes,
    )
    if Path(result.out) != Path(args.out):
        log.info(
            "finetune: stopped at iteration %d by --max-minutes; rerun the same command to go on", result.iteration
        )
        return 0
    last = result.last or {}
    log.info(
        "finetune done: %d iterations, %.1f s; last force RMS %.4g eV/A, KL %.3g; history %s",
        result.iteration,
        result.seconds,
        last.get("force_rms_mean_ev_per_ang", float("nan")),
        last.get("kl_ref", float("nan")),
        history,
    )
    return 0
