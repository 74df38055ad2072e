"""A columnar table of molecules: the in-memory form of the data artifacts.

Atoms of all molecules are stored contiguously: molecule ``i`` owns atoms
``offsets[i]:offsets[i+1]``. This keeps parsing, filtering and Parquet I/O vectorized.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class MoleculeRecord:
    """One molecule as a parser produces it.

    atomic_numbers: (N,) int; positions_ang: (N, 3) float, Å; props: scalar (float/int) or
    per-atom/list properties, keyed by column name with units in the name.
    """

    mol_id: int
    atomic_numbers: np.ndarray
    positions_ang: np.ndarray
    smiles: str | None = None
    props: dict = field(default_factory=dict)


@dataclass
class MoleculeTable:
    """Columns of M molecules with A atoms in total.

    mol_id: (M,) int64; num_atoms: (M,) int32; atomic_numbers: (A,) int8; positions_ang: (A, 3) float32;
    smiles: (M,) object (str or None); columns: extra per-molecule columns, each a length-M numpy array
    (scalars) or an object array of lists/arrays (e.g. per-atom charges).
    """

    mol_id: np.ndarray
    num_atoms: np.ndarray
    atomic_numbers: np.ndarray
    positions_ang: np.ndarray
    smiles: np.ndarray
    columns: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.mol_id = _narrow_int(self.mol_id, np.int64, "mol_id")
        self.num_atoms = _narrow_int(self.num_atoms, np.int32, "num_atoms")
        self.atomic_numbers = _narrow_int(self.atomic_numbers, np.int8, "atomic_numbers")
        self.positions_ang = _narrow_float32(self.positions_ang).reshape(-1, 3)
        self.smiles = np.asarray(self.smiles, dtype=object)
        m = len(self.mol_id)
        if len(self.num_atoms) != m or len(self.smiles) != m:
            raise ValueError("mol_id, num_atoms and smiles must have one entry per molecule")
        if int(self.num_atoms.sum()) != len(self.atomic_numbers) or len(self.atomic_numbers) != len(self.positions_ang):
            raise ValueError("atom arrays do not match num_atoms")
        for name, col in self.columns.items():
            if len(col) != m:
                raise ValueError(f"column {name!r} has {len(col)} entries for {m} molecules")

    def __len__(self) -> int:
        return len(self.mol_id)

    @property
    def offsets(self) -> np.ndarray:
        """(M+1,) int64 start offsets of each molecule's atoms."""
        out = np.zeros(len(self) + 1, dtype=np.int64)
        np.cumsum(self.num_atoms, out=out[1:])
        return out

    def atom_molecule_index(self) -> np.ndarray:
        """(A,) index of the molecule each atom belongs to."""
        return np.repeat(np.arange(len(self)), self.num_atoms)

    def molecule(self, i: int) -> MoleculeRecord:
        o = self.offsets
        sl = slice(o[i], o[i + 1])
        props = {k: v[i] for k, v in self.columns.items()}
        return MoleculeRecord(
            int(self.mol_id[i]), self.atomic_numbers[sl].copy(), self.positions_ang[sl].copy(), self.smiles[i], props
        )

    def take(self, index: np.ndarray) -> MoleculeTable:
        """Sub-table of the molecules at ``index`` (integer positions or boolean mask), in that order."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        atom_mask_idx = _atom_indices(self.offsets, index)
        return MoleculeTable(
            self.mol_id[index],
            self.num_atoms[index],
            self.atomic_numbers[atom_mask_idx],
            self.positions_ang[atom_mask_idx],
            self.smiles[index],
            {k: v[index] for k, v in self.columns.items()},
        )

    @classmethod
    def from_records(cls, records: list[MoleculeRecord]) -> MoleculeTable:
        """Build a table from parser records; property keys missing in a record become NaN/None."""
        keys: list[str] = []
        for r in records:
            keys.extend(k for k in r.props if k not in keys)
        columns = {k: _column([r.props.get(k) for r in records]) for k in keys}
        nums = [len(r.atomic_numbers) for r in records]
        z = np.concatenate([np.asarray(r.atomic_numbers) for r in records]) if records else np.zeros(0)
        pos = (
            np.concatenate([np.asarray(r.positions_ang, dtype=np.float64).reshape(-1, 3) for r in records])
            if records
            else np.zeros((0, 3))
        )
        return cls(
            np.array([r.mol_id for r in records], dtype=np.int64),
            np.array(nums),
            z,
            pos,
            np.array([r.smiles for r in records], dtype=object),
            columns,
        )

    @classmethod
    def concat(cls, tables: list[MoleculeTable]) -> MoleculeTable:
        keys = list(tables[0].columns) if tables else []
        return cls(
            np.concatenate([t.mol_id for t in tables]),
            np.concatenate([t.num_atoms for t in tables]),
            np.concatenate([t.atomic_numbers for t in tables]),
            np.concatenate([t.positions_ang for t in tables]),
            np.concatenate([t.smiles for t in tables]),
            {k: np.concatenate([t.columns[k] for t in tables]) for k in keys},
        )


def _narrow_int(values, dtype, name: str) -> np.ndarray:
    """``values`` as ``dtype``; ValueError instead of a silent wrap (300 -> 44 in int8) or truncation (6.5 -> 6).

    Readers check their input first and say which file and record is wrong; this is the last guard.
    """
    a = np.asarray(values)
    if a.dtype == dtype or a.size == 0:
        return a.astype(dtype, copy=False)
    if a.dtype == object:  # e.g. a pandas column of Python ints
        a = np.asarray(a.tolist())
    if a.dtype.kind not in "iuf":
        raise ValueError(f"{name}: expected integers, got {a.dtype}")
    if a.dtype.kind == "f" and not (np.isfinite(a).all() and (a == np.round(a)).all()):
        raise ValueError(
            f"{name}: expected integers, got non-integral values such as "
            f"{a[~(np.isfinite(a) & (a == np.round(a)))][0]!r}"
        )
    info = np.iinfo(dtype)
    if a.min() < info.min or a.max() > info.max:
        bad = a[(a < info.min) | (a > info.max)][0]
        raise ValueError(f"{name}: {bad!r} does not fit {np.dtype(dtype).name} ({info.min}..{info.max})")
    return a.astype(dtype)


def _narrow_float32(values) -> np.ndarray:
    """``values`` as float32; ValueError for a finite value that float32 would turn into inf (NaN/inf stay)."""
    a = np.asarray(values)
    if a.dtype == np.float32 or a.size == 0:
        return a.astype(np.float32, copy=False)
    if a.dtype.kind not in "iuf":
        raise ValueError(f"positions_ang: expected numbers, got {a.dtype}")
    if a.dtype.kind == "f" and a.dtype.itemsize > 4:
        with np.errstate(invalid="ignore"):
            big = np.isfinite(a) & (np.abs(a) > np.finfo(np.float32).max)
        if big.any():
            raise ValueError(f"positions_ang: {a[big][0]!r} does not fit float32")
    return a.astype(np.float32)


def _atom_indices(offsets: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Concatenated atom positions of the molecules in ``index`` (vectorized ranges)."""
    starts, stops = offsets[index], offsets[index + 1]
    lengths = stops - starts
    if lengths.sum() == 0:
        return np.zeros(0, dtype=np.int64)
    base = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return base + np.arange(lengths.sum())


def _column(values: list) -> np.ndarray:
    """A numpy column: float64 for numeric scalars (None → NaN), object otherwise."""
    if all(v is None or (np.isscalar(v) and isinstance(v, (int, float, np.number))) for v in values):
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out
