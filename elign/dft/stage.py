"""The DFT stage's work: one shard of a model's paired sample subset through PySCF, and the gather.

:func:`run_shard` picks ``dft.molecules_per_model`` molecules, or the request's ``molecules``
(:mod:`elign.dft.select`: same size mix for every model, seed = config seed + 3000), takes contiguous
shard i of n, and runs each molecule through PySCF in a child process (:mod:`elign.dft.worker`). The SCF
caps (``dft.max_cycles``, ``dft.newton_cycles``) bound the work; ``dft.safety_time_limit_s`` is only a
wall-clock safety net. A killed shard resumes from ``<out>.partial.jsonl`` (:mod:`elign.dft.jobs`); the
shard file is written atomically at the end.
Isolated-atom energies for formation energies are cached in ``atom_cache`` (:mod:`elign.dft.atoms`).
:func:`gather_shards` checks that the shards form one complete set and concatenates them.

No torch here: the size histogram is read by :mod:`elign.data.sizes`.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass

from elign.config import ConfigError, ElignConfig

log = logging.getLogger("elign.dft")


@dataclass(frozen=True)
class ShardRequest:
    """One ``elign dft`` job: inputs, shard i of ``of`` (None = ``dft.shards``), output, threads
    (None = ``dft.threads``, else all CPUs this process may use) and the model's number of molecules
    (None = ``dft.molecules_per_model``)."""

    samples: str
    out: str
    metrics: str | None = None
    stats: str | None = None
    shard: int = 0
    of: int | None = None
    atom_cache: str = "resources/dft_atoms"
    threads: int | None = None
    molecules: int | None = None


def _threads(cfg_threads: int | None) -> int:
    if cfg_threads is not None:
        return cfg_threads
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _read_inputs(req: ShardRequest, dft):
    import pandas as pd

    from elign.data.sizes import stage_histogram
    from elign.io.molecules import read_molecules

    samples = read_molecules(req.samples)
    metrics = None
    if dft.valid_only:
        if req.metrics is None:
            raise ConfigError(
                "dft.valid_only is true: pass --metrics (the evaluate stage's Parquet of these "
                "samples) or set dft.valid_only: false"
            )
        if not os.path.exists(req.metrics):
            raise FileNotFoundError(f"metrics file not found: {req.metrics}")
        metrics = pd.read_parquet(req.metrics)
    return samples, metrics, stage_histogram(req.stats)


def _size_cap(samples, histogram, max_atoms: int | None):
    """(samples of at most ``max_atoms`` atoms, the histogram at or below it, {skipped: count}) for dft.max_atoms.

    The same cap applies to every model's histogram, so their target sizes stay paired; larger samples are never
    eligible. The count of samples left out is logged and kept in the shard's metadata.
    """
    if max_atoms is None:
        return samples, histogram, {}
    import numpy as np

    keep = np.flatnonzero(samples.num_atoms <= max_atoms)
    skipped = {"max_atoms": int(max_atoms), "samples_over_max_atoms": int(len(samples) - len(keep))}
    if histogram is not None:
        histogram = {n: c for n, c in histogram.items() if int(n) <= max_atoms}
        if not histogram:
            raise ConfigError(f"dft.max_atoms {max_atoms}: no training molecule is that small; raise the cap")
    if len(keep) == 0:
        raise ConfigError(f"dft.max_atoms {max_atoms}: no sample has at most {max_atoms} atoms; raise the cap")
    log.info(
        "dft.max_atoms %d: %d of %d samples are larger and not eligible",
        max_atoms,
        len(samples) - len(keep),
        len(samples),
    )
    return samples.take(keep), histogram, skipped


def _jobs(samples, selection):
    from elign.dft.jobs import MoleculeJob

    jobs = []
    for idx, target, sel in zip(selection.index, selection.target_num_atoms, selection.selection_index):
        rec = samples.molecule(int(idx))
        jobs.append(MoleculeJob(rec.mol_id, rec.atomic_numbers, rec.positions_ang, int(sel), int(target)))
    return jobs


def _check_level(level, jobs) -> None:
    """ConfigError before the first SCF when PySCF does not know the functional, or the basis lacks an element
    of the selected molecules (the check the config loader runs: :func:`elign.config_resources.pyscf_level_problems`);
    otherwise every molecule would become an error row."""
    from elign.config_resources import pyscf_level_problems
    from elign.elements import symbol

    symbols = sorted({symbol(int(z)) for job in jobs for z in job.atomic_numbers})
    problems = pyscf_level_problems(level.functional, level.basis, symbols)
    if problems:
        raise ConfigError("\n".join(f"{key} = {getattr(level, key[4:])!r}: {why}" for key, why in problems))


def run_shard(cfg: ElignConfig, req: ShardRequest) -> dict[str, int]:
    """Run one shard (module doc); returns its status counts."""
    from elign.dft.atoms import AtomReferences
    from elign.dft.jobs import Checkpoint, fingerprint, run_jobs
    from elign.dft.level import DftLevel
    from elign.dft.pyscf_runner import DftDeviceError, check_cuda
    from elign.dft.results import rows_to_arrow, status_counts, summarize, write_results
    from elign.dft.select import SELECTION_SEED_OFFSET, select_molecules
    from elign.dft.worker import DftWorker, atom_solver
    from elign.io.provenance import provenance

    dft = cfg.dft
    n_shards = dft.shards if req.of is None else req.of
    if n_shards < 1 or not 0 <= req.shard < n_shards:
        raise ConfigError(f"--shard {req.shard} --of {n_shards}: need 0 <= shard < of")
    try:
        level = DftLevel.from_config(dft)
    except ValueError as exc:
        raise ConfigError(f"dft: {exc}") from None
    if level.device == "cuda":
        try:
            check_cuda()
        except DftDeviceError as exc:
            raise ConfigError(str(exc)) from None
    samples, metrics, histogram = _read_inputs(req, dft)
    samples, histogram, skipped = _size_cap(samples, histogram, dft.max_atoms)
    seed = cfg.seed + SELECTION_SEED_OFFSET
    k = dft.molecules_per_model if req.molecules is None else req.molecules
    if k < 1:
        raise ConfigError(f"--molecules {k}: need at least 1")
    try:
        selection = select_molecules(samples, metrics, k, seed, dft.valid_only, histogram)
    except ValueError as exc:
        raise ConfigError(f"{req.samples}: {exc}") from None
    jobs = _jobs(samples, selection.shard(req.shard, n_shards))
    all_jobs = _jobs(samples, selection)
    _check_level(level, all_jobs)
    threads = _threads(dft.threads if req.threads is None else max(1, req.threads))
    log.info(
        "shard %d/%d: %d of %d selected molecules; level %s; %d threads",
        req.shard,
        n_shards,
        len(jobs),
        len(selection),
        level.describe(),
        threads,
    )
    checkpoint = Checkpoint(f"{req.out}.partial.jsonl", fingerprint(jobs, level.describe()))
    with DftWorker(threads, dft.safety_time_limit_s) as worker:
        atoms = AtomReferences(level, atom_solver(worker, level), req.atom_cache)
        rows = run_jobs(jobs, worker, level, atoms, checkpoint)
    meta = provenance(
        {"seed": cfg.seed, "dft": dft.model_dump(mode="json")},
        seed=seed,
        stage="dft",
        samples=req.samples,
        metrics=req.metrics,
        stats=req.stats,
        shard=req.shard,
        of=n_shards,
    )
    meta.update(
        level=json.dumps(level.describe(), sort_keys=True),
        selection_fingerprint=fingerprint(all_jobs, level.describe()),
        size_cap=json.dumps(skipped, sort_keys=True),
    )
    write_results(req.out, rows, meta)
    checkpoint.remove()
    frame = rows_to_arrow(rows).to_pandas()
    log.info("shard %d/%d done: %s", req.shard, n_shards, json.dumps(summarize(frame)))
    return status_counts(frame)


def gather_shards(shards: list[str], out: str, summary_path: str | None = None) -> dict:
    """Join a model's shard files into ``out`` (and the optional summary JSON); returns the summary."""
    import pyarrow.parquet as pq

    from elign.dft.results import gather, summarize
    from elign.io.atomic import atomic_path, write_json_atomic

    try:
        table, meta = gather(shards)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    summary = summarize(table.to_pandas())
    if summary_path:
        write_json_atomic(summary_path, {**summary, "provenance": meta})
    return summary
