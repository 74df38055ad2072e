"""MoleculeTable's narrowing casts never wrap or truncate (issue 14: 300 -> 44 in int8, 6.5 -> 6, 1e39 -> inf).

The readers check their input first and name file and record; this is the last guard behind them, for
code that builds tables itself.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from elign.io.table import MoleculeTable

F32_MAX = float(np.finfo(np.float32).max)


def one_molecule(z, pos=None) -> MoleculeTable:
    n = len(z)
    pos = np.zeros((n, 3)) if pos is None else pos
    return MoleculeTable(np.arange(1), [n], z, pos, np.array([None], dtype=object))


@given(
    z=hnp.arrays(
        st.sampled_from([np.int16, np.int32, np.int64, np.float64]), st.integers(1, 6), elements=st.integers(-400, 400)
    )
)
def test_atomic_numbers_fit_int8_or_raise(z):
    if z.min() >= -128 and z.max() <= 127:
        np.testing.assert_array_equal(one_molecule(z).atomic_numbers, z.astype(np.int64))
    else:
        with pytest.raises(ValueError, match="atomic_numbers: .* does not fit int8"):
            one_molecule(z)


@given(z=hnp.arrays(np.float64, st.integers(1, 6), elements=st.floats(1, 118).filter(lambda f: f != int(f))))
def test_fractional_atomic_numbers_raise(z):
    with pytest.raises(ValueError, match="non-integral"):
        one_molecule(z)


def test_boolean_atomic_numbers_raise():
    with pytest.raises(ValueError, match="expected integers"):
        one_molecule(np.array([True, False]))


@given(
    pos=hnp.arrays(
        np.float64, (3, 3), elements=st.one_of(st.floats(-1e3, 1e3), st.floats(allow_nan=True, allow_infinity=True))
    )
)
def test_positions_fit_float32_or_raise(pos):
    finite = np.isfinite(pos)
    if (np.abs(pos[finite]) > F32_MAX).any():
        with pytest.raises(ValueError, match="does not fit float32"):
            one_molecule([6, 6, 6], pos)
    else:
        got = one_molecule([6, 6, 6], pos).positions_ang
        np.testing.assert_array_equal(got, pos.astype(np.float32))  # NaN (a failed sample) stays NaN


@given(n=st.integers(2**31, 2**40))
def test_atom_counts_fit_int32_or_raise(n):
    with pytest.raises(ValueError, match="num_atoms: .* does not fit int32"):
        MoleculeTable(np.arange(1), np.array([n]), np.zeros(0), np.zeros((0, 3)), np.array([None], dtype=object))
