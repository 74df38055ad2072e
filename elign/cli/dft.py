"""``elign dft``: DFT single points of one shard of a model's paired sample subset; ``elign dft-gather``: join.

``elign dft --samples S.parquet --metrics M.parquet --shard i --of n --out results/dft/{dataset}/{model}/
shard_{i}.parquet`` picks ``dft.molecules_per_model`` molecules (:mod:`elign.dft.select`: same size mix for
every model, seed = config seed + 3000), takes contiguous shard i of n, and runs each molecule through
PySCF in a child process with ``dft.time_limit_s`` (:mod:`elign.dft.worker`). A killed shard resumes from
``<out>.partial.jsonl`` (:mod:`elign.dft.jobs`); the shard file is written atomically at the end.
Isolated-atom energies for formation energies are cached in ``--atom-cache`` (:mod:`elign.dft.atoms`).

``elign dft-gather --shards shard_*.parquet --out results/dft/{dataset}/{model}.parquet`` checks that the
shards form one complete set, concatenates them and prints the status counts (and a summary JSON).
"""

from __future__ import annotations

import argparse
import json
import logging
import os

from elign.cli.options import add_config_options, resolve_config
from elign.config import ConfigError

log = logging.getLogger("elign.dft")


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="PySCF single point + forces of one shard of a model's paired sample subset")
    add_config_options(p)
    p.add_argument("--samples", required=True, help="samples Parquet of one model")
    p.add_argument("--metrics", default=None, help="its metrics Parquet (needed when dft.valid_only)")
    p.add_argument("--stats", default=None,
                   help="data-stage stats.json: draw target sizes from its training histogram "
                        "(default: the sizes of all rows of --samples)")
    p.add_argument("--shard", type=int, default=0, help="0-based shard index")
    p.add_argument("--of", type=int, default=None, help="number of shards (default: dft.shards)")
    p.add_argument("--out", required=True, help="shard Parquet, e.g. results/dft/qm9/pretrained/shard_0.parquet")
    p.add_argument("--atom-cache", default="resources/dft_atoms", help="folder of isolated-atom energy JSON files")
    p.add_argument("--threads", type=int, default=None,
                   help="OpenMP threads for PySCF (overrides dft.threads; the rule passes its own threads)")
    p.set_defaults(run=run)


def _threads(cfg_threads: int | None) -> int:
    if cfg_threads is not None:
        return cfg_threads
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _read_inputs(args, dft):
    import pandas as pd

    from elign.diffusion.sampler import load_size_histogram
    from elign.io.molecules import read_molecules

    samples = read_molecules(args.samples)
    metrics = None
    if dft.valid_only:
        if args.metrics is None:
            raise ConfigError("dft.valid_only is true: pass --metrics (the evaluate stage's Parquet of these "
                              "samples) or set dft.valid_only: false")
        if not os.path.exists(args.metrics):
            raise FileNotFoundError(f"metrics file not found: {args.metrics}")
        metrics = pd.read_parquet(args.metrics)
    histogram = None
    if args.stats is not None:
        try:
            histogram = load_size_histogram(args.stats)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    return samples, metrics, histogram


def _jobs(samples, selection):
    from elign.dft.jobs import MoleculeJob

    jobs = []
    for idx, target, sel in zip(selection.index, selection.target_num_atoms, selection.selection_index):
        rec = samples.molecule(int(idx))
        jobs.append(MoleculeJob(rec.mol_id, rec.atomic_numbers, rec.positions_ang, int(sel), int(target)))
    return jobs


def run(args: argparse.Namespace) -> int:
    from elign.dft.atoms import AtomReferences
    from elign.dft.jobs import Checkpoint, fingerprint, run_jobs
    from elign.dft.level import DftLevel
    from elign.dft.pyscf_runner import DftDeviceError, check_cuda
    from elign.dft.results import rows_to_arrow, status_counts, summarize, write_results
    from elign.dft.select import SELECTION_SEED_OFFSET, select_molecules
    from elign.dft.worker import DftWorker, atom_solver
    from elign.io.provenance import provenance

    cfg = resolve_config(args)
    dft = cfg.dft
    n_shards = dft.shards if args.of is None else args.of
    if n_shards < 1 or not 0 <= args.shard < n_shards:
        raise ConfigError(f"--shard {args.shard} --of {n_shards}: need 0 <= shard < of")
    try:
        level = DftLevel.from_config(dft)
    except ValueError as exc:
        raise ConfigError(f"dft: {exc}") from None
    if level.device == "cuda":
        try:
            check_cuda()
        except DftDeviceError as exc:
            raise ConfigError(str(exc)) from None
    samples, metrics, histogram = _read_inputs(args, dft)
    seed = cfg.seed + SELECTION_SEED_OFFSET
    try:
        selection = select_molecules(samples, metrics, dft.molecules_per_model, seed, dft.valid_only, histogram)
    except ValueError as exc:
        raise ConfigError(f"{args.samples}: {exc}") from None
    jobs = _jobs(samples, selection.shard(args.shard, n_shards))
    all_jobs = _jobs(samples, selection)
    threads = _threads(dft.threads if args.threads is None else max(1, args.threads))
    log.info("shard %d/%d: %d of %d selected molecules; level %s; %d threads", args.shard, n_shards, len(jobs),
             len(selection), level.describe(), threads)
    checkpoint = Checkpoint(f"{args.out}.partial.jsonl", fingerprint(jobs, level.describe()))
    with DftWorker(threads, dft.time_limit_s) as worker:
        atoms = AtomReferences(level, atom_solver(worker, level), args.atom_cache)
        rows = run_jobs(jobs, worker, level, atoms, checkpoint)
    meta = provenance({"seed": cfg.seed, "dft": dft.model_dump(mode="json")}, seed=seed, stage="dft",
                      samples=args.samples, metrics=args.metrics, stats=args.stats, shard=args.shard, of=n_shards)
    meta.update(level=json.dumps(level.describe(), sort_keys=True),
                selection_fingerprint=fingerprint(all_jobs, level.describe()))
    write_results(args.out, rows, meta)
    checkpoint.remove()
    frame = rows_to_arrow(rows).to_pandas()
    log.info("shard %d/%d done: %s", args.shard, n_shards, json.dumps(summarize(frame)))
    print(json.dumps(status_counts(frame)))
    return 0


def add_gather_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="join a model's DFT shard files into one Parquet; print the status counts")
    p.add_argument("--shards", nargs="+", required=True, help="shard Parquet files (all n of them)")
    p.add_argument("--out", required=True, help="e.g. results/dft/qm9/pretrained.parquet")
    p.add_argument("--summary", default=None, help="optional summary JSON (status counts, means over ok rows)")
    p.set_defaults(run=run_gather)


def run_gather(args: argparse.Namespace) -> int:
    import pyarrow.parquet as pq

    from elign.dft.results import gather, summarize
    from elign.io.atomic import atomic_path, write_json_atomic

    try:
        table, meta = gather(args.shards)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    with atomic_path(args.out) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    summary = summarize(table.to_pandas())
    if args.summary:
        write_json_atomic(args.summary, {**summary, "provenance": meta})
    print(f"{args.out}: {summary['num_molecules']} molecules; status {json.dumps(summary['status_counts'])}")
    return 0
