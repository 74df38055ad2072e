"""The user's own molecules (``data.source: files``): SDF, multi-frame XYZ / extended XYZ, or Parquet.

Every file in ``data.files.paths`` is read in order and the molecules concatenated; ``mol_id`` is the
running index 0.. over all of them. Each row keeps ``source_file`` and ``record`` (1-based: SDF record,
XYZ frame, Parquet row) so it can be traced back; SDF titles (``_Name``) go to ``name``.

* SDF: :mod:`elign.data.sdf` (the CTfile layout checked line by line, then RDKit with ``removeHs=False,
  sanitize=False``). SD properties become columns (numbers as float). ``smiles`` from a sanitized copy.
* XYZ / extended XYZ: :mod:`elign.data.xyz` (strict counts, ASCII numbers, UTF-8).
* Parquet: our molecule schema, checked column by column and row by row
  (:func:`elign.io.molecules.read_molecules`); its ``mol_id`` is kept as ``source_mol_id``.

Every record is then checked once, before it is narrowed to the table's int8/float32 columns
(:func:`elign.data.checks.record_problem`): 1..32767 atoms of real elements, finite coordinates within
``data.files.max_abs_coordinate_ang``, no two atoms closer than ``data.files.min_distance_ang``, and not a
failed sample of elign's own export (a NaN sample is written at the origin; it never comes back as a
molecule). An empty file is an error too (or, with ``on_error: skip``, a counted ``empty_file``).

Split: with ``split_column`` set, labels come from that SD property / extxyz key / Parquet column (train,
valid or test; case and surrounding spaces ignored; anything else stops with file + record, regardless of
``on_error``) and the column is dropped. Otherwise :func:`~elign.data.split.random_split_labels` with seed
the run's master seed (``seed`` in the config; :data:`SPLIT_SEED` when called directly).
Bad records go through :class:`~elign.data.errors.ErrorPolicy` with file, record and problem.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from elign.config import ConfigError
from elign.data.checks import GeometryLimits, failed_sample_problem, record_problem
from elign.data.errors import ErrorPolicy
from elign.data.file_columns import RESERVED, prop_name  # noqa: F401 (RESERVED: part of this module's API)
from elign.data.registry import SPLITS, SourceResult, register_source
from elign.data.sdf import read_sdf
from elign.data.split import random_split_labels
from elign.data.xyz import Frame, frame_atoms, parse_comment, xyz_frames
from elign.io.errors import DataFormatError
from elign.io.table import MoleculeRecord, MoleculeTable

SPLIT_SEED = 0
FORMAT_BY_SUFFIX = {
    ".sdf": "sdf",
    ".sd": "sdf",
    ".mol": "sdf",
    ".xyz": "xyz",
    ".extxyz": "extxyz",
    ".parquet": "parquet",
    ".pq": "parquet",
}


def file_format(path: Path, configured: str) -> str:
    """The reader for ``path``: ``configured`` unless "auto", else from the file extension."""
    if configured != "auto":
        return configured
    fmt = FORMAT_BY_SUFFIX.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(FORMAT_BY_SUFFIX))
        raise DataFormatError(
            path,
            None,
            f"cannot tell the format from the extension {path.suffix!r} (known: {known}); set data.files.format",
        )
    return fmt


# --------------------------------------------------------------------------------------------- XYZ
def _xyz_record(frame: Frame, path: Path, errors: ErrorPolicy, limits: GeometryLimits) -> MoleculeRecord | None:
    """One frame as a :class:`MoleculeRecord` (positions in Å), or None after reporting it."""
    if frame.problem is not None:
        return errors.bad_record(path, frame.number, *frame.problem)
    if not frame.atoms:
        return errors.bad_record(path, frame.number, "no_atoms", f"line {frame.line}: the frame has 0 atoms")
    props, cols = parse_comment(frame.comment, prop_name)
    failed = failed_sample_problem(props)  # before the atoms: a NaN sample is a failed sample, not a typo
    if failed is not None:
        return errors.bad_record(path, frame.number, failed[0], f"line {frame.line + 1}: {failed[1]}")
    if isinstance(cols, str):
        return errors.bad_record(path, frame.number, "bad_properties", f"line {frame.line + 1}: {cols}")
    atoms = frame_atoms(frame, cols)
    if isinstance(atoms[0], str):
        return errors.bad_record(path, frame.number, *atoms)
    z, pos = atoms
    problem = record_problem(z, pos, props, limits)
    if problem is not None:
        return errors.bad_record(path, frame.number, problem[0], f"line {frame.line}: {problem[1]}")
    props["record"] = frame.number
    return MoleculeRecord(frame.number - 1, z, pos, None, props)


def read_xyz(path: Path, errors: ErrorPolicy, limits: GeometryLimits = GeometryLimits()) -> list[MoleculeRecord]:
    return [r for r in (_xyz_record(f, path, errors, limits) for f in xyz_frames(path)) if r is not None]


# ----------------------------------------------------------------------------------------- Parquet
def _row_props(table: MoleculeTable, i: int) -> dict:
    return {k: table.columns[k][i] for k in ("status", "reason", "nonfinite_positions") if k in table.columns}


def read_parquet(path: Path, errors: ErrorPolicy, limits: GeometryLimits = GeometryLimits()) -> MoleculeTable:
    """A molecule Parquet file: rows of the wrong shape, or that are not molecules, are bad records."""
    from elign.io.molecules import read_molecules

    skipped: set[int] = set()

    def bad_row(row: int, kind: str, problem: str) -> None:
        errors.bad_record(path, row, kind, problem)
        skipped.add(row)

    table = read_molecules(path, bad_row=bad_row)
    columns = {prop_name(k): v for k, v in table.columns.items()}
    columns["source_mol_id"] = table.mol_id
    rows = np.arange(1, len(table) + len(skipped) + 1, dtype=np.int64)
    columns["record"] = rows[~np.isin(rows, list(skipped))]
    table = MoleculeTable(
        table.mol_id, table.num_atoms, table.atomic_numbers, table.positions_ang, table.smiles, columns
    )
    keep, offsets = np.ones(len(table), dtype=bool), table.offsets
    for i in range(len(table)):
        atoms = slice(offsets[i], offsets[i + 1])
        problem = record_problem(table.atomic_numbers[atoms], table.positions_ang[atoms], _row_props(table, i), limits)
        if problem is not None:
            errors.bad_record(path, int(columns["record"][i]), *problem)
            keep[i] = False
    return table if keep.all() else table.take(keep)


# ------------------------------------------------------------------------------------------ loader
def _harmonize(col: np.ndarray) -> np.ndarray:
    """Object columns of scalars get one type: all numbers → float64 (None → NaN); numbers and strings → str."""
    if col.dtype != object:
        return col
    values = [v for v in col if v is not None]
    if not all(isinstance(v, (str, int, float, np.number)) and not isinstance(v, bool) for v in values):
        return col
    if all(not isinstance(v, str) for v in values):
        return np.array([np.nan if v is None else float(v) for v in col], dtype=np.float64)
    out = np.empty(len(col), dtype=object)
    out[:] = [None if v is None else str(v) for v in col]
    return out


def concat_tables(tables: list[MoleculeTable]) -> MoleculeTable:
    """Concatenate tables with different extra columns (missing → NaN, or None in object columns);
    ``mol_id`` becomes 0..M-1. Empty tables are left out."""
    tables = [t for t in tables if len(t)] or tables[:1]
    columns = {}
    for key in dict.fromkeys(k for t in tables for k in t.columns):
        is_object = any(t.columns[key].dtype == object for t in tables if key in t.columns)
        dtype, missing = (object, None) if is_object else (np.float64, np.nan)
        parts = [
            t.columns[key].astype(dtype)
            if is_object and key in t.columns
            else t.columns.get(key, np.full(len(t), missing, dtype=dtype))
            for t in tables
        ]
        columns[key] = _harmonize(np.concatenate(parts))
    n = sum(len(t) for t in tables)
    cat = lambda attr: np.concatenate([getattr(t, attr) for t in tables])  # noqa: E731
    return MoleculeTable(
        np.arange(n), cat("num_atoms"), cat("atomic_numbers"), cat("positions_ang"), cat("smiles"), columns
    )


def read_file(path: Path, fmt: str, errors: ErrorPolicy, limits: GeometryLimits = GeometryLimits()) -> MoleculeTable:
    """One input file as a table with ``source_file`` and ``record`` columns; an empty file is a bad file."""
    before = errors.summary()["count"]
    if fmt == "parquet":
        table = read_parquet(path, errors, limits)
    else:
        records = read_sdf(path, errors, limits) if fmt == "sdf" else read_xyz(path, errors, limits)
        table = MoleculeTable.from_records(records)
        table.columns = {k: _harmonize(v) for k, v in table.columns.items()}
        if "record" in table.columns:
            table.columns["record"] = table.columns["record"].astype(np.int64)
    if len(table) == 0 and errors.summary()["count"] == before:  # nothing at all, not even a bad record
        errors.bad_record(
            path, None, "empty_file", "the file holds no molecules (no records, or a Parquet file with 0 rows)"
        )
    table.columns["source_file"] = np.full(len(table), str(path), dtype=object)
    return table


def split_from_column(table: MoleculeTable, path: Path, column: str) -> np.ndarray:
    """(M,) labels from ``table.columns[column]`` (removed from the table); errors name file and record."""
    name = prop_name(column)
    if name not in table.columns and len(table):
        raise DataFormatError(
            path, None, f"split_column {column!r} not found (columns: {', '.join(sorted(table.columns))})"
        )
    raw = table.columns.pop(name, np.zeros(0, dtype=object))
    labels = np.array([v.strip().lower() if isinstance(v, str) else None for v in raw], dtype=object)
    bad = np.flatnonzero([v not in SPLITS for v in labels])
    if len(bad):
        i = bad[0]
        raise DataFormatError(
            path,
            int(table.columns["record"][i]),
            f"split column {column!r} holds {raw[i]!r}; expected one of {', '.join(SPLITS)}",
        )
    return labels


@register_source("files")
def load_files(cfg, errors: ErrorPolicy, seed: int = SPLIT_SEED) -> SourceResult:
    """Molecules from ``cfg.files.paths`` (``cfg``: :class:`elign.config.DataConfig`), concatenated in order."""
    fcfg = cfg.files
    if not fcfg.paths:
        raise ConfigError("data.files.paths is empty: list one or more .sdf/.xyz/.extxyz/.parquet files")
    paths = [Path(p) for p in fcfg.paths]
    for path in paths:
        if path.is_dir():
            raise DataFormatError(path, None, "data.files.paths names a folder; list the molecule files in it")
        if not path.is_file():
            raise FileNotFoundError(f"data.files.paths: input file not found: {path}")
    limits = GeometryLimits(fcfg.max_abs_coordinate_ang, fcfg.min_distance_ang)
    tables, labels, per_file = [], [], []
    for path in paths:
        fmt = file_format(path, fcfg.format)
        table = read_file(path, fmt, errors, limits)
        if fcfg.split_column:
            labels.append(split_from_column(table, path, fcfg.split_column))
        tables.append(table)
        per_file.append({"path": str(path), "format": fmt, "molecules": len(table)})
    table = concat_tables(tables)
    if len(table) == 0:
        summary = errors.summary()
        raise DataFormatError(
            ", ".join(map(str, paths)),
            None,
            f"no molecules could be read: all "
            f"{summary['count']} records were bad and skipped (on_error: skip), by reason "
            f"{summary['by_reason']}; e.g. {summary['examples'][:1]}",
        )
    if fcfg.split_column:
        split, how = np.concatenate(labels), f"from column {fcfg.split_column!r}"
    else:
        split = random_split_labels(len(table), fcfg.valid_fraction, fcfg.test_fraction, seed)
        how = f"random, seed {seed}"
    info = {
        "files": per_file,
        "split": how,
        "split_seed": None if fcfg.split_column else seed,
        "molecules_per_split": {s: int((split == s).sum()) for s in SPLITS},
    }
    return SourceResult(table, split, info)
