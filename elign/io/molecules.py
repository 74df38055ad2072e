"""Parquet artifacts of molecules: one row per molecule, units in the column names.

Columns: ``mol_id`` int64, ``num_atoms`` int16, ``smiles`` string, ``atomic_numbers`` list<int8>,
``positions_ang`` list<fixed_size_list<float32, 3>>, then any extra per-molecule columns.
Provenance goes into the schema metadata under the key ``elign``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from elign.io.arrow_checks import checked_atoms, other_column
from elign.io.atomic import atomic_path
from elign.io.errors import DataFormatError
from elign.io.table import MoleculeTable

CORE_COLUMNS = ("mol_id", "num_atoms", "smiles", "atomic_numbers", "positions_ang")
METADATA_KEY = b"elign"
NUM_ATOMS_MAX = int(np.iinfo(np.int16).max)


def table_to_arrow(table: MoleculeTable, provenance: dict | None = None) -> pa.Table:
    if len(table) and int(table.num_atoms.max()) > NUM_ATOMS_MAX:
        i = int(np.argmax(table.num_atoms))
        raise ValueError(
            f"molecule {int(table.mol_id[i])} has {int(table.num_atoms[i])} atoms; the num_atoms column "
            f"(int16) holds at most {NUM_ATOMS_MAX}"
        )
    offsets = pa.array(table.offsets.astype(np.int32))
    z = pa.ListArray.from_arrays(offsets, pa.array(table.atomic_numbers, type=pa.int8()))
    xyz = pa.FixedSizeListArray.from_arrays(pa.array(table.positions_ang.reshape(-1), type=pa.float32()), 3)
    pos = pa.ListArray.from_arrays(offsets, xyz)
    arrays = {
        "mol_id": pa.array(table.mol_id, type=pa.int64()),
        "num_atoms": pa.array(table.num_atoms.astype(np.int16)),
        "smiles": pa.array(list(table.smiles), type=pa.string()),
        "atomic_numbers": z,
        "positions_ang": pos,
    }
    for name, col in table.columns.items():
        arrays[name] = _column_to_arrow(col)
    schema_meta = {METADATA_KEY: json.dumps(provenance or {}).encode()}
    return pa.table(arrays).replace_schema_metadata(schema_meta)


def _column_to_arrow(col: np.ndarray) -> pa.Array:
    if col.dtype != object:
        return pa.array(col)
    return pa.array([None if v is None else (np.asarray(v).tolist() if not isinstance(v, str) else v) for v in col])


def write_molecules(path: str | os.PathLike, table: MoleculeTable, provenance: dict | None = None) -> None:
    """Write ``table`` to ``path`` atomically (temp file + rename), zstd-compressed."""
    arrow = table_to_arrow(table, provenance)
    with atomic_path(path) as tmp:
        pq.write_table(arrow, tmp, compression="zstd")


def read_molecules(path: str | os.PathLike, bad_row: Callable[[int, str, str], None] | None = None) -> MoleculeTable:
    """Read a molecule Parquet file back into a :class:`MoleculeTable` (vectorized, no per-row Python).

    The schema and every row's shape are checked before any narrowing cast (:mod:`elign.io.arrow_checks`):
    a file that is not a molecule table stops with a :class:`~elign.data.errors.DataFormatError` naming it;
    a bad row (null lists, atomic numbers and positions of different lengths, a coordinate triple that is
    not 3 numbers, an atomic number outside 1..118, a coordinate beyond float32) names its row (1-based).
    With ``bad_row``, a bad row is passed to ``bad_row(row, kind, problem)`` and left out instead.
    Non-finite coordinates are kept: a sample that went NaN is a row with a status, not a bad file.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"molecule file not found: {path}")
    if path.is_dir():
        raise DataFormatError(path, None, "is a folder, not a molecule Parquet file")
    try:
        arrow = pq.read_table(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataFormatError(path, None, f"not a molecule Parquet file ({exc})") from None
    atoms = checked_atoms(arrow, path)
    if atoms.problems and bad_row is None:
        row, (kind, problem) = next(iter(sorted(atoms.problems.items())))
        raise DataFormatError(path, row + 1, problem)
    for row, (kind, problem) in sorted(atoms.problems.items()):
        bad_row(row + 1, kind, problem)
    keep = atoms.good_rows()
    arrow = arrow.filter(pa.array(keep)) if not keep.all() else arrow
    smiles = (
        arrow.column("smiles").to_numpy(zero_copy_only=False)
        if "smiles" in arrow.column_names
        else np.full(arrow.num_rows, None, dtype=object)
    )
    columns = {}
    for name in arrow.column_names:
        if name not in CORE_COLUMNS:
            columns[name] = other_column(arrow, name, path)
    return MoleculeTable(
        arrow.column("mol_id").to_numpy(),
        atoms.num_atoms[keep],
        atoms.atomic_numbers,
        atoms.positions_ang,
        smiles,
        columns,
    )


def read_provenance(path: str | os.PathLike) -> dict:
    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta.get(METADATA_KEY, b"{}"))


def read_tagged_parquet(path, columns, what: str, hint: str = ""):
    """(frame, metadata dict) of a Parquet file that must hold ``columns``; its metadata is the JSON under
    :data:`METADATA_KEY`. A missing file or column is one clear error naming ``what`` the file should be."""
    import json
    import os

    import pyarrow.parquet as pq

    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} not found: {path}{hint}")
    table = pq.read_table(path)
    missing = [n for n in columns if n not in table.column_names]
    if missing:
        raise ValueError(f"{path}: not a {what} (missing columns {missing})")
    return table.to_pandas(), json.loads((table.schema.metadata or {}).get(METADATA_KEY, b"{}"))
