"""Checks of a molecule Parquet table before its columns are narrowed to the in-memory types.

Column level (the file is not a molecule table; one error naming the file and the column): ``mol_id``
integers, ``atomic_numbers`` a list of integers per row, ``positions_ang`` a list of coordinate triples per
row (``fixed_size_list<float, 3>`` as elign writes it, or lists of 3 numbers), ``smiles`` text,
``num_atoms`` integers. Row level (one molecule is malformed; the row is named, 1-based): null values,
atomic numbers and positions of different lengths (atoms would shift between molecules), a triple that is
not 3 numbers, an atomic number outside 1..118 (before the int8 cast, which would wrap 300 to 44), a
finite coordinate beyond float32 (before the cast, which would make it ``inf``), ``num_atoms`` that
disagrees with the lists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from elign.elements import SYMBOLS
from elign.io.errors import DataFormatError

FLOAT32_MAX = float(np.finfo(np.float32).max)
Problems = dict[int, tuple[str, str]]


@dataclass
class CheckedAtoms:
    """Atoms of the rows without problems, already narrowed; ``problems`` maps a 0-based row to (kind, message)."""

    n_rows: int
    num_atoms: np.ndarray  # (rows,) int64, atoms per row (any value for a bad row)
    atomic_numbers: np.ndarray  # (A,) int8 of the good rows
    positions_ang: np.ndarray  # (A, 3) float32 of the good rows
    problems: Problems

    def good_rows(self) -> np.ndarray:
        keep = np.ones(self.n_rows, dtype=bool)
        keep[list(self.problems)] = False
        return keep


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def _is_int(t: pa.DataType) -> bool:
    return pa.types.is_integer(t)


def _column_type_problem(arrow: pa.Table) -> str | None:
    names = arrow.column_names
    missing = [c for c in ("mol_id", "atomic_numbers", "positions_ang") if c not in names]
    if missing:
        return f"not a molecule table, missing columns {missing} (it has {names[:12]})"
    types = {name: arrow.schema.field(name).type for name in names}
    z, pos = types["atomic_numbers"], types["positions_ang"]
    if not _is_int(types["mol_id"]):
        return f"column 'mol_id' must hold integers, found {types['mol_id']}"
    if not (_is_list(z) and _is_int(z.value_type)):
        return f"column 'atomic_numbers' must be a list of integers per molecule, found {z}"
    triple = pos.value_type if _is_list(pos) else None
    if (
        triple is None
        or not _is_list(triple)
        or not (pa.types.is_floating(triple.value_type) or _is_int(triple.value_type))
    ):
        return (
            f"column 'positions_ang' must be a list of [x, y, z] triples per molecule "
            f"(list<fixed_size_list<float, 3>>), found {pos}"
        )
    if pa.types.is_fixed_size_list(triple) and triple.list_size != 3:
        return f"column 'positions_ang' holds triples of {triple.list_size} numbers, not 3"
    if "smiles" in types and not (
        pa.types.is_string(types["smiles"])
        or pa.types.is_large_string(types["smiles"])
        or pa.types.is_null(types["smiles"])
    ):
        return f"column 'smiles' must hold text, found {types['smiles']}"
    if "num_atoms" in types and not (_is_int(types["num_atoms"]) or pa.types.is_null(types["num_atoms"])):
        return f"column 'num_atoms' must hold integers, found {types['num_atoms']}"
    return None


def _lengths(arr: pa.Array) -> np.ndarray:
    """(n,) int64 list lengths, -1 for a null list."""
    return pc.list_value_length(arr).fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)


def _flag(problems: Problems, rows: np.ndarray, kind: str, message: Callable[[int], str]) -> None:
    """Record ``kind`` for each row in ``rows`` (0-based) that has no problem yet."""
    for k, row in enumerate(np.asarray(rows).tolist()):
        if row not in problems:
            problems[row] = (kind, message(k))


def _atom_rows(lengths: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For the atoms of ``rows`` (lengths >= 0): the row of each atom and its 1-based index in the row."""
    row_of_atom = np.repeat(rows, lengths)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return row_of_atom, np.arange(len(row_of_atom)) - starts + 1


def _row_problems(arrow: pa.Table, z: pa.Array, pos: pa.Array, problems: Problems) -> np.ndarray:
    """Nulls, and lengths that disagree; returns (rows,) atom counts of the atomic-number lists."""
    z_len, p_len = _lengths(z), _lengths(pos)
    _flag(
        problems,
        np.flatnonzero(arrow.column("mol_id").is_null().to_numpy(zero_copy_only=False)),
        "null_value",
        lambda k: "mol_id is null",
    )
    _flag(problems, np.flatnonzero(z_len < 0), "null_value", lambda k: "atomic_numbers is null")
    _flag(problems, np.flatnonzero(p_len < 0), "null_value", lambda k: "positions_ang is null")
    rows = np.flatnonzero(z_len != p_len)
    _flag(
        problems, rows, "length_mismatch", lambda k: f"{z_len[rows[k]]} atomic numbers but {p_len[rows[k]]} positions"
    )
    if "num_atoms" in arrow.column_names:
        stated = arrow.column("num_atoms").to_numpy(zero_copy_only=False).astype(np.float64)
        rows = np.flatnonzero(~(stated == z_len))  # a null num_atoms (NaN) disagrees too
        _flag(
            problems,
            rows,
            "length_mismatch",
            lambda k: f"num_atoms says {stated[rows[k]]:g} but the row holds {z_len[rows[k]]} atomic numbers",
        )
    return z_len


def _good(problems: Problems, n: int) -> np.ndarray:
    keep = np.ones(n, dtype=bool)
    keep[list(problems)] = False
    return keep


def _triple_problems(pos: pa.Array, lengths: np.ndarray, rows: np.ndarray, problems: Problems) -> None:
    """Triples that are null or not 3 numbers, among the (already length-checked) ``rows``."""
    triples = pos.flatten()
    if pa.types.is_fixed_size_list(triples.type):
        bad = triples.is_null().to_numpy(zero_copy_only=False)
        sizes = np.where(bad, -1, 3)
    else:
        sizes = _lengths(triples)
        bad = sizes != 3
    row_of, atom = _atom_rows(lengths, rows)
    hits = np.flatnonzero(bad)
    _flag(
        problems,
        row_of[hits],
        "bad_coordinate",
        lambda k: (
            f"atom {atom[hits[k]]} has a null position"
            if sizes[hits[k]] < 0
            else f"atom {atom[hits[k]]} has {sizes[hits[k]]} coordinates, not 3"
        ),
    )


def _value_problems(
    z: pa.Array, pos: pa.Array, lengths: np.ndarray, rows: np.ndarray, problems: Problems
) -> tuple[np.ndarray, np.ndarray]:
    """Atomic numbers and coordinates of well-shaped ``rows``: (z int64 with nulls as 0, xyz float64 (A, 3))."""
    row_of, atom = _atom_rows(lengths, rows)
    z_values = z.flatten()
    z_null = z_values.is_null().to_numpy(zero_copy_only=False)
    zs = z_values.fill_null(0).to_numpy(zero_copy_only=False)
    bad = np.flatnonzero(z_null | (zs < 1) | (zs > len(SYMBOLS)))
    _flag(
        problems,
        row_of[bad],
        "unknown_element",
        lambda k: (
            f"atom {atom[bad[k]]} has no atomic number (null)"
            if z_null[bad[k]]
            else f"atom {atom[bad[k]]} has atomic number {zs[bad[k]]}, not a chemical element (1..{len(SYMBOLS)})"
        ),
    )
    values = pos.flatten().flatten()
    v_null = values.is_null().to_numpy(zero_copy_only=False).reshape(-1, 3).any(axis=1)
    xyz = values.cast(pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False).reshape(-1, 3)
    with np.errstate(invalid="ignore"):
        too_big = (np.isfinite(xyz) & (np.abs(xyz) > FLOAT32_MAX)).any(axis=1)
    bad = np.flatnonzero(v_null | too_big)
    _flag(
        problems,
        row_of[bad],
        "bad_coordinate",
        lambda k: (
            f"atom {atom[bad[k]]} has a null coordinate"
            if v_null[bad[k]]
            else f"atom {atom[bad[k]]} has a coordinate beyond float32 ({xyz[bad[k]].tolist()})"
        ),
    )
    return zs.astype(np.int64, copy=False), xyz


def checked_atoms(arrow: pa.Table, path: str | Path) -> CheckedAtoms:
    """Check ``arrow`` as a molecule table (module doc); column problems raise, row problems are returned."""
    problem = _column_type_problem(arrow)
    if problem is not None:
        raise DataFormatError(path, None, problem)
    n, problems = arrow.num_rows, {}
    z, pos = arrow.column("atomic_numbers").combine_chunks(), arrow.column("positions_ang").combine_chunks()
    lengths = _row_problems(arrow, z, pos, problems)
    for stage in ("triples", "values"):
        keep = _good(problems, n)
        rows, mask = np.flatnonzero(keep), pa.array(keep)
        if stage == "triples":
            _triple_problems(pos.filter(mask), lengths[rows], rows, problems)
        else:
            zs, xyz = _value_problems(z.filter(mask), pos.filter(mask), lengths[rows], rows, problems)
    atom_keep = np.repeat(_good(problems, n)[rows], lengths[rows])
    return CheckedAtoms(n, lengths, zs[atom_keep].astype(np.int8), xyz[atom_keep].astype(np.float32), problems)


def other_column(arrow: pa.Table, name: str, path: str | Path) -> np.ndarray:
    """A non-core column as numpy (object arrays for lists and text); a column numpy cannot hold is an error."""
    try:
        return arrow.column(name).to_numpy(zero_copy_only=False)
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise DataFormatError(
            path, None, f"column {name!r} ({arrow.schema.field(name).type}) cannot be read: {exc}"
        ) from None
