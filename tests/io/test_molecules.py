"""Molecule Parquet files: round trip, schema with units, atomic writes."""

from __future__ import annotations

import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from elign.io.atomic import atomic_path
from elign.io.molecules import read_molecules, read_provenance, write_molecules
from elign.io.table import MoleculeRecord, MoleculeTable


def _table():
    rng = np.random.default_rng(0)
    recs = [
        MoleculeRecord(11, np.array([6, 1, 1, 1, 1]), rng.normal(size=(5, 3)), "C", {"u0_ha": -40.5}),
        MoleculeRecord(
            12,
            np.array([8, 1, 1]),
            rng.normal(size=(3, 3)),
            None,
            {"u0_ha": -76.4, "mulliken_charges_e": [-0.6, 0.3, 0.3]},
        ),
    ]
    return MoleculeTable.from_records(recs)


def test_round_trip_is_exact(tmp_path):
    t = _table()
    write_molecules(tmp_path / "m.parquet", t, {"seed": "1"})
    r = read_molecules(tmp_path / "m.parquet")
    assert r.mol_id.tolist() == [11, 12] and r.num_atoms.tolist() == [5, 3]
    assert np.array_equal(r.atomic_numbers, t.atomic_numbers)
    assert np.array_equal(r.positions_ang, t.positions_ang)  # float32 both sides: bit-exact
    assert r.smiles.tolist() == ["C", None]
    assert r.columns["u0_ha"].tolist() == [-40.5, -76.4]
    assert r.columns["mulliken_charges_e"][0] is None
    np.testing.assert_allclose(r.columns["mulliken_charges_e"][1], [-0.6, 0.3, 0.3])
    assert read_provenance(tmp_path / "m.parquet") == {"seed": "1"}


def test_schema_types(tmp_path):
    write_molecules(tmp_path / "m.parquet", _table())
    schema = pq.read_schema(tmp_path / "m.parquet")
    import pyarrow as pa

    z_type, pos_type = schema.field("atomic_numbers").type, schema.field("positions_ang").type
    assert pa.types.is_list(z_type) and z_type.value_type == pa.int8()
    assert pa.types.is_fixed_size_list(pos_type.value_type) and pos_type.value_type.list_size == 3
    assert pos_type.value_type.value_type == pa.float32()


def test_take_selects_atoms_of_chosen_molecules():
    t = _table()
    sub = t.take(np.array([1]))
    assert sub.atomic_numbers.tolist() == [8, 1, 1]
    np.testing.assert_array_equal(sub.positions_ang, t.positions_ang[5:])
    both = t.take(np.array([1, 0]))
    assert both.atomic_numbers.tolist() == [8, 1, 1, 6, 1, 1, 1, 1]


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_missing_file_message(tmp_path):
    with pytest.raises(FileNotFoundError, match="molecule file not found: .*nope.parquet"):
        read_molecules(tmp_path / "nope.parquet")


def test_inconsistent_table_is_rejected():
    with pytest.raises(ValueError, match="atom arrays do not match"):
        MoleculeTable(np.array([1]), np.array([3]), np.array([1, 1]), np.zeros((2, 3)), np.array(["x"], dtype=object))
