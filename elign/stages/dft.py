"""The DFT stage's work: the paired selection, one shard of a model's DFT molecules through PySCF, the gather.

:func:`choose_selection` (``elign dft-select``) chooses ``dft.molecules_per_model`` mol_ids once, from the
baseline's sample alone (:mod:`elign.dft.pairing`). :func:`run_shard` takes the first ``dft.molecules_per_model``
(or the request's ``molecules``) of them: the same mol_ids for a model sampled with the baseline's noise
(paired; checked against the sample summary), else molecules of the same sizes (unpaired). Without a
selection file it falls back to a size-matched draw per model (:mod:`elign.dft.select`, seed = config seed +
3000). It takes contiguous shard i of n and runs each molecule through PySCF in a child process
(:mod:`elign.dft.worker`), the first ``dft.relax_molecules`` of the selection also through a DFT relaxation
(:mod:`elign.dft.relax`). The SCF
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
    (None = ``dft.molecules_per_model``); ``selection``: the paired selection file, with ``sample_summary``
    the model's sample summary JSON (decides paired by mol_id or unpaired by size)."""

    samples: str
    out: str
    metrics: str | None = None
    stats: str | None = None
    shard: int = 0
    of: int | None = None
    atom_cache: str = "resources/dft_atoms"
    threads: int | None = None
    molecules: int | None = None
    selection: str | None = None
    sample_summary: str | None = None


def _threads(cfg_threads: int | None) -> int:
    if cfg_threads is not None:
        return cfg_threads
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _read_metrics(req, dft, needed: bool):
    import pandas as pd

    if not needed:
        return None
    if req.metrics is None:
        raise ConfigError(
            "dft.valid_only is true: pass --metrics (the evaluate stage's Parquet of these "
            "samples) or set dft.valid_only: false"
        )
    if not os.path.exists(req.metrics):
        raise FileNotFoundError(f"metrics file not found: {req.metrics}")
    return pd.read_parquet(req.metrics)


def _read_json(path: str | None) -> dict | None:
    if path is None:
        return None
    if not os.path.exists(path):
        raise FileNotFoundError(f"sample summary not found: {path}")
    return json.loads(open(path).read())


def _select(cfg: ElignConfig, req: ShardRequest, samples, k: int):
    """(Selection, how: "paired" / "unpaired" / "per-model", the samples it indexes: those within dft.max_atoms,
    the size cap's counts) of this model's k DFT molecules (module doc)."""
    from elign.data.sizes import stage_histogram
    from elign.dft import pairing
    from elign.dft.select import SELECTION_SEED_OFFSET, select_molecules

    dft, seed = cfg.dft, cfg.seed + SELECTION_SEED_OFFSET
    samples, histogram, skipped = _size_cap(samples, stage_histogram(req.stats), dft.max_atoms)
    try:
        if req.selection is None:
            metrics = _read_metrics(req, dft, dft.valid_only)
            chosen = select_molecules(samples, metrics, k, seed, dft.valid_only, histogram)
            return chosen, "per-model", samples, skipped
        frame, meta = pairing.read_selection(req.selection)
        paired, why = pairing.same_noise(meta, _read_json(req.sample_summary))
        log.info("%s: %s (%s)", req.samples, "paired by mol_id" if paired else "unpaired, by size", why)
        if paired:
            return pairing.by_mol_id(samples, frame, k), "paired", samples, skipped
        metrics = _read_metrics(req, dft, dft.valid_only)
        return pairing.by_size(samples, metrics, frame, k, seed, dft.valid_only), "unpaired", samples, skipped
    except ValueError as exc:
        raise ConfigError(f"{req.samples}: {exc}") from None


def choose_selection(
    cfg: ElignConfig, samples: str, metrics: str | None, stats: str | None, summary: str | None, out: str
) -> int:
    """``elign dft-select``: the paired selection from the baseline's files (:mod:`elign.dft.pairing`);
    returns the number of molecules chosen."""
    import pandas as pd

    from elign.data.sizes import stage_histogram
    from elign.dft import pairing
    from elign.dft.select import SELECTION_SEED_OFFSET
    from elign.io.molecules import read_molecules
    from elign.io.provenance import provenance

    dft, seed = cfg.dft, cfg.seed + SELECTION_SEED_OFFSET
    needs_metrics = dft.valid_only or dft.mlff_scored_only
    if needs_metrics and (metrics is None or not os.path.exists(metrics)):
        raise ConfigError(
            f"dft.valid_only / dft.mlff_scored_only need the baseline's metrics Parquet (--metrics; got {metrics})"
        )
    frame = pd.read_parquet(metrics) if needs_metrics else None
    table, histogram, _ = _size_cap(read_molecules(samples), stage_histogram(stats), dft.max_atoms)
    try:
        chosen = pairing.choose(
            table, frame, dft.molecules_per_model, seed, dft.valid_only, dft.mlff_scored_only, histogram
        )
    except ValueError as exc:
        raise ConfigError(f"{samples}: {exc}") from None
    meta = provenance(
        {"seed": cfg.seed, "dft": dft.model_dump(mode="json")},
        seed=seed,
        stage="dft-select",
        samples=samples,
        metrics=metrics,
        stats=stats,
    )
    meta.update(baseline=cfg.report.baseline_model, design=pairing.sample_design(_read_json(summary)))
    pairing.write_selection(out, chosen, meta)
    log.info(
        "DFT selection: %d of the baseline's molecules (mol_ids %s...) -> %s",
        len(chosen),
        chosen["mol_id"].tolist()[:8],
        out,
    )
    return len(chosen)


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


def _jobs(samples, selection, relax_molecules: int = 0, relax_max_steps: int = 0):
    """One job per selected molecule; the first ``relax_molecules`` of the selection also relax."""
    from elign.dft.jobs import MoleculeJob

    jobs = []
    for idx, target, sel in zip(selection.index, selection.target_num_atoms, selection.selection_index):
        rec = samples.molecule(int(idx))
        steps = relax_max_steps if int(sel) < relax_molecules else 0
        jobs.append(MoleculeJob(rec.mol_id, rec.atomic_numbers, rec.positions_ang, int(sel), int(target), {}, steps))
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
    from elign.dft.select import SELECTION_SEED_OFFSET
    from elign.dft.worker import DftWorker, atom_solver
    from elign.io.molecules import read_molecules
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
    samples = read_molecules(req.samples)
    k = dft.molecules_per_model if req.molecules is None else req.molecules
    if k < 1:
        raise ConfigError(f"--molecules {k}: need at least 1")
    selection, how, samples, skipped = _select(cfg, req, samples, k)
    jobs = _jobs(samples, selection.shard(req.shard, n_shards), dft.relax_molecules, dft.relax_max_steps)
    all_jobs = _jobs(samples, selection, dft.relax_molecules, dft.relax_max_steps)
    _check_level(level, all_jobs)
    threads = _threads(dft.threads if req.threads is None else max(1, req.threads))
    log.info(
        "shard %d/%d: %d of %d selected molecules (%s); level %s; %d threads",
        *(req.shard, n_shards, len(jobs), len(selection), how, level.describe(), threads),
    )
    checkpoint = Checkpoint(f"{req.out}.partial.jsonl", fingerprint(jobs, level.describe()))
    with DftWorker(threads, dft.safety_time_limit_s) as worker:
        atoms = AtomReferences(level, atom_solver(worker, level), req.atom_cache)
        rows = run_jobs(jobs, worker, level, atoms, checkpoint)
    meta = provenance(
        {"seed": cfg.seed, "dft": dft.model_dump(mode="json")},
        seed=cfg.seed + SELECTION_SEED_OFFSET,
        stage="dft",
        samples=req.samples,
        selection=req.selection,
        pairing=how,
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
