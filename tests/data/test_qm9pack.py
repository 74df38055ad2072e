"""QM9 from qm9pack: all 130,831 molecules, EDM's split, values checked against the raw data."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from elign.config import DataConfig
from elign.data.errors import ErrorPolicy
from elign.data.qm9pack import load_qm9pack, qm9pack_table
from elign.data.split import characterized_from_uncharacterized
from elign.io.errors import DataFormatError

# EDM's QM9 training-split statistics (configs/datasets_config.py in Hoogeboom et al.'s code: 'n_nodes' and
# 'atom_types' with H, C, N, O, F = 0..4). Reproducing them exactly checks the whole split end to end.
EDM_QM9_TRAIN_N_NODES = {
    22: 3393,
    17: 13025,
    23: 4848,
    21: 9970,
    19: 13832,
    20: 9482,
    16: 10644,
    13: 3060,
    15: 7796,
    25: 1506,
    18: 13364,
    12: 1689,
    11: 807,
    24: 539,
    14: 5136,
    26: 48,
    7: 16,
    10: 362,
    8: 49,
    9: 124,
    27: 266,
    4: 4,
    29: 25,
    6: 9,
    5: 5,
    3: 1,
}
EDM_QM9_TRAIN_ATOM_TYPES = {1: 923537, 6: 635559, 7: 101476, 8: 140202, 9: 2323}


@pytest.fixture(scope="module")
def qm9():
    return load_qm9pack(DataConfig(), ErrorPolicy())


def test_all_characterized_molecules_and_edm_split(qm9, shared_dir):
    unc = np.loadtxt(shared_dir / "data/qm9/uncharacterized.txt", skiprows=9, usecols=0, max_rows=3054, dtype=int)
    assert np.array_equal(qm9.table.mol_id, characterized_from_uncharacterized(unc))
    assert Counter(qm9.split) == {"train": 100000, "valid": 17748, "test": 13083}


def test_train_split_statistics_equal_edms(qm9):
    train = qm9.table.take(qm9.split == "train")
    assert dict(Counter(train.num_atoms.tolist())) == EDM_QM9_TRAIN_N_NODES
    assert dict(Counter(train.atomic_numbers.tolist())) == EDM_QM9_TRAIN_ATOM_TYPES


def test_known_molecules(qm9):
    # Molecule 1 is methane; QM9 lists C first, then four H, U0 = -40.47893 Ha.
    m = qm9.table.molecule(0)
    assert m.mol_id == 1 and m.smiles == "C"
    assert m.atomic_numbers.tolist() == [6, 1, 1, 1, 1]
    np.testing.assert_allclose(m.positions_ang[0], [-0.0126981359, 1.0858041578, 0.0080009958], rtol=1e-6)
    assert m.props["u0_ha"] == pytest.approx(-40.47893)
    assert m.props["mulliken_charges_e"][0] == pytest.approx(-0.535689)
    assert len(m.props["harmonic_freqs_cm1"]) == 9  # 3N - 6
    # C-H bond lengths of methane at B3LYP/6-31G(2df,p): 1.0919 Å
    d = np.linalg.norm(m.positions_ang[1:] - m.positions_ang[0], axis=1)
    np.testing.assert_allclose(d, 1.0919, atol=2e-4)


def test_positions_and_charges_are_per_atom(qm9):
    t = qm9.table
    assert len(t.positions_ang) == len(t.atomic_numbers) == int(t.num_atoms.sum())
    assert all(len(q) == n for q, n in zip(t.columns["mulliken_charges_e"][:1000], t.num_atoms[:1000]))
    # Mulliken charges of a neutral molecule sum to ~0.
    sums = np.array([q.sum() for q in t.columns["mulliken_charges_e"]])
    assert np.abs(sums).max() < 1e-3


def _frame(elements="['C','H']", xyz="[[0.,0.,0.],[0.,0.,1.09]]", n=2):
    row = {
        "Index": 7,
        "SMILES": "[CH]",
        "InChi": "x",
        "N_atoms": n,
        "Elements": elements,
        "XYZ_Ang": xyz,
        "Mulliken_pop": "[" + ",".join(["0.1"] * n) + "]",
        "Harmonic_Freq_cmi": "[1.0]",
    }
    from elign.data.qm9pack import _SCALAR_SOURCE

    row.update({c: 1.0 for c in _SCALAR_SOURCE})
    return pd.DataFrame([row])


def test_bad_rows_raise_with_record_or_are_counted():
    with pytest.raises(DataFormatError, match=r"qm9pack, record 7: unknown element symbol 'Xq'"):
        qm9pack_table(_frame(elements="['C','Xq']"), ErrorPolicy())
    with pytest.raises(DataFormatError, match="record 7: non-finite coordinate"):
        qm9pack_table(_frame(xyz="[[0.,0.,0.],[0.,nan,1.09]]"), ErrorPolicy())
    errors = ErrorPolicy(on_error="skip")
    table = qm9pack_table(_frame(elements="['C','Xq']"), errors)
    assert len(table) == 0 and errors.counts == {"unknown_element": 1}
    with pytest.raises(ValueError, match="molecule 7: XYZ_Ang has 5 numbers, expected 6"):
        qm9pack_table(_frame(xyz="[[0.,0.,0.],[0.,1.09]]"), ErrorPolicy())
    with pytest.raises(ValueError, match="1 elements for N_atoms=2"):
        qm9pack_table(_frame(elements="['C']"), ErrorPolicy())
