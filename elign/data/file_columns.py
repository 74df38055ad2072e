"""Column names the ``files`` source sets itself; a user property of the same name gets a ``prop_`` prefix."""

from __future__ import annotations

RESERVED = {
    "mol_id",
    "num_atoms",
    "smiles",
    "atomic_numbers",
    "positions_ang",
    "source_file",
    "record",
    "name",
    "source_mol_id",
}


def prop_name(key: str) -> str:
    """The column of a user property ``key`` (SD property, extxyz key, Parquet column)."""
    return f"prop_{key}" if key in RESERVED else key
