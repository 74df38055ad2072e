"""The user's own molecules (``data.source: files``): SDF, multi-frame XYZ / extended XYZ, or Parquet.

Every file in ``data.files.paths`` is read in order and the molecules concatenated; ``mol_id`` is the
running index 0.. over all of them. Each row keeps ``source_file`` and ``record`` (1-based: SDF record,
XYZ frame, Parquet row) so it can be traced back; SDF titles (``_Name``) go to ``name``.

* SDF: RDKit with ``removeHs=False, sanitize=False`` (atoms, explicit H and 3D coordinates exactly as
  written). SD properties become columns (numbers as float). ``smiles`` from a sanitized copy, else None.
* XYZ: count line, comment line, ``El x y z`` lines per frame (element symbol or atomic number). A comment
  made of ``key=value`` pairs (or holding ``Properties=``) is read as extended XYZ: species and pos from
  ``Properties=species:S:1:pos:R:3:...`` (other per-atom columns are ignored), numeric values become float
  columns, others string columns; any other comment is kept in a ``comment`` column. No ASE needed.
* Parquet: our molecule schema (:func:`elign.io.molecules.read_molecules`); its ``mol_id`` is kept as
  ``source_mol_id``.

Split: with ``split_column`` set, labels come from that SD property / extxyz key / Parquet column (train,
valid or test; case and surrounding spaces ignored; anything else stops with file + record, regardless of
``on_error``) and the column is dropped. Otherwise :func:`~elign.data.split.random_split_labels` with seed
the run's master seed (``seed`` in the config; :data:`SPLIT_SEED` when called directly).
Bad records go through :class:`~elign.data.errors.ErrorPolicy` with file, record and problem.
"""

from __future__ import annotations

import io
import itertools
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from elign.data.elements import SYMBOLS, atomic_number
from elign.data.errors import DataFormatError, ErrorPolicy
from elign.data.registry import SPLITS, SourceResult, register_source
from elign.data.split import random_split_labels
from elign.data.table import MoleculeRecord, MoleculeTable

SPLIT_SEED = 0
FORMAT_BY_SUFFIX = {".sdf": "sdf", ".sd": "sdf", ".mol": "sdf", ".xyz": "xyz", ".extxyz": "extxyz",
                    ".parquet": "parquet", ".pq": "parquet"}
RESERVED = {"mol_id", "num_atoms", "smiles", "atomic_numbers", "positions_ang", "source_file", "record", "name",
            "source_mol_id"}


def file_format(path: Path, configured: str) -> str:
    """The reader for ``path``: ``configured`` unless "auto", else from the file extension."""
    if configured != "auto":
        return configured
    fmt = FORMAT_BY_SUFFIX.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(FORMAT_BY_SUFFIX))
        raise ValueError(f"{path}: cannot tell the format from the extension {path.suffix!r} (known: {known}); "
                         "set data.files.format")
    return fmt


def _prop_name(key: str) -> str:
    return f"prop_{key}" if key in RESERVED else key


def _scalar(text: str) -> float | str:
    """A float if ``text`` is a number, else the string itself."""
    try:
        return float(text)
    except ValueError:
        return text


# --------------------------------------------------------------------------------------------- SDF
def _sdf_blocks(path: Path) -> Iterator[tuple[int, int, bytes]]:
    """``(record number (1-based), first line, raw bytes)`` per SDF record; blank records are not counted."""
    with open(path, "rb") as fh:
        lines: list[bytes] = []
        start, record = 1, 0
        for lineno, line in enumerate(fh, start=1):
            lines.append(line)
            if line.startswith(b"$$$$"):
                if b"".join(lines[:-1]).strip():
                    record += 1
                    yield record, start, b"".join(lines)
                lines, start = [], lineno + 1
        if b"".join(lines).strip():
            yield record + 1, start, b"".join(lines) + b"\n$$$$\n"


def _rdkit_reason(messages: str) -> str:
    reasons = [m.split("ERROR:", 1)[-1].strip() for m in messages.splitlines()
               if m.strip() and "moving to the beginning of the next molecule" not in m]
    return "; ".join(reasons) or "no reason given by RDKit"


def _sdf_smiles(mol) -> str | None:
    """Canonical heavy-atom SMILES (stereo from 3D) of a sanitized copy; None if RDKit cannot sanitize."""
    from rdkit import Chem, rdBase

    with rdBase.BlockLogs():
        try:
            copy = Chem.Mol(mol)
            Chem.SanitizeMol(copy)
            Chem.AssignStereochemistryFrom3D(copy)
            return Chem.MolToSmiles(Chem.RemoveHs(copy))
        except Exception:  # any RDKit failure means "no SMILES", never a bad record
            return None


def _sdf_record(block: bytes, path: Path, record: int, line: int, errors: ErrorPolicy) -> MoleculeRecord | None:
    """One SDF record as a :class:`MoleculeRecord` (positions in Å), or None after reporting it."""
    from rdkit import Chem, rdBase

    with rdBase.CaptureErrorLog() as capture:
        mols = list(Chem.ForwardSDMolSupplier(io.BytesIO(block), removeHs=False, sanitize=False))
    mol = mols[0] if mols else None
    where = f"record starting at line {line}"
    if mol is None:
        problem = f"RDKit could not parse the {where}: {_rdkit_reason(capture.messages)}"
        return errors.bad_record(path, record, "unparseable_sdf", problem)
    header = block.split(b"\n", 2)[1] if block.count(b"\n") >= 2 else b""
    if mol.GetNumAtoms() == 0 or mol.GetNumConformers() == 0:
        return errors.bad_record(path, record, "no_atoms", f"the {where} has no atoms or no coordinates")
    if not mol.GetConformer().Is3D() and header[20:22] == b"2D":
        return errors.bad_record(path, record, "not_3d", f"the {where} has 2D coordinates; 3D are needed")
    z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=np.int64)
    if (z < 1).any():
        i = int(np.flatnonzero(z < 1)[0])
        return errors.bad_record(path, record, "unknown_element", f"atom {i + 1} of the {where} is "
                                 f"{mol.GetAtomWithIdx(i).GetSymbol()!r}, not a chemical element")
    pos = mol.GetConformer().GetPositions()
    if not np.isfinite(pos).all():
        i = int(np.flatnonzero(~np.isfinite(pos).all(axis=1))[0])
        return errors.bad_record(path, record, "nan_coordinate", f"atom {i + 1} of the {where} has a "
                                 f"non-finite coordinate {pos[i].tolist()}")
    props = {_prop_name(k): v for k, v in mol.GetPropsAsDict(includePrivate=False, includeComputed=False).items()}
    props["name"] = mol.GetProp("_Name") if mol.HasProp("_Name") else None
    return MoleculeRecord(record - 1, z, pos, _sdf_smiles(mol), props)


def read_sdf(path: Path, errors: ErrorPolicy) -> list[MoleculeRecord]:
    out = []
    for record, line, block in _sdf_blocks(path):
        rec = _sdf_record(block, path, record, line, errors)
        if rec is not None:
            rec.props["record"] = record
            out.append(rec)
    return out


# --------------------------------------------------------------------------------------------- XYZ
@dataclass
class _Frame:
    """One XYZ frame: ``atoms`` are ``(line number, text)``; ``problem`` = (kind, message) if unreadable."""

    number: int
    line: int
    comment: str = ""
    atoms: list[tuple[int, str]] = field(default_factory=list)
    problem: tuple[str, str] | None = None


@dataclass
class _Columns:
    """Where species and positions are on an atom line, and how many columns it has at least."""

    species: int = 0
    pos: int = 1
    width: int = 4


def _count(line: str) -> int | None:
    tokens = line.split()
    return int(tokens[0]) if len(tokens) == 1 and tokens[0].isdigit() else None


def _xyz_frames(path: Path) -> Iterator[_Frame]:
    """Frames of a multi-frame XYZ file; after a bad count line, reading resumes at the next count line."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        lines = enumerate(fh, start=1)
        number, resync = 0, False
        for lineno, line in lines:
            count = _count(line)
            if not line.strip() or (resync and count is None):
                continue
            number, resync = number + 1, False
            if count is None:
                resync = True
                yield _Frame(number, lineno, problem=("bad_count", f"line {lineno}: expected the atom count "
                                                      f"(an integer), got {line.strip()[:80]!r}"))
                continue
            comment = next(lines, (None, None))[1]
            atoms = [(n, text) for n, text in itertools.islice(lines, count)]
            if comment is None or len(atoms) < count:
                yield _Frame(number, lineno, problem=("truncated_frame", f"line {lineno}: truncated frame: "
                                                      f"{count} atoms announced, the file ends after {len(atoms)}"))
                return
            yield _Frame(number, lineno, comment, atoms)


def _properties(spec: str) -> _Columns | str:
    """Columns of species and pos from an extxyz ``Properties`` value, or a problem message."""
    parts = spec.split(":")
    if len(parts) % 3 or not all(p.isdigit() for p in parts[2::3]):
        return f"malformed Properties={spec!r} (expected name:type:count triples)"
    cols, offset = {}, 0
    for name, kind, n in zip(parts[::3], parts[1::3], parts[2::3]):
        cols[name.lower()] = (offset, kind.upper(), int(n))
        offset += int(n)
    species = cols.get("species") or cols.get("z")
    pos = cols.get("pos") or cols.get("positions")
    if species is None or species[2] != 1 or pos is None or pos[2] != 3:
        return f"Properties={spec!r} lacks a species (or Z) column of 1 and a pos column of 3"
    return _Columns(species[0], pos[0], offset)


def parse_comment(comment: str) -> tuple[dict, _Columns | str]:
    """Scalar properties and atom-line columns from an XYZ comment line (plain or extended XYZ)."""
    text = comment.strip()
    try:
        pairs = [t.split("=", 1) for t in shlex.split(text)]
    except ValueError:  # unbalanced quotes: not extxyz
        pairs = [[text]]
    keys = [p[0].lower() for p in pairs]
    if not text or not ("properties" in keys or all(len(p) == 2 for p in pairs)):
        return ({"comment": text} if text else {}), _Columns()
    values = {p[0]: p[1] for p in pairs if len(p) == 2}
    spec = next((v for k, v in values.items() if k.lower() == "properties"), "species:S:1:pos:R:3")
    props = {_prop_name(k): _scalar(v) for k, v in values.items() if k.lower() != "properties"}
    return props, _properties(spec)


def _element(token: str) -> int | None:
    if token.isdigit():
        return int(token) if 1 <= int(token) <= len(SYMBOLS) else None
    try:
        return atomic_number(token)
    except KeyError:
        return None


def _xyz_record(frame: _Frame, path: Path, errors: ErrorPolicy) -> MoleculeRecord | None:
    """One frame as a :class:`MoleculeRecord` (positions in Å), or None after reporting it."""
    if frame.problem is not None:
        return errors.bad_record(path, frame.number, *frame.problem)
    if not frame.atoms:
        return errors.bad_record(path, frame.number, "no_atoms", f"line {frame.line}: the frame has 0 atoms")
    props, cols = parse_comment(frame.comment)
    if isinstance(cols, str):
        return errors.bad_record(path, frame.number, "bad_properties", f"line {frame.line + 1}: {cols}")
    z = np.zeros(len(frame.atoms), dtype=np.int64)
    pos = np.zeros((len(frame.atoms), 3))
    for i, (lineno, line) in enumerate(frame.atoms):
        tokens = line.split()
        if len(tokens) < cols.width:
            return errors.bad_record(path, frame.number, "malformed_atom_line", f"line {lineno}: expected "
                                     f"{cols.width} columns (element x y z), got {line.strip()[:80]!r}")
        z[i] = _element(tokens[cols.species]) or 0
        if z[i] == 0:
            return errors.bad_record(path, frame.number, "unknown_element",
                                     f"line {lineno}: unknown element symbol {tokens[cols.species]!r}")
        try:
            pos[i] = [float(t) for t in tokens[cols.pos:cols.pos + 3]]
        except ValueError:
            return errors.bad_record(path, frame.number, "bad_coordinate", f"line {lineno}: unparseable "
                                     f"coordinate in {' '.join(tokens[cols.pos:cols.pos + 3])!r}")
        if not np.isfinite(pos[i]).all():
            return errors.bad_record(path, frame.number, "nan_coordinate",
                                     f"line {lineno}: non-finite coordinate {line.strip()[:80]!r}")
    props["record"] = frame.number
    return MoleculeRecord(frame.number - 1, z, pos, None, props)


def read_xyz(path: Path, errors: ErrorPolicy) -> list[MoleculeRecord]:
    return [r for r in (_xyz_record(f, path, errors) for f in _xyz_frames(path)) if r is not None]


# ----------------------------------------------------------------------------------------- Parquet
def read_parquet(path: Path, errors: ErrorPolicy) -> MoleculeTable:
    """A molecule Parquet file; rows with unknown atomic numbers or NaN coordinates are bad records."""
    from elign.io.molecules import read_molecules

    try:
        table = read_molecules(path)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        if isinstance(exc, FileNotFoundError):
            raise
        raise DataFormatError(path, None, f"not a molecule Parquet file ({exc})") from None
    columns = {_prop_name(k): v for k, v in table.columns.items()}
    columns["source_mol_id"] = table.mol_id
    columns["record"] = np.arange(1, len(table) + 1, dtype=np.int64)
    table = MoleculeTable(table.mol_id, table.num_atoms, table.atomic_numbers, table.positions_ang,
                          table.smiles, columns)
    z = table.atomic_numbers.astype(np.int64)
    bad_atoms = np.flatnonzero((z < 1) | (z > len(SYMBOLS)) | ~np.isfinite(table.positions_ang).all(axis=1))
    bad_mols, first = np.unique(table.atom_molecule_index()[bad_atoms], return_index=True)
    for i, atom in zip(bad_mols, bad_atoms[first]):
        j = int(atom - table.offsets[i])
        if not 1 <= z[atom] <= len(SYMBOLS):
            kind, problem = "unknown_element", f"atom {j + 1} has atomic number {z[atom]}"
        else:
            kind, problem = "nan_coordinate", f"atom {j + 1} has a non-finite coordinate"
        errors.bad_record(path, int(i) + 1, kind, problem)
    keep = ~np.isin(np.arange(len(table)), bad_mols)
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
        parts = [t.columns[key].astype(dtype) if is_object and key in t.columns
                 else t.columns.get(key, np.full(len(t), missing, dtype=dtype)) for t in tables]
        columns[key] = _harmonize(np.concatenate(parts))
    n = sum(len(t) for t in tables)
    cat = lambda attr: np.concatenate([getattr(t, attr) for t in tables])  # noqa: E731
    return MoleculeTable(np.arange(n), cat("num_atoms"), cat("atomic_numbers"), cat("positions_ang"), cat("smiles"),
                         columns)


def read_file(path: Path, fmt: str, errors: ErrorPolicy) -> MoleculeTable:
    """One input file as a table with ``source_file`` and ``record`` columns."""
    if fmt == "parquet":
        table = read_parquet(path, errors)
    else:
        records = read_sdf(path, errors) if fmt == "sdf" else read_xyz(path, errors)
        table = MoleculeTable.from_records(records)
        table.columns = {k: _harmonize(v) for k, v in table.columns.items()}
        if "record" in table.columns:
            table.columns["record"] = table.columns["record"].astype(np.int64)
    table.columns["source_file"] = np.full(len(table), str(path), dtype=object)
    return table


def split_from_column(table: MoleculeTable, path: Path, column: str) -> np.ndarray:
    """(M,) labels from ``table.columns[column]`` (removed from the table); errors name file and record."""
    name = _prop_name(column)
    if name not in table.columns and len(table):
        raise DataFormatError(path, None, f"split_column {column!r} not found (columns: "
                              f"{', '.join(sorted(table.columns))})")
    raw = table.columns.pop(name, np.zeros(0, dtype=object))
    labels = np.array([v.strip().lower() if isinstance(v, str) else None for v in raw], dtype=object)
    bad = np.flatnonzero([v not in SPLITS for v in labels])
    if len(bad):
        i = bad[0]
        raise DataFormatError(path, int(table.columns["record"][i]), f"split column {column!r} holds {raw[i]!r}; "
                              f"expected one of {', '.join(SPLITS)}")
    return labels


@register_source("files")
def load_files(cfg, errors: ErrorPolicy, seed: int = SPLIT_SEED) -> SourceResult:
    """Molecules from ``cfg.files.paths`` (``cfg``: :class:`elign.config.DataConfig`), concatenated in order."""
    fcfg = cfg.files
    if not fcfg.paths:
        raise ValueError("data.files.paths is empty: list one or more .sdf/.xyz/.extxyz/.parquet files")
    paths = [Path(p) for p in fcfg.paths]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"data.files.paths: input file not found: {path}")
    tables, labels, per_file = [], [], []
    for path in paths:
        fmt = file_format(path, fcfg.format)
        table = read_file(path, fmt, errors)
        if fcfg.split_column:
            labels.append(split_from_column(table, path, fcfg.split_column))
        tables.append(table)
        per_file.append({"path": str(path), "format": fmt, "molecules": len(table)})
    table = concat_tables(tables)
    if len(table) == 0:
        raise ValueError(f"no molecules could be read from data.files.paths ({errors.summary()['count']} bad "
                         "records skipped)")
    if fcfg.split_column:
        split, how = np.concatenate(labels), f"from column {fcfg.split_column!r}"
    else:
        split = random_split_labels(len(table), fcfg.valid_fraction, fcfg.test_fraction, seed)
        how = f"random, seed {seed}"
    info = {"files": per_file, "split": how, "split_seed": None if fcfg.split_column else seed,
            "molecules_per_split": {s: int((split == s).sum()) for s in SPLITS}}
    return SourceResult(table, split, info)
