"""Export sampled molecules to multi-frame ``.xyz`` and ``.sdf`` for viewers and other tools (atomic writes).

* XYZ: per molecule ``n``, a comment line ``mol_id=<id> status=<status> [reason="..."]``, then
  ``<symbol> x y z`` in Å. Coordinates are written as the shortest decimal that reads back to the same
  float32, so the file holds the positions exactly as sampled (NaN written as ``nan``).
* SDF: RDKit molecules with bonds perceived from the distances by EDM's rule
  (:func:`elign.metrics.chemistry.table_rdkit_mols`: orders 1..3, no implicit hydrogens added); atom types
  and positions as sampled, to the precision of the molfile (V2000: 4 decimals, i.e. ±5e-5 Å; V3000,
  used by RDKit for coordinates too large for V2000 or on request: 6 decimals). A molecule RDKit cannot
  sanitize is written unsanitized with its ``invalid_reason``; every record carries SD properties
  ``mol_id``, ``status`` and ``reason`` (from the table's columns, when present). Record k is molecule k:
  a molecule with non-finite positions (status "nan") has no bonds and its coordinates written as 0 (a
  molfile cannot hold NaN), flagged by the SD property ``nonfinite_positions`` = 1. Read back through the
  ``files`` data source, such a record (and any with a failed ``status``) is a bad record, never a
  molecule (:mod:`elign.data.checks`).

Input: a :class:`MoleculeTable` (e.g. ``SampleResult.table`` of :mod:`elign.diffusion.sampler`).
"""

from __future__ import annotations

import os

import numpy as np

from elign.elements import symbol
from elign.io.atomic import atomic_path
from elign.io.table import MoleculeTable

__all__ = ["write_xyz", "write_sdf", "xyz_text", "sdf_text"]


def _column(table: MoleculeTable, name: str, i: int) -> str:
    col = table.columns.get(name)
    if col is None or col[i] is None:
        return ""
    return str(col[i]).replace("\n", " ").replace('"', "'")


def _coord(v: np.float32) -> str:
    return np.format_float_positional(v, unique=True, trim="-") if np.isfinite(v) else str(v)


def xyz_text(table: MoleculeTable) -> str:
    """Multi-frame XYZ text of all molecules of ``table`` (positions as stored, float32-exact)."""
    out: list[str] = []
    offsets = table.offsets
    pos = np.asarray(table.positions_ang, dtype=np.float32)
    for i in range(len(table)):
        a, b = offsets[i], offsets[i + 1]
        comment = f"mol_id={int(table.mol_id[i])}"
        status, reason = _column(table, "status", i), _column(table, "reason", i)
        if status:
            comment += f" status={status}"
        if reason:
            comment += f' reason="{reason}"'
        out.append(f"{b - a}\n{comment}\n")
        for z, (x, y, w) in zip(table.atomic_numbers[a:b].tolist(), pos[a:b]):
            out.append(f"{symbol(z)} {_coord(x)} {_coord(y)} {_coord(w)}\n")
    return "".join(out)


def write_xyz(path: str | os.PathLike, table: MoleculeTable) -> None:
    """Write :func:`xyz_text` of ``table`` to ``path`` atomically."""
    text = xyz_text(table)
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _molblock(mol, v3000: bool) -> str:
    from rdkit import Chem

    try:
        return Chem.MolToMolBlock(mol, kekulize=True, forceV3000=v3000)
    except (ValueError, RuntimeError):  # an unsanitizable molecule that cannot be kekulized: write as is
        return Chem.MolToMolBlock(mol, kekulize=False, forceV3000=v3000)


def sdf_text(table: MoleculeTable, v3000: bool = False) -> str:
    """SD file text of all molecules of ``table`` (one record each, in table order)."""
    from elign.metrics.chemistry import quiet_rdkit, table_rdkit_mols
    from elign.metrics.stability import infer_bonds

    pos = np.asarray(table.positions_ang, dtype=np.float32)
    finite_atom = np.isfinite(pos).all(axis=1)
    bad_mol = np.zeros(len(table), dtype=bool)
    np.logical_or.at(bad_mol, table.atom_molecule_index(), ~finite_atom)
    records: list[str] = []
    with quiet_rdkit():
        bonds = infer_bonds(table)  # NaN distances give no bonds
        writable = MoleculeTable(
            table.mol_id,
            table.num_atoms,
            table.atomic_numbers,
            np.where(finite_atom[:, None], pos, np.float32(0)),
            table.smiles,
        )
        mols = table_rdkit_mols(writable, bonds)
        for i, mol in enumerate(mols):
            props = {"mol_id": str(int(table.mol_id[i]))}
            for name in ("status", "reason"):
                if name in table.columns:
                    props[name] = _column(table, name, i)
            if bad_mol[i]:
                props["nonfinite_positions"] = "1"
            if mol.HasProp("invalid_reason"):
                props["invalid_reason"] = mol.GetProp("invalid_reason")
            block = _molblock(mol, v3000)
            block = block if block.endswith("\n") else block + "\n"
            fields = "".join(f">  <{k}>\n{v}\n\n" for k, v in props.items())
            records.append(f"{block}{fields}$$$$\n")
    return "".join(records)


def write_sdf(path: str | os.PathLike, table: MoleculeTable, v3000: bool = False) -> None:
    """Write :func:`sdf_text` of ``table`` to ``path`` atomically."""
    text = sdf_text(table, v3000)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
