"""EDM's QM9 split rule and the random (grouped) split."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from elign.data.split import (
    QM9_CHARACTERIZED,
    characterized_from_uncharacterized,
    edm_qm9_split_labels,
    random_split_labels,
)


@pytest.fixture(scope="module")
def characterized(shared_dir):
    unc = np.loadtxt(shared_dir / "data/qm9/uncharacterized.txt", skiprows=9, usecols=0, max_rows=3054, dtype=int)
    assert len(unc) == 3054
    return characterized_from_uncharacterized(unc)


def test_split_follows_edm_rule_exactly(characterized):
    # The rule written out independently: seed 0, permutation of positions, 100000 / 17748 / rest.
    np.random.seed(0)
    perm = np.random.permutation(130831)
    expect = {
        "train": set(characterized[perm[:100000]]),
        "valid": set(characterized[perm[100000:117748]]),
        "test": set(characterized[perm[117748:]]),
    }
    labels = edm_qm9_split_labels(characterized, characterized)
    for name, ids in expect.items():
        assert set(characterized[labels == name]) == ids
    assert Counter(labels) == {"train": 100000, "valid": 17748, "test": 13083}


def test_split_label_depends_on_index_only(characterized):
    rng = np.random.default_rng(1)
    subset = rng.choice(characterized, 500, replace=False)
    full = dict(zip(characterized, edm_qm9_split_labels(characterized, characterized)))
    sub = edm_qm9_split_labels(subset, characterized)
    assert [full[i] for i in subset] == list(sub)


def test_split_does_not_disturb_global_rng(characterized):
    np.random.seed(123)
    a = np.random.rand()
    np.random.seed(123)
    edm_qm9_split_labels(characterized[:10], characterized)
    assert np.random.rand() == a


def test_uncharacterized_index_is_rejected(characterized):
    with pytest.raises(ValueError, match="not among the characterized"):
        edm_qm9_split_labels(np.array([58]), characterized)  # 58 is the first uncharacterized molecule
    with pytest.raises(ValueError, match=str(QM9_CHARACTERIZED)):
        edm_qm9_split_labels(np.array([1]), characterized[:-1])


def test_random_split_sizes_and_groups():
    labels = random_split_labels(1000, 0.1, 0.2, seed=3)
    assert Counter(labels) == {"train": 700, "valid": 100, "test": 200}
    group_of = np.repeat(np.arange(50), 4)
    rows = random_split_labels(50, 0.2, 0.2, seed=3, group_of=group_of)
    for g in range(50):
        assert len(set(rows[group_of == g])) == 1
    assert not np.array_equal(labels, random_split_labels(1000, 0.1, 0.2, seed=4))
    with pytest.raises(ValueError):
        random_split_labels(10, 0.5, 0.5, seed=0)
