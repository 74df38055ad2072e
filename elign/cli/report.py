"""``elign report``: the report folder from explicitly named artifacts (tables, figures, report.md, index.html).

``elign report --metrics reference=results/metrics/qm9/reference.parquet --metrics pretrained=... --dft
pretrained=results/dft/qm9/pretrained.parquet --samples pretrained=results/samples/qm9/pretrained.parquet
--statistics results/report/qm9/statistics.csv --pretrain-history results/models/qm9/history.parquet
--finetune-history results/models/qm9/finetune_history.parquet --timing results/timing/qm9/sampling.json
--out-dir results/report/qm9 --config-json '{"seed": 0, "report": {...}}'``

Every input is optional: what is missing or unreadable is listed under "Notes" and its figure says so.
Files written: :mod:`elign.report.build`.
"""

from __future__ import annotations

import argparse
import logging

from elign.cli.options import add_config_options, named_path, named_paths, resolve_config

log = logging.getLogger("elign.report")


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="report folder: metric/statistics tables, PNG figures, report.md, index.html")
    add_config_options(p)
    named = {"type": named_path, "action": "append", "default": []}
    p.add_argument(
        "--metrics", metavar="NAME=PATH", help="per-molecule metrics Parquet (reference and models)", **named
    )
    p.add_argument("--dft", metavar="MODEL=PATH", help="DFT results Parquet of a model", **named)
    p.add_argument("--samples", metavar="MODEL=PATH", help="samples Parquet of a model (example molecules)", **named)
    p.add_argument(
        "--sample-summary",
        metavar="MODEL=PATH",
        **named,
        help="sample-stage summary JSON (sampling time when --timing is absent)",
    )
    p.add_argument("--statistics", default=None, help="statistics CSV of `elign stats`")
    p.add_argument("--pretrain-history", default=None, help="pretraining history.parquet")
    p.add_argument("--finetune-history", default=None, help="FED-GRPO finetune_history.parquet")
    p.add_argument("--timing", default=None, help="sampling timing JSON (time_sampling rule)")
    p.add_argument("--backbone", default=None, help="the pretrain stage's backbone.json (where the model came from)")
    p.add_argument("--aligned", default=None, help="the finetune stage's aligned.json (what 'aligned' is in this run)")
    p.add_argument("--title", default="elign report")
    p.add_argument("--out-dir", required=True, help="e.g. results/report/qm9")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from elign.report import ReportPaths, build_report

    cfg = resolve_config(args)
    paths = ReportPaths(
        out_dir=args.out_dir,
        metrics=named_paths(args.metrics, "--metrics"),
        dft=named_paths(args.dft, "--dft"),
        samples=named_paths(args.samples, "--samples"),
        sample_summaries=named_paths(args.sample_summary, "--sample-summary"),
        statistics=args.statistics,
        pretrain_history=args.pretrain_history,
        finetune_history=args.finetune_history,
        timing=args.timing,
        backbone=args.backbone,
        aligned=args.aligned,
    )
    result = build_report(paths, cfg.report, args.title)
    for note in result.notes:
        log.warning("note: %s", note)
    print(f"{args.out_dir}: {len(result.files)} files; {len(result.notes)} notes")
    return 0
