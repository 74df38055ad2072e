"""Multi-frame XYZ and extended XYZ, read strictly: a frame is what its count line says, or an error.

A frame is a count line (one ASCII integer), a comment line and ``El x y z`` lines (element symbol or
atomic number, then three numbers, Å). A comment made of ``key=value`` pairs (or holding ``Properties=``)
is extended XYZ: species and pos from ``Properties=species:S:1:pos:R:3:...`` (other per-atom columns are
ignored), numeric values become float columns, others string columns; any other comment is kept in a
``comment`` column. No ASE needed.

Strict where a lenient reader would guess: the file is UTF-8 (a leading byte-order mark is allowed);
counts, atomic numbers and coordinates are ASCII numbers (Python's ``int``/``float`` would also take
superscripts, Arabic-Indic digits and ``1_0``); a count larger than :data:`~elign.data.checks.MAX_ATOMS` is
refused before it is converted; a frame whose count is too small (an atom line follows its last atom) or
too large (the next count line comes first) is a bad record of that frame, not of the next one. After a
bad count line, reading resumes at the next count line.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from elign.data.checks import MAX_ATOMS, MAX_Z
from elign.elements import atomic_number

_INT = re.compile(r"[0-9]+", re.ASCII)
_FLOAT = re.compile(
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|nan|inf|infinity)", re.ASCII | re.IGNORECASE
)
_BOM = b"\xef\xbb\xbf"
Problem = tuple[str, str]


def strict_float(text: str) -> float | None:
    """``text`` as a float if it is an ASCII decimal number (or nan/inf), else None."""
    return float(text) if _FLOAT.fullmatch(text) else None


def strict_count(text: str) -> int | None:
    """A non-negative ASCII integer, or None; never converts more digits than an atom count can have."""
    if not _INT.fullmatch(text):
        return None
    return int(text) if len(text) <= len(str(MAX_ATOMS)) else MAX_ATOMS + 1


def _lines(path: Path) -> Iterator[tuple[int, str, Problem | None]]:
    """(line number, text, encoding problem) of each line; a UTF-8 BOM at the start is dropped."""
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if lineno == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM) :]
            try:
                yield lineno, raw.decode("utf-8"), None
            except UnicodeDecodeError as exc:
                yield (
                    lineno,
                    raw.decode("utf-8", errors="replace"),
                    (
                        "bad_encoding",
                        f"line {lineno}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})",
                    ),
                )


class _Peekable:
    def __init__(self, it: Iterator):
        self._it, self._back = it, []

    def next(self):
        return self._back.pop() if self._back else next(self._it, None)

    def push(self, item) -> None:
        self._back.append(item)


@dataclass
class Frame:
    """One XYZ frame: ``atoms`` are ``(line number, text)``; ``problem`` = (kind, message) if unreadable."""

    number: int
    line: int
    comment: str = ""
    atoms: list[tuple[int, str]] = field(default_factory=list)
    problem: Problem | None = None


def _count(line: str) -> int | None:
    tokens = line.split()
    return strict_count(tokens[0]) if len(tokens) == 1 else None


def _looks_like_atom(line: str) -> bool:
    tokens = line.split()
    return len(tokens) >= 4 and sum(strict_float(t) is not None for t in tokens) >= 3


def _read_atoms(lines: _Peekable, count: int, frame: Frame) -> Problem | None:
    """Read ``count`` atom lines into ``frame``; a problem if the file ends or the next frame starts first."""
    for _ in range(count):
        item = lines.next()
        if item is None:
            return "truncated_frame", (
                f"line {frame.line}: truncated frame: {count} atoms announced, the file ends after {len(frame.atoms)}"
            )
        lineno, text, bad = item
        if bad is not None:
            return bad
        if _count(text) is not None:
            lines.push(item)
            return "wrong_count", (
                f"line {frame.line}: the count says {count} atoms but line {lineno} starts the "
                f"next frame after {len(frame.atoms)} atom lines"
            )
        frame.atoms.append((lineno, text))
    return None


def _extra_atom_line(lines: _Peekable) -> int | None:
    """Line number of an atom line right after a complete frame (its count was too small), else None."""
    item = lines.next()
    while item is not None and not item[1].strip():
        item = lines.next()
    if item is not None:
        lines.push(item)
        if item[2] is None and _looks_like_atom(item[1]):
            return item[0]
    return None


def xyz_frames(path: Path) -> Iterator[Frame]:
    """Frames of a multi-frame XYZ file; after a bad frame, reading resumes at the next count line."""
    lines = _Peekable(_lines(path))
    number, resync = 0, False
    while (item := lines.next()) is not None:
        lineno, text, bad = item
        count = _count(text) if bad is None else None
        if not text.strip() or (resync and count is None):
            continue
        number, resync = number + 1, False
        frame = Frame(number, lineno)
        if bad is not None or count is None:
            frame.problem = bad or (
                "bad_count",
                f"line {lineno}: expected the atom count (an integer), got {text.strip()[:80]!r}",
            )
        elif count > MAX_ATOMS:
            frame.problem = (
                "too_many_atoms",
                f"line {lineno}: atom count {text.strip()[:20]!r} exceeds "
                f"{MAX_ATOMS}, the most a molecule can have (num_atoms is int16)",
            )
        else:
            comment = lines.next()
            if comment is None:
                frame.problem = (
                    "truncated_frame",
                    f"line {lineno}: truncated frame: {count} atoms announced, the file ends before the comment line",
                )
            else:
                frame.comment = comment[1]
                frame.problem = comment[2] or _read_atoms(lines, count, frame)
                extra = _extra_atom_line(lines) if frame.problem is None else None
                if extra is not None:
                    frame.problem = (
                        "wrong_count",
                        f"line {lineno}: the count says {count} atoms but line {extra} holds one more atom line",
                    )
        resync = frame.problem is not None
        yield frame


@dataclass
class Columns:
    """Where species and positions are on an atom line, and how many columns it has at least."""

    species: int = 0
    pos: int = 1
    width: int = 4


def _properties(spec: str) -> Columns | str:
    """Columns of species and pos from an extxyz ``Properties`` value, or a problem message."""
    parts = spec.split(":")
    if len(parts) % 3 or not all(_INT.fullmatch(p) and len(p) <= 3 for p in parts[2::3]):
        return f"malformed Properties={spec[:80]!r} (expected name:type:count triples)"
    cols, offset = {}, 0
    for name, kind, n in zip(parts[::3], parts[1::3], parts[2::3]):
        cols[name.lower()] = (offset, kind.upper(), int(n))
        offset += int(n)
    species = cols.get("species") or cols.get("z")
    pos = cols.get("pos") or cols.get("positions")
    if species is None or species[2] != 1 or pos is None or pos[2] != 3:
        return f"Properties={spec[:80]!r} lacks a species (or Z) column of 1 and a pos column of 3"
    return Columns(species[0], pos[0], offset)


def _scalar(text: str) -> float | str:
    value = strict_float(text)
    return text if value is None else value


def parse_comment(comment: str, prop_name=lambda k: k) -> tuple[dict, Columns | str]:
    """Scalar properties and atom-line columns from an XYZ comment line (plain or extended XYZ)."""
    text = comment.strip()
    try:
        pairs = [t.split("=", 1) for t in shlex.split(text)]
    except ValueError:  # unbalanced quotes: not extxyz
        pairs = [[text]]
    keys = [p[0].lower() for p in pairs]
    if not text or not ("properties" in keys or all(len(p) == 2 for p in pairs)):
        return ({"comment": text} if text else {}), Columns()
    values = {p[0]: p[1] for p in pairs if len(p) == 2}
    spec = next((v for k, v in values.items() if k.lower() == "properties"), "species:S:1:pos:R:3")
    props = {prop_name(k): _scalar(v) for k, v in values.items() if k.lower() != "properties"}
    return props, _properties(spec)


def element(token: str) -> int | None:
    """Atomic number of an element symbol or an ASCII atomic number (1..118), else None."""
    if _INT.fullmatch(token):
        return int(token) if len(token) <= 3 and 1 <= int(token) <= MAX_Z else None
    try:
        return atomic_number(token)
    except KeyError:
        return None


def frame_atoms(frame: Frame, cols: Columns) -> tuple[np.ndarray, np.ndarray] | Problem:
    """(atomic numbers (n,) int64, positions (n, 3) float64 Å) of a frame's atom lines, or a problem."""
    z = np.zeros(len(frame.atoms), dtype=np.int64)
    pos = np.zeros((len(frame.atoms), 3))
    for i, (lineno, line) in enumerate(frame.atoms):
        tokens = line.split()
        if len(tokens) < cols.width:
            return "malformed_atom_line", (
                f"line {lineno}: expected {cols.width} columns (element x y z), got {line.strip()[:80]!r}"
            )
        z[i] = element(tokens[cols.species]) or 0
        if z[i] == 0:
            return "unknown_element", f"line {lineno}: unknown element symbol {tokens[cols.species][:20]!r}"
        xyz = [strict_float(t) for t in tokens[cols.pos : cols.pos + 3]]
        if None in xyz:
            return "bad_coordinate", (
                f"line {lineno}: unparseable coordinate in {' '.join(tokens[cols.pos : cols.pos + 3])[:80]!r}"
            )
        pos[i] = xyz
        if not np.isfinite(pos[i]).all():
            return "nan_coordinate", f"line {lineno}: non-finite coordinate {line.strip()[:80]!r}"
    return z, pos
