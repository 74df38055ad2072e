"""Generated molecule Parquet files (issue 14): shapes and types are checked before any narrowing cast.

Valid tables in every integer/float/list flavour read back as the numbers they hold; a table whose rows
are the wrong shape (atoms and positions of different lengths, ragged triples, nulls, 0-atom rows), whose
numbers do not fit (an atomic number 300 that int8 would wrap to 44, a coordinate that float32 would make
inf, 40,000 atoms for an int16 count) or whose columns are not lists at all is one clear error naming the
file and, where there is one, the row.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from elign.data.checks import MAX_ATOMS
from elign.data.errors import ErrorPolicy
from elign.data.files import read_file
from elign.io.errors import DataFormatError
from elign.io.molecules import read_molecules

Z_TYPES = (pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16())
XYZ_TYPES = (pa.float32(), pa.float64())


@st.composite
def molecules(draw, max_atoms: int = 5):
    n = draw(st.integers(1, max_atoms))
    cells = draw(st.lists(st.tuples(*[st.integers(-20, 20)] * 3), min_size=n, max_size=n, unique=True))
    jitter = draw(st.lists(st.floats(-0.2, 0.2), min_size=3 * n, max_size=3 * n))
    z = draw(st.lists(st.integers(1, 118), min_size=n, max_size=n))
    return z, (np.array(cells) * 1.5 + np.array(jitter).reshape(n, 3)).tolist()


@st.composite
def flavours(draw):
    """(atomic-number list type, positions list type): every way a valid molecule table can be typed."""
    z_type = draw(st.sampled_from(Z_TYPES))
    value = draw(st.sampled_from(XYZ_TYPES))
    triple = pa.list_(value, 3) if draw(st.booleans()) else pa.list_(value)
    outer = draw(st.sampled_from([pa.list_, pa.large_list]))
    return outer(z_type), outer(triple)


def table(rows, z_type=pa.list_(pa.int64()), pos_type=pa.list_(pa.list_(pa.float64())), extra=None) -> pa.Table:
    columns = {
        "mol_id": pa.array(range(len(rows)), pa.int64()),
        "atomic_numbers": pa.array([r[0] for r in rows], z_type),
        "positions_ang": pa.array([r[1] for r in rows], pos_type),
    }
    return pa.table({**columns, **(extra or {})})


def write(fuzz_dir, arrow: pa.Table, name: str = "mols.parquet"):
    path = fuzz_dir / name
    pq.write_table(arrow, path)
    return path


def check_rows(got, rows, value_type=pa.float64()) -> None:
    assert len(got) == len(rows)
    for i, (z, pos) in enumerate(rows):
        rec = got.molecule(i)
        np.testing.assert_array_equal(rec.atomic_numbers, z)
        meant = np.array(pos, dtype=np.float32 if value_type == pa.float32() else np.float64).astype(np.float32)
        np.testing.assert_array_equal(rec.positions_ang, meant)


@given(rows=st.lists(molecules(), min_size=1, max_size=4), flavour=flavours(), energy=st.booleans())
def test_valid_tables_of_every_flavour_read_as_written(fuzz_dir, rows, flavour, energy):
    extra = {"energy_ev": pa.array(np.linspace(-1, 1, len(rows)))} if energy else None
    path = write(fuzz_dir, table(rows, *flavour, extra=extra))
    check_rows(read_molecules(path), rows, flavour[1].value_type.value_type)
    got = read_file(path, "parquet", ErrorPolicy())
    check_rows(got, rows, flavour[1].value_type.value_type)
    assert got.columns["record"].tolist() == list(range(1, len(rows) + 1))


def _damage(rows, bad: int, how: str, data):
    """Rows (list form) with row ``bad`` damaged; the matching fragment of the message."""
    z, pos = list(rows[bad][0]), [list(p) for p in rows[bad][1]]
    if how == "length":
        if len(z) > 1 and data.draw(st.booleans()):
            z = z[:-1]
        else:
            pos = pos + [[9.0, 9.0, 9.0]]
        return z, pos, "atomic numbers but"
    if how == "ragged":
        i = data.draw(st.integers(0, len(pos) - 1))
        pos[i] = pos[i][: data.draw(st.integers(0, 2))] if data.draw(st.booleans()) else pos[i] + [1.0]
        return z, pos, "coordinates, not 3"
    if how == "null_atom":
        z[data.draw(st.integers(0, len(z) - 1))] = None
        return z, pos, "no atomic number"
    if how == "null_row":
        return (None, pos, "is null") if data.draw(st.booleans()) else (z, None, "is null")
    if how == "null_coordinate":
        pos[data.draw(st.integers(0, len(pos) - 1))][data.draw(st.integers(0, 2))] = None
        return z, pos, "null coordinate"
    if how == "element":
        z[data.draw(st.integers(0, len(z) - 1))] = data.draw(
            st.one_of(st.integers(119, 30000), st.just(0), st.integers(-30000, -1))
        )
        return z, pos, "not a chemical element"
    pos[data.draw(st.integers(0, len(pos) - 1))][data.draw(st.integers(0, 2))] = data.draw(
        st.floats(3.5e38, 1e308)
    ) * data.draw(st.sampled_from([1, -1]))
    return z, pos, "beyond float32"


@given(
    rows=st.lists(molecules(), min_size=1, max_size=4),
    data=st.data(),
    how=st.sampled_from(["length", "ragged", "null_atom", "null_row", "null_coordinate", "element", "float32"]),
)
def test_a_malformed_row_names_its_row(fuzz_dir, rows, data, how, clear_error):
    bad = data.draw(st.integers(0, len(rows) - 1))
    z, pos, fragment = _damage(rows, bad, how, data)
    damaged = [(z, pos) if i == bad else r for i, r in enumerate(rows)]
    path = write(fuzz_dir, table(damaged, pa.list_(pa.int16())))
    for read in (read_molecules, lambda p: read_file(p, "parquet", ErrorPolicy())):
        with pytest.raises(DataFormatError) as exc:
            read(path)
        assert fragment in clear_error(exc.value, path, record=bad + 1)
    policy = ErrorPolicy("skip")
    got = read_file(path, "parquet", policy)
    check_rows(got, [r for i, r in enumerate(rows) if i != bad])
    assert got.columns["record"].tolist() == [i + 1 for i in range(len(rows)) if i != bad]
    assert sum(policy.counts.values()) == 1


WRONG_COLUMNS = {
    "fractional atomic numbers": lambda rows: {"atomic_numbers": pa.array([[z + 0.5 for z in r[0]] for r in rows])},
    "integral floats": lambda rows: {"atomic_numbers": pa.array([[float(z) for z in r[0]] for r in rows])},
    "boolean atomic numbers": lambda rows: {"atomic_numbers": pa.array([[True] * len(r[0]) for r in rows])},
    "scalar atomic numbers": lambda rows: {"atomic_numbers": pa.array([r[0][0] for r in rows])},
    "text atomic numbers": lambda rows: {"atomic_numbers": pa.array([[str(z) for z in r[0]] for r in rows])},
    "flat positions": lambda rows: {"positions_ang": pa.array([sum(r[1], []) for r in rows])},
    "scalar positions": lambda rows: {"positions_ang": pa.array([r[1][0][0] for r in rows])},
    "triples of 4": lambda rows: {
        "positions_ang": pa.array([[p + [0.0] for p in r[1]] for r in rows], pa.list_(pa.list_(pa.float64(), 4)))
    },
    "text positions": lambda rows: {"positions_ang": pa.array([[[str(v) for v in p] for p in r[1]] for r in rows])},
    "text mol_id": lambda rows: {"mol_id": pa.array([str(i) for i in range(len(rows))])},
    "float mol_id": lambda rows: {"mol_id": pa.array([float(i) for i in range(len(rows))])},
    "numeric smiles": lambda rows: {"smiles": pa.array([1.0] * len(rows))},
    "text num_atoms": lambda rows: {"num_atoms": pa.array(["3"] * len(rows))},
}


@given(
    rows=st.lists(molecules(), min_size=1, max_size=3),
    wrong=st.sampled_from(sorted(WRONG_COLUMNS)),
    drop=st.sampled_from([None, "mol_id", "atomic_numbers", "positions_ang"]),
)
def test_a_column_of_the_wrong_type_names_the_file(fuzz_dir, rows, wrong, drop, clear_error):
    arrow = table(rows)
    for name, column in WRONG_COLUMNS[wrong](rows).items():
        arrow = (
            arrow.set_column(arrow.column_names.index(name), name, column)
            if name in arrow.column_names
            else arrow.append_column(name, column)
        )
    if drop is not None:
        arrow = arrow.drop_columns([drop])
    path = write(fuzz_dir, arrow)
    with pytest.raises(DataFormatError) as exc:
        read_molecules(path)
    msg = clear_error(exc.value, path)
    assert ("missing columns" in msg) if drop else ("column '" in msg), msg


@given(rows=st.lists(molecules(), min_size=1, max_size=4), data=st.data())
def test_zero_atom_rows_are_not_molecules(fuzz_dir, rows, data, clear_error):
    bad = data.draw(st.integers(0, len(rows) - 1))
    path = write(fuzz_dir, table([([], []) if i == bad else r for i, r in enumerate(rows)]))
    with pytest.raises(DataFormatError) as exc:
        read_file(path, "parquet", ErrorPolicy())
    assert "no atoms" in clear_error(exc.value, path, record=bad + 1)


@settings(max_examples=max(10, settings().max_examples // 10))  # 33k-atom rows: fewer, larger examples
@given(rows=st.lists(molecules(), min_size=1, max_size=2), data=st.data())
def test_more_atoms_than_num_atoms_holds(fuzz_dir, rows, data, clear_error):
    """int16 num_atoms would wrap 40,000 to -25,536; such a molecule is refused with the limit."""
    bad = data.draw(st.integers(0, len(rows) - 1))
    n = data.draw(st.integers(MAX_ATOMS + 1, MAX_ATOMS + 8000))
    pos = (np.stack(np.unravel_index(np.arange(n), (64, 64, 64)), axis=1) * 1.2).tolist()
    path = write(fuzz_dir, table([([6] * n, pos) if i == bad else r for i, r in enumerate(rows)]))
    with pytest.raises(DataFormatError) as exc:
        read_file(path, "parquet", ErrorPolicy())
    assert f"at most {MAX_ATOMS}" in clear_error(exc.value, path, record=bad + 1)


def test_zero_row_table_is_an_empty_file(fuzz_dir, clear_error):
    path = write(fuzz_dir, table([]).slice(0, 0))
    assert len(read_molecules(path)) == 0  # an empty artifact is a table...
    with pytest.raises(DataFormatError) as exc:  # ...but a data source with no molecules is an error
        read_file(path, "parquet", ErrorPolicy())
    assert "holds no molecules" in clear_error(exc.value, path)


@given(rows=st.lists(molecules(), min_size=1, max_size=3), data=st.data())
def test_truncated_or_random_bytes(fuzz_dir, rows, data, clear_error):
    path = write(fuzz_dir, table(rows))
    raw = path.read_bytes()
    damaged = (
        raw[: data.draw(st.integers(0, len(raw) - 1))]
        if data.draw(st.booleans())
        else data.draw(st.binary(max_size=300))
    )
    path.write_bytes(damaged)
    with pytest.raises(DataFormatError) as exc:
        read_molecules(path)
    assert "not a molecule Parquet file" in clear_error(exc.value, path)


def test_a_folder_is_not_a_file(fuzz_dir, clear_error):
    folder = fuzz_dir / "folder.parquet"
    folder.mkdir(exist_ok=True)
    with pytest.raises(DataFormatError) as exc:
        read_molecules(folder)
    assert "folder" in clear_error(exc.value, folder)
