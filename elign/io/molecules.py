"""Parquet artifacts of molecules: one row per molecule, units in the column names.

Columns: ``mol_id`` int64, ``num_atoms`` int16, ``smiles`` string, ``atomic_numbers`` list<int8>,
``positions_ang`` list<fixed_size_list<float32, 3>>, then any extra per-molecule columns.
Provenance goes into the schema metadata under the key ``elign``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from elign.data.table import MoleculeTable
from elign.io.atomic import atomic_path

CORE_COLUMNS = ("mol_id", "num_atoms", "smiles", "atomic_numbers", "positions_ang")
METADATA_KEY = b"elign"


def table_to_arrow(table: MoleculeTable, provenance: dict | None = None) -> pa.Table:
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


def read_molecules(path: str | os.PathLike) -> MoleculeTable:
    """Read a molecule Parquet file back into a :class:`MoleculeTable` (vectorized, no per-row Python)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"molecule file not found: {path}")
    arrow = pq.read_table(path)
    missing = [c for c in ("mol_id", "atomic_numbers", "positions_ang") if c not in arrow.column_names]
    if missing:
        raise ValueError(f"{path}: not a molecule table, missing columns {missing}")
    z_list = arrow.column("atomic_numbers").combine_chunks()
    pos_list = arrow.column("positions_ang").combine_chunks()
    num = np.diff(z_list.offsets.to_numpy())
    z = z_list.flatten().to_numpy(zero_copy_only=False)
    xyz = pos_list.flatten().flatten().to_numpy(zero_copy_only=False).reshape(-1, 3)
    smiles = arrow.column("smiles").to_numpy(zero_copy_only=False) if "smiles" in arrow.column_names \
        else np.full(len(num), None, dtype=object)
    columns = {}
    for name in arrow.column_names:
        if name in CORE_COLUMNS:
            continue
        columns[name] = arrow.column(name).to_numpy(zero_copy_only=False)
    return MoleculeTable(arrow.column("mol_id").to_numpy(), num, z, xyz, smiles, columns)


def read_provenance(path: str | os.PathLike) -> dict:
    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta.get(METADATA_KEY, b"{}"))
