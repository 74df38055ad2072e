"""Geometry that is not a molecule (issue 14), checked the same way for every input format.

:func:`elign.data.checks.record_problem` against a brute-force oracle on generated geometries (both the
all-pairs and the k-d tree path), then through the ``files`` source in XYZ and Parquet: two atoms on one
spot, all atoms at the origin, an atom 10^3..10^30 Å away are one clear error with the configured limit
in the message; the same molecule within the limits reads back unchanged.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from elign.config import DataConfig
from elign.data.checks import GeometryLimits, geometry_problem, record_problem
from elign.data.errors import ErrorPolicy
from elign.data.files import load_files
from elign.io.errors import DataFormatError
from elign.io.molecules import write_molecules
from elign.io.table import MoleculeTable

coordinates = st.floats(-60, 60, allow_nan=False)


@given(
    pos=st.one_of(
        hnp.arrays(np.float64, st.tuples(st.integers(1, 12), st.just(3)), elements=coordinates),
        hnp.arrays(np.float64, st.tuples(st.integers(65, 150), st.just(3)), elements=coordinates),
    ),
    min_distance=st.floats(0, 2),
    max_abs=st.floats(1, 100),
)
def test_geometry_problem_matches_brute_force(pos, min_distance, max_abs):
    limits = GeometryLimits(max_abs, min_distance)
    problem = geometry_problem(pos, limits)
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)[np.triu_indices(len(pos), 1)]
    far = (np.abs(pos) > max_abs).any()
    close = len(d) > 0 and min_distance > 0 and d.min() < min_distance
    if far:
        assert problem[0] == "implausible_coordinate"
    elif close:
        assert problem[0] == "overlapping_atoms"
        i, j = (int(k) - 1 for k in re.match(r"atoms (\d+) and (\d+) are", problem[1]).groups())
        assert np.isclose(np.linalg.norm(pos[i] - pos[j]), d.min(), rtol=0, atol=1e-9)  # the closest pair
    else:
        assert problem is None


def _frames(mols) -> str:
    lines = lambda z, p: "".join(f"{zi} {x!r} {y!r} {w!r}\n" for zi, (x, y, w) in zip(z, p.tolist()))  # noqa: E731
    return "".join(f"{len(z)}\n\n" + lines(z, p) for z, p in mols)


@st.composite
def molecules(draw):
    n = draw(st.integers(2, 6))
    cells = draw(st.lists(st.tuples(*[st.integers(-8, 8)] * 3), min_size=n, max_size=n, unique=True))
    return draw(st.lists(st.integers(1, 118), min_size=n, max_size=n)), np.array(cells, dtype=np.float64) * 1.25


def _damage(mol, how: str, data):
    z, pos = mol[0], mol[1].copy()
    i = data.draw(st.integers(0, len(z) - 1))
    j = (i + 1) % len(z)
    if how == "duplicate":
        pos[j] = pos[i]
    elif how == "origin":
        pos[:] = 0.0
    elif how == "near":
        pos[j] = pos[i] + np.array([data.draw(st.floats(0, 0.49)), 0.0, 0.0])
    else:
        pos[i, data.draw(st.integers(0, 2))] = data.draw(st.sampled_from([1, -1])) * 10 ** data.draw(
            st.floats(3.01, 30)
        )
    return z, pos


def _write(fuzz_dir, mols, fmt: str):
    path = fuzz_dir / f"geometry.{fmt}"
    if fmt == "xyz":
        path.write_text(_frames(mols))
    else:
        table = MoleculeTable(
            np.arange(len(mols)),
            [len(z) for z, _ in mols],
            np.concatenate([z for z, _ in mols]),
            np.concatenate([p for _, p in mols]).astype(np.float32),
            np.full(len(mols), None, dtype=object),
        )
        write_molecules(path, table)
    return path


@given(
    mols=st.lists(molecules(), min_size=1, max_size=3),
    data=st.data(),
    fmt=st.sampled_from(["xyz", "parquet"]),
    how=st.sampled_from(["duplicate", "origin", "near", "far"]),
)
def test_not_a_molecule_in_any_format(fuzz_dir, mols, data, fmt, how, clear_error):
    bad = data.draw(st.integers(0, len(mols) - 1))
    damaged = [_damage(m, how, data) if i == bad else m for i, m in enumerate(mols)]
    path = _write(fuzz_dir, damaged, fmt)
    cfg = DataConfig(source="files", files={"paths": [str(path)]})
    with pytest.raises(DataFormatError) as exc:
        load_files(cfg, ErrorPolicy())
    msg = clear_error(exc.value, path, record=bad + 1)
    assert ("max_abs_coordinate_ang = 1000" if how == "far" else "min_distance_ang = 0.5") in msg, msg
    good = load_files(cfg, ErrorPolicy("skip")).table if len(mols) > 1 else None
    if good is not None:
        assert good.columns["record"].tolist() == [i + 1 for i in range(len(mols)) if i != bad]


@given(
    mols=st.lists(molecules(), min_size=1, max_size=3),
    fmt=st.sampled_from(["xyz", "parquet"]),
    scale=st.floats(0.45, 3.0),
)
def test_configured_limits_decide(fuzz_dir, mols, fmt, scale):
    """Lattice molecules (atoms >= 1.25 Å apart) shrunk by ``scale``: the configured min distance decides."""
    shrunk = [(z, p * scale) for z, p in mols]
    path = _write(fuzz_dir, shrunk, fmt)
    limit = 1.0
    cfg = DataConfig(source="files", files={"paths": [str(path)], "min_distance_ang": limit})
    closest = min(np.linalg.norm(p[:, None] - p[None], axis=-1)[np.triu_indices(len(p), 1)].min() for _, p in shrunk)
    if closest < limit * (1 - 1e-4):
        with pytest.raises(DataFormatError, match="closer than data.files.min_distance_ang = 1"):
            load_files(cfg, ErrorPolicy())
    elif closest > limit * (1 + 1e-4):
        table = load_files(cfg, ErrorPolicy()).table
        np.testing.assert_array_equal(table.positions_ang, np.concatenate([p for _, p in shrunk]).astype(np.float32))


def test_a_single_atom_at_the_origin_is_a_molecule():
    assert record_problem(np.array([6]), np.zeros((1, 3)), {}, GeometryLimits()) is None
