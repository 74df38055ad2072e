"""``elign stats``: the statistics table (each model against the baseline) from metrics and DFT Parquets.

``elign stats --metrics pretrained=results/metrics/qm9/pretrained.parquet --metrics aligned=... --dft
pretrained=results/dft/qm9/pretrained.parquet --dft aligned=... --out results/report/qm9/statistics.csv
--markdown results/report/qm9/statistics.md --config-json '{"seed": 0, "report": {...}}'``

The arguments only; the work: :mod:`elign.stages.stats` (method: :mod:`elign.stats.compare`).
"""

from __future__ import annotations

import argparse

from elign.cli.options import add_config_options, named_path, named_paths, resolve_config


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="statistics of each model against the baseline (bootstrap CIs, Welch, Mann-Whitney)")
    add_config_options(p)
    p.add_argument(
        "--metrics",
        action="append",
        type=named_path,
        metavar="NAME=PATH",
        help="per-molecule metrics Parquet of a model (evaluate stage); repeat per model",
    )
    p.add_argument(
        "--dft",
        action="append",
        type=named_path,
        metavar="MODEL=PATH",
        help="DFT results Parquet of a model (dft-gather); repeat per model",
    )
    p.add_argument(
        "--samples",
        action="append",
        type=named_path,
        metavar="MODEL=PATH",
        help="sample summary JSON of a model (sample stage): a model sampled with the baseline's seed, batch size "
        "and molecule count gets paired tests too (its DFT rows as well, when they hold the baseline's mol_ids); "
        "repeat per model",
    )
    p.add_argument("--out", required=True, help="statistics CSV, e.g. results/report/qm9/statistics.csv")
    p.add_argument("--markdown", default=None, help="also a Markdown table (default: <out stem>.md)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from elign.stages.stats import run_stats

    cfg = resolve_config(args)
    metrics, dft = named_paths(args.metrics, "--metrics"), named_paths(args.dft, "--dft")
    run_stats(cfg, metrics, dft, named_paths(args.samples, "--samples"), args.out, args.markdown)
    return 0
