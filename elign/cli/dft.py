"""``elign dft``: DFT single points of one shard of a model's paired sample subset; ``elign dft-gather``: join.

``elign dft --samples S.parquet --metrics M.parquet --shard i --of n --out results/dft/{dataset}/{model}/
shard_{i}.parquet`` picks ``dft.molecules_per_model`` molecules (:mod:`elign.dft.select`: same size mix for
every model, seed = config seed + 3000), takes contiguous shard i of n, and runs each molecule through
PySCF in a child process (:mod:`elign.dft.worker`; SCF cycle caps bound the work, ``dft.safety_time_limit_s``
is a wall-clock safety net). A killed shard resumes from
``<out>.partial.jsonl`` (:mod:`elign.dft.jobs`); the shard file is written atomically at the end.
Isolated-atom energies for formation energies are cached in ``--atom-cache`` (:mod:`elign.dft.atoms`).

``elign dft-gather --shards shard_*.parquet --out results/dft/{dataset}/{model}.parquet`` checks that the
shards form one complete set, concatenates them and prints the status counts (and a summary JSON).
The arguments only; the work: :mod:`elign.dft.stage`.
"""

from __future__ import annotations

import argparse
import json

from elign.cli.options import add_config_options, resolve_config


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="PySCF single point + forces of one shard of a model's paired sample subset")
    add_config_options(p)
    p.add_argument("--samples", required=True, help="samples Parquet of one model")
    p.add_argument("--metrics", default=None, help="its metrics Parquet (needed when dft.valid_only)")
    p.add_argument(
        "--stats",
        default=None,
        help="data-stage stats.json: draw target sizes from its training histogram "
        "(default: the sizes of all rows of --samples)",
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
        "for the guided baseline). Sizes are a prefix of the same seeded draw, so the molecules stay paired",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="OpenMP threads for PySCF (overrides dft.threads; the rule passes its own threads)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from elign.dft.stage import ShardRequest, run_shard

    request = ShardRequest(
        samples=args.samples,
        out=args.out,
        metrics=args.metrics,
        stats=args.stats,
        shard=args.shard,
        of=args.of,
        atom_cache=args.atom_cache,
        threads=args.threads,
        molecules=args.molecules,
    )
    print(json.dumps(run_shard(resolve_config(args), request)))
    return 0


def add_gather_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="join a model's DFT shard files into one Parquet; print the status counts")
    p.add_argument("--shards", nargs="+", required=True, help="shard Parquet files (all n of them)")
    p.add_argument("--out", required=True, help="e.g. results/dft/qm9/pretrained.parquet")
    p.add_argument("--summary", default=None, help="optional summary JSON (status counts, means over ok rows)")
    p.set_defaults(run=run_gather)


def run_gather(args: argparse.Namespace) -> int:
    from elign.dft.stage import gather_shards

    summary = gather_shards(args.shards, args.out, args.summary)
    print(f"{args.out}: {summary['num_molecules']} molecules; status {json.dumps(summary['status_counts'])}")
    return 0
