"""Molecule sizes: draws from the data stage's size histogram, one size, or a list."""

from __future__ import annotations

import math

import numpy as np
import pytest

from elign.data import sizes as sz


def test_histogram_sizes_follow_the_histogram():
    hist = {"3": 10, "5": 30, "9": 60, "12": 0}
    sizes = sz.sizes_from_histogram(hist, 20000, seed=7)
    assert sizes == sz.sizes_from_histogram(hist, 20000, seed=7)
    assert sizes != sz.sizes_from_histogram(hist, 20000, seed=8)
    values, counts = np.unique(sizes, return_counts=True)
    assert values.tolist() == [3, 5, 9]
    freq = counts / counts.sum()
    for v, f in zip(values, freq):
        p = hist[str(v)] / 100
        assert abs(f - p) < 4 * math.sqrt(p * (1 - p) / 20000)
    assert sz.resolve_sizes("histogram", 5, 0, hist) == sz.sizes_from_histogram(hist, 5, 0)
    assert sz.resolve_sizes(6, 3, 0) == [6, 6, 6]
    assert sz.resolve_sizes([2, 4], 2, 0) == [2, 4]
    with pytest.raises(ValueError, match="num_molecules"):
        sz.resolve_sizes([2, 4], 3, 0)
    with pytest.raises(ValueError, match="histogram"):
        sz.resolve_sizes("histogram", 3, 0)
