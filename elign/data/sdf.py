"""SD files (V2000 and V3000 molfiles), checked line by line before RDKit parses them.

RDKit's reader is lenient where a training set must not be: a V2000 atom line shifted by a column is read
as other numbers (a blank field takes the next value, ``1,5`` reads as 1.0), bond types 0 and 9 pass, a
molblock without ``M  END`` passes, and a second molblock that lacks its ``$$$$`` disappears into the first
one's data items. So each record is first checked against the CTfile layout (BIOVIA, "CTfile Formats"):

* the record is UTF-8 text;
* V2000: counts line with the atom and bond counts in columns 1-3 and 4-6; each atom line has x, y, z as
  right-aligned numbers in columns 1-10, 11-20, 21-30, a blank column 31, the symbol in 32-34 and integer
  (or blank) fields after it; each bond line has two distinct atoms of the molecule and a type 1-8 in
  columns 1-9; then property lines (``M  ``, ``A  ``, ``V  ``, ``G  ``, ``S  SKP``) up to ``M  END``;
* V3000: the CTAB's COUNTS, ATOM and BOND blocks agree; coordinates are numbers; bond types are 1-10;
* after ``M  END`` only SD data items (``> <name>`` then value lines up to a blank line).

A record whose coordinates are all z = 0 (four atoms or more) is a 2D drawing whatever its header says, and
is rejected as one that declares 2D is. A record RDKit cannot parse is reported with RDKit's reason; one it
can parse must also pass the layout check, so that what RDKit built (``removeHs=False, sanitize=False``:
atoms, explicit H and 3D coordinates) is what the lines say. SD properties become columns (numbers as
float); ``smiles`` comes from a sanitized copy, else None; titles (``_Name``) go to ``name``.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from elign.data.checks import GeometryLimits, record_problem
from elign.data.errors import ErrorPolicy
from elign.data.file_columns import prop_name
from elign.io.table import MoleculeRecord

_COORD = re.compile(r" *[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)", re.ASCII)  # a right-aligned F10.4-like field
_INT_FIELD = re.compile(r" *[+-]?[0-9]+ *", re.ASCII)
_SYMBOL = re.compile(r"(?:[A-Za-z]{1,3}|R#|\*) *", re.ASCII)
_V3000_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_PROPERTY_PREFIXES = ("M  ", "V  ", "S  SKP")  # one-line entries of the V2000 properties block
_TWO_LINE_PREFIXES = ("A  ", "G  ")  # atom alias, group abbreviation: a header line and a text line
_V2000_BOND_TYPES = range(1, 9)  # 1-3 orders, 4 aromatic, 5-8 query types
_V3000_BOND_TYPES = range(1, 11)  # V3000 adds 9 coordination and 10 hydrogen
_BOM = b"\xef\xbb\xbf"
_TIMESTAMP = re.compile(r"^\s*\[\d\d:\d\d:\d\d\]\s*")  # RDKit's log prefix
Problem = tuple[str, str]
FLAT_MIN_ATOMS = 4  # any 3 atoms lie in a plane: all z = 0 is evidence of a 2D drawing from 4 atoms on


def sdf_blocks(path: Path) -> Iterator[tuple[int, int, bytes]]:
    """``(record number (1-based), first line, raw bytes)`` per SDF record; blank records are not counted."""
    with open(path, "rb") as fh:
        lines: list[bytes] = []
        start, record = 1, 0
        for lineno, line in enumerate(fh, start=1):
            if lineno == 1 and line.startswith(_BOM):
                line = line[len(_BOM) :]
            lines.append(line)
            if line.startswith(b"$$$$"):
                if b"".join(lines[:-1]).strip():
                    record += 1
                    yield record, start, b"".join(lines)
                lines, start = [], lineno + 1
        if b"".join(lines).strip():
            yield record + 1, start, b"".join(lines) + b"\n$$$$\n"


def _decode(raw: bytes, first: int) -> list[str] | Problem:
    """The record's lines (without line ends), or a problem naming the line of the first non-UTF-8 byte."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = first + raw.count(b"\n", 0, exc.start)
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        return "bad_encoding", f"line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {column})"
    return [line.rstrip("\r") for line in text.split("\n")]


def _int(field: str) -> int | None:
    return int(field) if _INT_FIELD.fullmatch(field) else None


# ------------------------------------------------------------------------------------------ V2000
def _v2000_atom(line: str) -> str | None:
    if len(line) < 32:
        return f"expected x, y, z in columns 1-30 and the element symbol from column 32, got {line[:80]!r}"
    for k, axis in enumerate("xyz"):
        field = line[10 * k : 10 * k + 10]
        if not _COORD.fullmatch(field):
            return (
                f"the {axis} field (columns {10 * k + 1}-{10 * k + 10}) is {field!r}, not a right-aligned "
                "number (a shifted or damaged atom line?)"
            )
    if line[30] != " " or not _SYMBOL.fullmatch(line[31:34]):
        return f"expected a blank column 31 and the element symbol in columns 32-34, got {line[30:34]!r}"
    rest = line[34:]
    fields = [rest[0:2]] + [rest[2 + 3 * k : 5 + 3 * k] for k in range(11)]
    bad = next((f for f in fields if f.strip() and _int(f) is None), None)
    if bad is not None or rest[35:].strip():
        return f"the fields after the symbol (columns 35-69) must be integers, got {rest[:40]!r}"
    return None


def _v2000_bond(line: str, n_atoms: int) -> str | None:
    fields = [line[3 * k : 3 * k + 3] for k in range(7)]
    ints = [_int(f) for f in fields[:3]]
    if len(line) < 9 or None in ints:
        return f"expected two atom numbers and a bond type in columns 1-9, got {line[:40]!r}"
    a, b, kind = ints
    if not (1 <= a <= n_atoms and 1 <= b <= n_atoms) or a == b:
        return f"a bond between atoms {a} and {b} of a {n_atoms}-atom molecule"
    if kind not in _V2000_BOND_TYPES:
        return f"bond type {kind}; V2000 bond types are 1-8 (1-3 orders, 4 aromatic, 5-8 query types)"
    if any(f.strip() and _int(f) is None for f in fields[3:]) or line[21:].strip():
        return f"the fields after the bond type (columns 10-21) must be integers, got {line[9:40]!r}"
    return None


def _v2000(lines: list[str], first: int) -> int | Problem:
    """Index of the ``M  END`` line of a V2000 record, or the first problem."""
    counts = lines[3]
    n_atoms, n_bonds = _int(counts[0:3]), _int(counts[3:6])
    if n_atoms is None or n_bonds is None or n_atoms < 0 or n_bonds < 0:
        return "bad_counts_line", (
            f"line {first + 3}: the counts line must hold the atom and bond counts in "
            f"columns 1-3 and 4-6, got {counts[:40]!r}"
        )
    atoms_end = 4 + n_atoms
    if len(lines) < atoms_end + n_bonds + 1:
        return "truncated_molblock", (
            f"line {first + 3}: the counts line announces {n_atoms} atoms and {n_bonds} "
            f"bonds, the record ends at line {first + len(lines) - 1}"
        )
    for i in range(4, atoms_end):
        if (problem := _v2000_atom(lines[i])) is not None:
            return "malformed_atom_line", f"line {first + i}: {problem}"
    for i in range(atoms_end, atoms_end + n_bonds):
        if (problem := _v2000_bond(lines[i], n_atoms)) is not None:
            return "malformed_bond_line", f"line {first + i}: {problem}"
    i = atoms_end + n_bonds
    while i < len(lines) and not lines[i].startswith("$$$$"):
        line = lines[i]
        if line.rstrip() == "M  END":
            return i
        if line.startswith(_TWO_LINE_PREFIXES) or line.startswith(_PROPERTY_PREFIXES):
            i += 2 if line.startswith(_TWO_LINE_PREFIXES) else 1
            continue
        return "malformed_molblock", (
            f"line {first + i}: expected a property line ('M  ...') or 'M  END' after the bond block, got {line[:40]!r}"
        )
    return "no_m_end", f"line {first + i}: the molblock has no 'M  END' line"


# ------------------------------------------------------------------------------------------ V3000
def _v30_lines(lines: list[str], first: int) -> tuple[list[tuple[int, str]], int] | Problem:
    """(file line, text) of each logical ``M  V30`` line (continuations joined) and the ``M  END`` index."""
    out: list[tuple[int, str]] = []
    i, start, text = 4, None, ""
    while i < len(lines) and not lines[i].startswith("$$$$"):
        line = lines[i]
        if line.rstrip() == "M  END" and start is None:
            return out, i
        if not line.startswith("M  V30 "):
            return "malformed_molblock", f"line {first + i}: expected 'M  V30 ...' or 'M  END', got {line[:40]!r}"
        start = first + i if start is None else start
        text += line[7:].rstrip()
        if text.endswith("-"):  # continued on the next line
            text = text[:-1]
        else:
            out.append((start, text))
            start, text = None, ""
        i += 1
    return "no_m_end", f"line {first + i}: the molblock has no 'M  END' line"


def _block(v30: list[tuple[int, str]], name: str, count: int, first: int) -> list[tuple[int, list[str]]] | Problem:
    """The ``count`` entries between ``BEGIN name`` and ``END name`` (tokens), or a problem."""
    texts = [t.split() for _, t in v30]
    begin = next((k for k, t in enumerate(texts) if t[:2] == ["BEGIN", name]), None)
    if begin is None:
        return ("malformed_molblock", f"line {first + 3}: V3000 CTAB without a BEGIN {name} block") if count else []
    entries = v30[begin + 1 : begin + 1 + count]
    end = begin + 1 + count
    if len(entries) < count or end >= len(texts) or texts[end][:2] != ["END", name]:
        return "malformed_molblock", (
            f"line {v30[begin][0]}: the {name} block does not hold exactly the {count} "
            "entries the COUNTS line announces"
        )
    return [(line, text.split()) for line, text in entries]


def _v3000(lines: list[str], first: int) -> int | Problem:
    """Index of the ``M  END`` line of a V3000 record, or the first problem."""
    found = _v30_lines(lines, first)
    if isinstance(found[0], str):
        return found
    v30, end = found
    counts = next(((line, t.split()) for line, t in v30 if t.startswith("COUNTS")), None)
    if counts is None or len(counts[1]) < 3 or _int(counts[1][1]) is None or _int(counts[1][2]) is None:
        return "bad_counts_line", f"line {first + 3}: V3000 CTAB without a 'COUNTS atoms bonds' line"
    n_atoms, n_bonds = int(counts[1][1]), int(counts[1][2])
    atoms = _block(v30, "ATOM", n_atoms, first)
    bonds = _block(v30, "BOND", n_bonds, first)
    for found in (atoms, bonds):
        if isinstance(found, tuple):
            return found
    ids = set()
    for line, tok in atoms:
        if len(tok) < 6 or _int(tok[0]) is None or not all(_V3000_FLOAT.fullmatch(t) for t in tok[2:5]):
            return "malformed_atom_line", (
                f"line {line}: expected 'index type x y z aamap', got {' '.join(tok)[:80]!r}"
            )
        ids.add(int(tok[0]))
    for line, tok in bonds:
        ints = [_int(t) for t in tok[:4]]
        if len(tok) < 4 or None in ints:
            return "malformed_bond_line", f"line {line}: expected 'index type atom1 atom2', got {' '.join(tok)[:80]!r}"
        if ints[1] not in _V3000_BOND_TYPES or ints[2] not in ids or ints[3] not in ids or ints[2] == ints[3]:
            return "malformed_bond_line", (
                f"line {line}: bond type {ints[1]} between atoms {ints[2]} and {ints[3]} "
                "(types 1-10 between two distinct atoms of the molecule)"
            )
    return end


# ------------------------------------------------------------------------------------- data items
def _data_items(lines: list[str], start: int, first: int) -> Problem | None:
    """Only SD data items (``> <name>``, value lines, a blank line) may follow ``M  END``."""
    in_item = False
    for i in range(start, len(lines)):
        line = lines[i]
        if line.startswith("$$$$"):
            return None
        if in_item:
            in_item = bool(line.strip())
            if line.rstrip() == "M  END":
                return "missing_terminator", (
                    f"line {first + i}: a second molblock inside a data item: two "
                    "molblocks without '$$$$' between them?"
                )
            continue
        if line.startswith(">"):
            in_item = True
        elif line.strip():
            return "missing_terminator", (
                f"line {first + i}: {line[:40]!r} after 'M  END' is not an SD data item "
                "('> <name>'): two molblocks without '$$$$' between them?"
            )
    return None


def molblock_problem(lines: list[str], first: int) -> Problem | None:
    """The first layout problem of one SD record (lines without line ends; ``first`` = its first line)."""
    if len(lines) < 4:
        return "truncated_molblock", (
            f"line {first}: the record has {len(lines)} lines; a molfile needs a 3-line header and a counts line"
        )
    counts = lines[3]
    version = counts[33:39].strip()
    if version not in ("V2000", "V3000", ""):
        return "bad_counts_line", f"line {first + 3}: molfile version {version!r}, expected V2000 or V3000"
    end = _v3000(lines, first) if version == "V3000" else _v2000(lines, first)
    return end if isinstance(end, tuple) else _data_items(lines, end + 1, first)


# ------------------------------------------------------------------------------------------ RDKit
def _rdkit_reason(messages: str) -> str:
    reasons = [
        _TIMESTAMP.sub("", m.split("ERROR:", 1)[-1]).strip()
        for m in messages.splitlines()
        if m.strip() and "moving to the beginning of the next molecule" not in m
    ]
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


def _raw_props(mol) -> dict:
    """SD properties as RDKit converts them (numbers as numbers); flags elign's export reads as text."""
    props = mol.GetPropsAsDict(includePrivate=False, includeComputed=False)
    for key in ("status", "reason", "nonfinite_positions"):  # "nan" must stay the text "nan"
        if mol.HasProp(key):
            props[key] = mol.GetProp(key)
    return props


def _rdkit_record(block: bytes, line: int, record: int) -> MoleculeRecord | Problem:
    """One checked SD record through RDKit: a record (positions in Å, float64) or a problem."""
    from rdkit import Chem, rdBase

    with rdBase.CaptureErrorLog() as capture:
        mols = list(Chem.ForwardSDMolSupplier(io.BytesIO(block), removeHs=False, sanitize=False))
    mol = mols[0] if mols else None
    where = f"line {line}"
    if mol is None:
        return "unparseable_sdf", f"{where}: RDKit could not parse the record: {_rdkit_reason(capture.messages)}"
    header = block.split(b"\n", 2)[1] if block.count(b"\n") >= 2 else b""
    if mol.GetNumAtoms() == 0 or mol.GetNumConformers() == 0:
        return "no_atoms", f"{where}: the record has no atoms or no coordinates"
    if not mol.GetConformer().Is3D() and header[20:22] == b"2D":
        return "not_3d", f"{where}: the record has 2D coordinates; 3D are needed"
    positions = mol.GetConformer().GetPositions()
    if len(positions) >= FLAT_MIN_ATOMS and not positions[:, 2].any():
        return "not_3d", (
            f"{where}: every z coordinate of the {len(positions)} atoms is 0: a flat 2D drawing, not a 3D "
            "conformer (the header does not say 2D); 3D coordinates are needed"
        )
    z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=np.int64)
    if (z < 1).any():
        i = int(np.flatnonzero(z < 1)[0])
        return "unknown_element", (
            f"line {line + 3 + i + 1}: atom {i + 1} is {mol.GetAtomWithIdx(i).GetSymbol()!r}, not a chemical element"
        )
    props = {prop_name(k): v for k, v in _raw_props(mol).items()}
    props["name"] = mol.GetProp("_Name") if mol.HasProp("_Name") else None
    return MoleculeRecord(record - 1, z, positions, _sdf_smiles(mol), props)


def read_sdf(path: Path, errors: ErrorPolicy, limits: GeometryLimits = GeometryLimits()) -> list[MoleculeRecord]:
    """The molecules of an SD file; a record that is not a molecule goes to ``errors`` with its line."""
    out = []
    for record, line, block in sdf_blocks(path):
        lines = _decode(block, line)
        rec = lines if isinstance(lines, tuple) else _rdkit_record(block, line, record)
        if isinstance(rec, MoleculeRecord):  # RDKit read it; is it what the lines say? (module doc)
            rec = molblock_problem(lines, line) or rec
        if isinstance(rec, MoleculeRecord):
            found = record_problem(rec.atomic_numbers, rec.positions_ang, rec.props, limits)
            problem = None if found is None else (found[0], f"line {line}: {found[1]}")
        else:
            problem = rec
        if problem is not None:
            errors.bad_record(path, record, *problem)
            continue
        rec.props["record"] = record
        out.append(rec)
    return out
