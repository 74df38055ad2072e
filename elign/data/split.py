"""Train/valid/test splits.

QM9: exactly EDM's rule (Hoogeboom et al. 2022, ``qm9/data/prepare/qm9.py`` in their code, inherited from
Cormorant): over the 130,831 characterized molecules in QM9-index order,
``np.random.seed(0); perm = np.random.permutation(130831)``; ``perm[:100000]`` train, the next 17,748 valid,
the last 13,083 test (``Ntest = int(0.1 * N)``, ``Nvalid = N - Ntrain - Ntest``).
A split label is a function of a molecule's QM9 index alone, so any subset (a test fixture, a filtered
set) gets the labels it has in the full split.
"""

from __future__ import annotations

import numpy as np

QM9_TOTAL = 133_885
QM9_CHARACTERIZED = 130_831
QM9_TRAIN = 100_000
QM9_TEST = int(0.1 * QM9_CHARACTERIZED)  # 13,083
QM9_VALID = QM9_CHARACTERIZED - QM9_TRAIN - QM9_TEST  # 17,748


def edm_qm9_permutation() -> np.ndarray:
    """EDM's permutation of the characterized-molecule positions (global NumPy RNG, seed 0, as EDM does)."""
    state = np.random.get_state()
    try:
        np.random.seed(0)
        return np.random.permutation(QM9_CHARACTERIZED)
    finally:
        np.random.set_state(state)


def edm_qm9_split_labels(mol_ids: np.ndarray, characterized_ids: np.ndarray) -> np.ndarray:
    """Split label of each QM9 index in ``mol_ids``.

    characterized_ids: the 130,831 QM9 indices (1-based) not in ``uncharacterized.txt``, any order.
    Raises ValueError for an index that is not characterized.
    """
    characterized = np.sort(np.asarray(characterized_ids, dtype=np.int64))
    if len(characterized) != QM9_CHARACTERIZED or len(np.unique(characterized)) != QM9_CHARACTERIZED:
        raise ValueError(f"expected {QM9_CHARACTERIZED} distinct characterized QM9 indices, got {len(characterized)}")
    perm = edm_qm9_permutation()
    label_of_position = np.empty(QM9_CHARACTERIZED, dtype=object)
    label_of_position[perm[:QM9_TRAIN]] = "train"
    label_of_position[perm[QM9_TRAIN : QM9_TRAIN + QM9_VALID]] = "valid"
    label_of_position[perm[QM9_TRAIN + QM9_VALID :]] = "test"
    mol_ids = np.asarray(mol_ids, dtype=np.int64)
    pos = np.searchsorted(characterized, mol_ids)
    ok = (pos < len(characterized)) & (characterized[np.minimum(pos, len(characterized) - 1)] == mol_ids)
    if not ok.all():
        raise ValueError(f"QM9 indices not among the characterized molecules: {mol_ids[~ok][:10].tolist()}")
    return label_of_position[pos]


def characterized_from_uncharacterized(uncharacterized_ids: np.ndarray) -> np.ndarray:
    """The characterized QM9 indices: 1..133,885 minus the uncharacterized ones."""
    all_ids = np.arange(1, QM9_TOTAL + 1)
    return all_ids[~np.isin(all_ids, np.asarray(uncharacterized_ids))]


def random_split_labels(
    n_groups: int, valid_fraction: float, test_fraction: float, seed: int, group_of: np.ndarray | None = None
) -> np.ndarray:
    """Random split of ``n_groups`` groups (molecules or, with ``group_of``, conformer families).

    Valid takes ``int(n * valid_fraction)`` groups and test ``int(n * test_fraction)`` of a seeded
    permutation; the rest is train. ``group_of`` ((M,) ints in [0, n_groups)) maps each row to its group,
    so all conformers of one molecule land in the same split.
    """
    if valid_fraction + test_fraction >= 1:
        raise ValueError("valid_fraction + test_fraction must be < 1")
    perm = np.random.default_rng(seed).permutation(n_groups)
    n_valid, n_test = int(n_groups * valid_fraction), int(n_groups * test_fraction)
    labels = np.full(n_groups, "train", dtype=object)
    labels[perm[:n_valid]] = "valid"
    labels[perm[n_valid : n_valid + n_test]] = "test"
    return labels if group_of is None else labels[np.asarray(group_of)]
