"""Which sampled molecules get DFT: k molecules of a given size mix, split into shards.

The workflow chooses the molecules once, from the baseline's sample (:mod:`elign.dft.pairing`), and computes
the same mol_ids for every model sampled with the baseline's noise: that, and only that, is paired. This
module is the size-matched draw underneath: called on the baseline for the paired selection, and on a model
with other noise (unpaired) for molecules of the same sizes, or per model when no selection is given (then
every model gets the same multiset of sizes, not the same molecules). Sizes matter because DFT energies and
forces grow with size, so a comparison of different molecules must at least keep the size mix equal. The
sizes come from something all models share:

1. ``target_sizes``: k sizes drawn with replacement, in draw order, by ``numpy.random.default_rng(seed)``
   from a size histogram that is the same for every model: the data stage's training histogram
   (``stats.json``) when given, else the sizes of *all* rows of the samples file (eligible or not). The
   sample stage requests the same sizes for every model (same seed, same histogram), so both choices give
   every model the same targets.
2. ``pick_for_targets``: for each target in order, an eligible molecule not yet picked whose size is
   nearest the target (exact when one exists; on a tie the smaller size, which is cheaper); among the
   molecules of that size one is drawn with ``default_rng([seed, 1])``. The output keeps both
   ``target_num_atoms`` and ``num_atoms`` so a report can see (and drop) pairs that are not exact. If
   fewer than k molecules are eligible, all of them are taken (fewer rows, with a warning).

Eligible: the sample's own status is evaluable (``ok``, or ``bad_charge``: the charge channel disagrees with
the one-hot type, which the evaluate stage also treats as information, as EDM does) and, with
``valid_only``, the metrics row says RDKit-valid (``valid`` with an evaluable ``sample_status``, joined on
``mol_id``).

Shards: the k picks, in order, cut into ``n`` contiguous pieces with ``numpy.array_split`` (sizes differ by
at most one); the draw order is random, so each shard gets a mix of sizes (similar run times).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from elign.io.table import MoleculeTable
from elign.metrics.evaluate import EVALUABLE_SAMPLE_STATUSES

log = logging.getLogger("elign.dft")

SELECTION_SEED_OFFSET = 3000  # the DFT selection seed = config seed + this (each stage derives its own)


@dataclass
class Selection:
    """The molecules of one model chosen for DFT. index: (k',) rows of the samples table; target_num_atoms:
    (k',); selection_index: (k',) position in the model's selection (0..k'-1)."""

    index: np.ndarray
    target_num_atoms: np.ndarray
    selection_index: np.ndarray

    def __len__(self) -> int:
        return len(self.index)

    def shard(self, i: int, n: int) -> Selection:
        """Contiguous shard ``i`` of ``n`` (0-based)."""
        if not 0 <= i < n:
            raise ValueError(f"shard {i} is outside 0..{n - 1}")
        part = np.array_split(np.arange(len(self)), n)[i]
        return Selection(self.index[part], self.target_num_atoms[part], self.selection_index[part])


def eligible_mask(samples: MoleculeTable, metrics: pd.DataFrame | None, valid_only: bool) -> np.ndarray:
    """(M,) bool: evaluable sample status (if the table has one) and, with ``valid_only``, valid in ``metrics``."""
    status = samples.columns.get("status")
    ok = (
        np.ones(len(samples), bool)
        if status is None
        else np.isin(np.asarray(status, dtype=object), EVALUABLE_SAMPLE_STATUSES)
    )
    if not valid_only:
        return ok
    if metrics is None:
        raise ValueError("valid_only needs the metrics table of these samples")
    missing = {"mol_id", "valid", "sample_status"} - set(metrics.columns)
    if missing:
        raise ValueError(f"metrics table lacks columns {sorted(missing)}")
    good = metrics["valid"].astype(bool) & metrics["sample_status"].isin(EVALUABLE_SAMPLE_STATUSES)
    valid_ids = set(metrics.loc[good, "mol_id"].astype(np.int64))
    return ok & np.isin(samples.mol_id, np.fromiter(valid_ids, np.int64, len(valid_ids)))


def size_histogram(sizes: np.ndarray) -> dict[int, int]:
    values, counts = np.unique(np.asarray(sizes, dtype=np.int64), return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts)}


def target_sizes(histogram: Mapping[int, int], k: int, seed: int) -> np.ndarray:
    """(k,) sizes drawn with replacement with probability proportional to ``histogram`` counts."""
    sizes = np.array(sorted(int(s) for s in histogram), dtype=np.int64)
    counts = np.array([histogram[s] for s in sizes], dtype=np.float64)
    if len(sizes) == 0 or counts.sum() <= 0:
        raise ValueError("the size histogram is empty")
    return np.random.default_rng(seed).choice(sizes, size=int(k), p=counts / counts.sum())


def pick_for_targets(num_atoms: np.ndarray, eligible: np.ndarray, targets: np.ndarray, seed: int) -> Selection:
    """One eligible molecule per target, nearest size first, never the same molecule twice (see module)."""
    rng = np.random.default_rng([seed, 1])
    free = np.asarray(eligible, bool).copy()
    num_atoms = np.asarray(num_atoms, dtype=np.int64)
    picks, kept = [], []
    for t in targets:
        candidates = np.flatnonzero(free)
        if candidates.size == 0:
            break
        dist = np.abs(num_atoms[candidates] - int(t))
        best = candidates[dist == dist.min()]
        best = best[num_atoms[best] == num_atoms[best].min()]
        choice = int(rng.choice(best))
        free[choice] = False
        picks.append(choice)
        kept.append(int(t))
    if len(picks) < len(targets):
        log.warning("only %d eligible molecules for %d targets: taking all of them", len(picks), len(targets))
    n = len(picks)
    return Selection(np.array(picks, dtype=np.int64), np.array(kept, dtype=np.int64), np.arange(n))


def select_molecules(
    samples: MoleculeTable,
    metrics: pd.DataFrame | None,
    k: int,
    seed: int,
    valid_only: bool = True,
    histogram: Mapping[int, int] | None = None,
    extra_eligible: np.ndarray | None = None,
) -> Selection:
    """A size-matched DFT subset of one model's samples (see module). ``histogram`` None = all sample sizes;
    ``extra_eligible`` (M,) bool: a further condition (e.g. scored by the MLFF)."""
    eligible = eligible_mask(samples, metrics, valid_only)
    if extra_eligible is not None:
        eligible = eligible & np.asarray(extra_eligible, bool)
    hist = histogram if histogram is not None else size_histogram(samples.num_atoms)
    targets = target_sizes(hist, k, seed)
    return pick_for_targets(samples.num_atoms, eligible, targets, seed)
