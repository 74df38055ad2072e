"""``elign evaluate``: per-molecule metrics of a sample set or a data split; ``elign summarize``: one table.

The arguments only; the work: :mod:`elign.stages.evaluate`.
"""

from __future__ import annotations

import argparse

from elign.cli.options import add_config_options, add_shared_options, resolve_config, set_threads


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="stability, validity/uniqueness/novelty and MLFF energy/forces per molecule")
    add_config_options(p)
    p.add_argument("--input", required=True, help="molecule Parquet: samples or a data split")
    p.add_argument("--name", required=True, help="row name in the summary, e.g. pretrained or qm9_test")
    p.add_argument("--train", required=True, help="training split Parquet (novelty reference)")
    p.add_argument("--out", required=True, help="per-molecule metrics Parquet")
    p.add_argument("--summary", required=True, help="summary JSON of this set")
    p.add_argument(
        "--max-molecules",
        type=int,
        default=None,
        help="evaluate a random subset of N molecules (seed: seed + evaluate.reference_seed_offset; file order kept)",
    )
    add_shared_options(p, "--threads")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from elign.stages.evaluate import EvaluateRequest, run_evaluate

    cfg = resolve_config(args)
    set_threads(args.threads)
    run_evaluate(cfg, EvaluateRequest(args.input, args.name, args.train, args.out, args.summary, args.max_molecules))
    return 0


def add_summarize_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="collect evaluate summaries into one table (CSV + Markdown)")
    p.add_argument("--summaries", nargs="+", required=True, help="summary JSON files, one per model")
    p.add_argument("--csv", required=True)
    p.add_argument("--markdown", required=True)
    p.set_defaults(run=run_summarize)


def run_summarize(args: argparse.Namespace) -> int:
    from elign.stages.evaluate import summarize_files

    print(summarize_files(args.summaries, args.csv, args.markdown).to_string(index=False))
    return 0
