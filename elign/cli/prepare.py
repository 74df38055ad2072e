"""``elign prepare``: the data stage."""

from __future__ import annotations

import argparse
import json
import logging

from elign.cli.options import add_config_options, resolve_config

log = logging.getLogger("elign.prepare")


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="load a dataset, split it, write {train,valid,test}.parquet + stats.json")
    add_config_options(p)
    p.add_argument("--out-dir", required=True, help="folder for the Parquet files, e.g. results/data/qm9")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from elign.data.prepare import prepare

    config = resolve_config(args)
    log.info("preparing %s from source %s", config.data.dataset, config.data.source)
    stats = prepare(config, args.out_dir)
    log.info(
        "split sizes %s, skipped %d bad records, filtered %s, %.1f s",
        json.dumps(stats["split_sizes"]),
        stats["skipped_bad_records"]["count"],
        json.dumps(stats["filtered"]["by_reason"]),
        stats["seconds"],
    )
    return 0
