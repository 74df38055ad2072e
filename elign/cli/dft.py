"""``elign dft-select``: the paired DFT selection; ``elign dft``: one shard of a model's DFT molecules;
``elign dft-gather``: join.

    elign dft-select --samples pretrained.parquet --metrics pretrained_metrics.parquet \
        --summary pretrained.summary.json --out results/dft/{dataset}/selection.parquet
    elign dft --samples S.parquet --selection selection.parquet --sample-summary S.summary.json \
        --shard i --of n --out results/dft/{dataset}/{model}/shard_{i}.parquet
    elign dft-gather --shards shard_*.parquet --out results/dft/{dataset}/{model}.parquet

The arguments only; the work (pairing, shards, resume, gather): :mod:`elign.stages.dft`.
"""

from __future__ import annotations

import argparse
import json

from elign.cli.options import add_config_options, add_shared_options, request_from_args, resolve_config


def add_select_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="choose the DFT molecules once, by mol_id, from the baseline's sample")
    add_config_options(p)
    p.add_argument("--samples", required=True, help="samples Parquet of the baseline (report.baseline_model)")
    p.add_argument("--metrics", default=None, help="its metrics Parquet (needed for valid_only / mlff_scored_only)")
    p.add_argument("--stats", default=None, help="data-stage stats.json (size targets from its training histogram)")
    p.add_argument("--summary", default=None, help="its sample summary JSON (the noise design other models must share)")
    p.add_argument("--out", required=True, help="e.g. results/dft/qm9/selection.parquet")
    p.set_defaults(run=run_select)


def run_select(args: argparse.Namespace) -> int:
    from elign.stages.dft import choose_selection

    n = choose_selection(resolve_config(args), args.samples, args.metrics, args.stats, args.summary, args.out)
    print(f"{args.out}: {n} molecules")
    return 0


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="PySCF single point + forces of one shard of a model's DFT molecules")
    add_config_options(p)
    p.add_argument("--samples", required=True, help="samples Parquet of one model")
    p.add_argument("--metrics", default=None, help="its metrics Parquet (needed when dft.valid_only)")
    p.add_argument(
        "--stats",
        default=None,
        help="data-stage stats.json: draw target sizes from its training histogram "
        "(default: the sizes of all rows of --samples)",
    )
    p.add_argument("--selection", default=None, help="the paired selection (elign dft-select)")
    p.add_argument(
        "--sample-summary",
        default=None,
        help="this model's sample summary JSON: with the baseline's seed, batch size and molecule count, the "
        "selection's mol_ids (paired); otherwise molecules of the same sizes (unpaired)",
    )
    p.add_argument("--shard", type=int, default=0, help="0-based shard index")
    p.add_argument("--of", type=int, default=None, help="number of shards (default: dft.shards)")
    p.add_argument("--out", required=True, help="shard Parquet, e.g. results/dft/qm9/pretrained/shard_0.parquet")
    p.add_argument("--atom-cache", default="resources/dft_atoms", help="folder of isolated-atom energy JSON files")
    p.add_argument(
        "--molecules",
        type=int,
        default=None,
        help="molecules of this model (default: dft.molecules_per_model; the rule passes dft.guided_molecules "
        "for the guided baseline): the first ones of the selection",
    )
    add_shared_options(
        p, "--threads", help="OpenMP threads for PySCF (overrides dft.threads; the rule passes its own threads)"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from elign.stages.dft import ShardRequest, run_shard

    request = request_from_args(ShardRequest, args)
    print(json.dumps(run_shard(resolve_config(args), request)))
    return 0


def add_gather_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="join a model's DFT shard files into one Parquet; print the status counts")
    p.add_argument("--shards", nargs="+", required=True, help="shard Parquet files (all n of them)")
    p.add_argument("--out", required=True, help="e.g. results/dft/qm9/pretrained.parquet")
    p.add_argument("--summary", default=None, help="optional summary JSON (status counts, means over ok rows)")
    p.set_defaults(run=run_gather)


def run_gather(args: argparse.Namespace) -> int:
    from elign.stages.dft import gather_shards

    summary = gather_shards(args.shards, args.out, args.summary)
    print(f"{args.out}: {summary['num_molecules']} molecules; status {json.dumps(summary['status_counts'])}")
    return 0
