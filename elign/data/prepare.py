"""The data stage: source → split → filters → subset → ``{train,valid,test}.parquet`` + ``stats.json``.

The four files are published together (:func:`elign.io.atomic.atomic_paths`): a failure while writing any
of them leaves the previous run's set untouched, never new splits beside old stats.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import numpy as np

from elign.config import ElignConfig
from elign.data.errors import ErrorPolicy
from elign.data.registry import SPLITS, SourceResult, get_source
from elign.elements import atomic_number, symbol
from elign.io.atomic import atomic_paths, json_text
from elign.io.molecules import write_molecules
from elign.io.provenance import provenance
from elign.io.table import MoleculeTable


def apply_filters(result: SourceResult, cfg) -> tuple[SourceResult, dict[str, int]]:
    """Drop molecules with elements outside ``filters.allowed_elements`` or more than ``filters.max_atoms``.

    Returns the kept molecules and the number dropped per reason (a molecule counts once, first reason).
    """
    table, keep = result.table, np.ones(len(result.table), dtype=bool)
    dropped: dict[str, int] = {}
    if cfg.filters.allowed_elements is not None:
        allowed = np.array([atomic_number(s) for s in cfg.filters.allowed_elements])
        bad_atom = ~np.isin(table.atomic_numbers, allowed)
        bad_mol = np.zeros(len(table), dtype=bool)
        bad_mol[table.atom_molecule_index()[bad_atom]] = True
        dropped["element_not_allowed"] = int((bad_mol & keep).sum())
        keep &= ~bad_mol
    if cfg.filters.max_atoms is not None:
        too_big = table.num_atoms > cfg.filters.max_atoms
        dropped["too_many_atoms"] = int((too_big & keep).sum())
        keep &= ~too_big
    if keep.all():
        return result, dropped
    idx = np.flatnonzero(keep)
    return SourceResult(table.take(idx), result.split[idx], result.info), dropped


def split_tables(result: SourceResult, subset) -> dict[str, MoleculeTable]:
    """One table per split, in source order; ``subset.<split>`` keeps only the first N."""
    out = {}
    for name in SPLITS:
        idx = np.flatnonzero(result.split == name)
        limit = getattr(subset, name)
        out[name] = result.table.take(idx[:limit] if limit is not None else idx)
    return out


def table_stats(table: MoleculeTable) -> dict:
    """Atom-count histogram and atom-type counts of one split."""
    sizes = Counter(table.num_atoms.tolist())
    types = Counter(table.atomic_numbers.tolist())
    return {
        "molecules": int(len(table)),
        "atoms": int(table.num_atoms.sum()),
        "num_atoms_histogram": {str(n): int(c) for n, c in sorted(sizes.items())},
        "atom_type_counts": {symbol(z): int(c) for z, c in sorted(types.items())},
    }


def prepare(config: ElignConfig, out_dir: str | Path) -> dict:
    """Run the data stage for ``config.data``; write the three Parquet files and ``stats.json``."""
    cfg = config.data
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    errors = ErrorPolicy(on_error=cfg.on_error)
    result = get_source(cfg.source)(cfg, errors, config.seed)
    n_loaded = len(result.table)
    result, dropped = apply_filters(result, cfg)
    tables = split_tables(result, cfg.subset)
    meta = provenance(
        {"seed": config.seed, "data": cfg.model_dump(mode="json")},
        seed=config.seed,
        stage="prepare",
        dataset=cfg.dataset,
        source=cfg.source,
    )
    stats = {
        "dataset": cfg.dataset,
        "source": cfg.source,
        "split_sizes": {name: int(len(t)) for name, t in tables.items()},
        "loaded": int(n_loaded),
        "filtered": {"by_reason": dropped, "filters": cfg.filters.model_dump(mode="json")},
        "skipped_bad_records": errors.summary(),
        "subset": cfg.subset.model_dump(mode="json"),
        "splits": {name: table_stats(t) for name, t in tables.items()},
        "source_info": result.info,
        "seconds": round(time.perf_counter() - t0, 2),
        "provenance": {k: v for k, v in meta.items() if k != "config_json"},
    }
    names = [f"{name}.parquet" for name in tables] + ["stats.json"]
    with atomic_paths([out_dir / name for name in names]) as tmps:
        for tmp, table in zip(tmps, tables.values()):
            write_molecules(tmp, table, meta)
        tmps[-1].write_text(json_text(stats))
    return stats
