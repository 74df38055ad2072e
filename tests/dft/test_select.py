"""Paired selection (same size multiset for every model), determinism by seed, eligibility, shards."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from elign.dft.select import Selection, eligible_mask, pick_for_targets, select_molecules, target_sizes
from elign.io.table import MoleculeTable


def _samples(sizes, seed: int, status=None) -> MoleculeTable:
    """A samples table with the given atom counts (random carbon-only geometry; only sizes matter here)."""
    rng = np.random.default_rng(seed)
    n = int(np.sum(sizes))
    columns = {"status": np.array(status if status is not None else ["ok"] * len(sizes), dtype=object)}
    return MoleculeTable(
        np.arange(len(sizes)),
        sizes,
        np.full(n, 6),
        rng.normal(size=(n, 3)),
        np.full(len(sizes), None, dtype=object),
        columns,
    )


def _metrics(table: MoleculeTable, valid: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {"mol_id": table.mol_id, "num_atoms": table.num_atoms, "sample_status": table.columns["status"], "valid": valid}
    )


@pytest.fixture
def two_models():
    """Two models sampled with the same requested sizes; different validity patterns."""
    rng = np.random.default_rng(7)
    sizes = rng.integers(3, 20, size=200)
    a, b = _samples(sizes, 1), _samples(sizes, 2)
    valid_a = rng.random(200) < 0.9
    valid_b = rng.random(200) < 0.5
    return (a, _metrics(a, valid_a)), (b, _metrics(b, valid_b))


def test_selection_is_paired_across_models(two_models):
    (a, ma), (b, mb) = two_models
    sel_a = select_molecules(a, ma, 24, seed=5)
    sel_b = select_molecules(b, mb, 24, seed=5)
    assert len(sel_a) == len(sel_b) == 24
    np.testing.assert_array_equal(sel_a.target_num_atoms, sel_b.target_num_atoms)
    assert Counter(a.num_atoms[sel_a.index].tolist()) == Counter(b.num_atoms[sel_b.index].tolist())
    np.testing.assert_array_equal(a.num_atoms[sel_a.index], sel_a.target_num_atoms)  # exact sizes exist here
    assert ma.set_index("mol_id").loc[a.mol_id[sel_a.index], "valid"].all()
    assert mb.set_index("mol_id").loc[b.mol_id[sel_b.index], "valid"].all()
    assert len(set(sel_a.index.tolist())) == 24  # never the same molecule twice


def test_selection_is_deterministic_by_seed(two_models):
    (a, ma), _ = two_models
    first, again = select_molecules(a, ma, 16, seed=3), select_molecules(a, ma, 16, seed=3)
    np.testing.assert_array_equal(first.index, again.index)
    other = select_molecules(a, ma, 16, seed=4)
    assert not np.array_equal(first.index, other.index)


def test_histogram_targets_and_nearest_size_fallback():
    targets = target_sizes({9: 1}, 3, seed=0)
    assert targets.tolist() == [9, 9, 9]
    num_atoms = np.array([4, 8, 10, 12, 9])
    eligible = np.array([True, True, True, True, False])  # no eligible 9-atom molecule
    sel = pick_for_targets(num_atoms, eligible, targets, seed=0)
    assert num_atoms[sel.index].tolist() == [8, 10, 12]  # nearest first; a tie goes to the smaller size
    assert sel.target_num_atoms.tolist() == [9, 9, 9]


def test_fewer_eligible_than_k_takes_them_all():
    t = _samples(np.array([5, 6, 7]), 0, status=["ok", "exploded", "ok"])
    sel = select_molecules(t, None, 10, seed=0, valid_only=False)
    assert sorted(sel.index.tolist()) == [0, 2]  # the failed sample is never picked


def test_bad_charge_samples_are_eligible_like_in_evaluate():
    """bad_charge (charge channel ≠ one-hot type) is information only; nan/exploded never get DFT."""
    status = ["bad_charge", "nan", "ok", "exploded", "bad_charge"]
    t = _samples(np.array([5, 6, 7, 8, 9]), 0, status=status)
    assert eligible_mask(t, None, valid_only=False).tolist() == [True, False, True, False, True]
    valid = np.array([True, True, True, True, False])
    assert eligible_mask(t, _metrics(t, valid), valid_only=True).tolist() == [True, False, True, False, False]


def test_valid_only_needs_metrics():
    t = _samples(np.array([5, 6]), 0)
    with pytest.raises(ValueError, match="metrics"):
        eligible_mask(t, None, valid_only=True)


def test_shards_are_contiguous_and_cover_the_selection():
    sel = Selection(np.arange(10) * 3, np.arange(10), np.arange(10))
    parts = [sel.shard(i, 4) for i in range(4)]
    assert [len(p) for p in parts] == [3, 3, 2, 2]
    assert np.concatenate([p.selection_index for p in parts]).tolist() == list(range(10))
    with pytest.raises(ValueError):
        sel.shard(4, 4)


def test_fewer_molecules_take_the_first_targets_so_they_stay_paired(two_models):
    """dft.guided_molecules: a model given k' < k molecules gets the first k' of the k-molecule targets."""
    (a, ma), (b, mb) = two_models
    full, short = select_molecules(a, ma, 24, seed=5), select_molecules(b, mb, 10, seed=5)
    np.testing.assert_array_equal(short.target_num_atoms, full.target_num_atoms[:10])
    np.testing.assert_array_equal(
        target_sizes({5: 1, 9: 3, 14: 2}, 10, 0), target_sizes({5: 1, 9: 3, 14: 2}, 24, 0)[:10]
    )
