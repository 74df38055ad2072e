"""RDKit validity, uniqueness and novelty of 3D molecules, with bonds from EDM's distance rule.

As in EDM (Hoogeboom et al. 2022; code github.com/ehoogeboom/e3_diffusion_for_molecules,
``qm9/rdkit_functions.py``: ``build_molecule``, ``mol2smiles``, ``BasicMolecularMetrics``):

* a molecule is built from its atoms and the bonds of :func:`elign.metrics.stability.infer_bonds` (orders
  1..3; all single with ``single_bonds_only``, EDM's GEOM ``limit_bonds_to_one``); atoms keep RDKit's
  implicit hydrogens, so under-bonded atoms are filled up while over-bonded ones fail;
* it is *valid* when ``Chem.SanitizeMol`` succeeds; its SMILES is that of the largest fragment (by atom
  count; the first on ties), hydrogens written as the explicit atoms they are (``[H]C([H])([H])[H]``);
  a disconnected molecule is valid (its fragment count is reported);
* uniqueness = distinct SMILES / valid molecules; novelty = unique SMILES whose molecule is not in the
  training set / unique SMILES.

Novelty compares a *key*: the canonical SMILES of the largest fragment without explicit hydrogens and
without stereochemistry, so that training SMILES written as text (QM9's GDB SMILES) compare through RDKit
(:func:`canonical_key`). EDM instead rebuilt its training SMILES from the training geometries: pass
``evaluate_chemistry(train_table).keys`` as the training set to do the same.

Differences from EDM: a molecule without atoms is invalid ("empty") rather than valid with SMILES "".
RDKit's log is silenced; failures are counted by ``invalid_reason``: "valence" (an atom bonded beyond its
permitted valence), "kekulize", "sanitize" (other sanitization errors), "empty".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from rdkit import Chem, rdBase
from rdkit.Chem import rdmolops
from rdkit.Geometry import Point3D

from elign.io.table import MoleculeTable
from elign.metrics.stability import Bonds, infer_bonds

BOND_TYPES = {1: Chem.BondType.SINGLE, 2: Chem.BondType.DOUBLE, 3: Chem.BondType.TRIPLE}


@contextmanager
def quiet_rdkit():
    """Silence RDKit's C++ log (sanitization messages) within the block."""
    with rdBase.BlockLogs():
        yield


def build_molecule(
    atomic_numbers: np.ndarray,
    bond_atoms: np.ndarray,
    bond_orders: np.ndarray,
    positions_ang: np.ndarray | None = None,
    single_bonds_only: bool = False,
) -> Chem.RWMol:
    """An unsanitized RDKit molecule (EDM's ``build_molecule``).

    atomic_numbers: (N,) int; bond_atoms: (B, 2) int atom indices; bond_orders: (B,) int 1..3;
    positions_ang: (N, 3) Å, attached as a conformer when given.
    """
    mol = Chem.RWMol()
    for z in np.asarray(atomic_numbers).tolist():
        mol.AddAtom(Chem.Atom(int(z)))
    for (i, j), order in zip(np.asarray(bond_atoms).reshape(-1, 2).tolist(), np.asarray(bond_orders).tolist()):
        mol.AddBond(int(i), int(j), BOND_TYPES[1 if single_bonds_only else int(order)])
    if positions_ang is not None:
        pos = np.asarray(positions_ang, dtype=np.float64).reshape(-1, 3)
        conf = Chem.Conformer(len(pos))
        for k, (x, y, z) in enumerate(pos.tolist()):
            conf.SetAtomPosition(k, Point3D(x, y, z))
        conf.Set3D(True)
        mol.AddConformer(conf, assignId=True)
    return mol


def sanitize_reason(mol: Chem.Mol) -> str | None:
    """Sanitize ``mol`` in place; None on success, else the failure class ("valence", "kekulize", "sanitize")."""
    try:
        with quiet_rdkit():
            Chem.SanitizeMol(mol)
    except Chem.AtomValenceException:
        return "valence"
    except (Chem.KekulizeException, Chem.AtomKekulizeException):
        return "kekulize"
    except ValueError:  # Chem.MolSanitizeException and anything else RDKit raises as ValueError
        return "sanitize"
    return None


def _largest_fragment(mol: Chem.Mol) -> tuple[Chem.Mol, int]:
    """(largest fragment by atom count, first on ties; number of fragments)."""
    frags = rdmolops.GetMolFrags(mol, asMols=True, sanitizeFrags=False)
    return max(frags, default=mol, key=lambda m: m.GetNumAtoms()), len(frags)


def _key(mol: Chem.Mol) -> str:
    """Canonical SMILES without explicit hydrogens or stereochemistry (the novelty key) of a sanitized mol."""
    try:
        heavy = Chem.RemoveHs(mol)
    except ValueError:
        heavy = Chem.Mol(mol)
    Chem.RemoveStereochemistry(heavy)
    return Chem.MolToSmiles(heavy, isomericSmiles=False)


def molecule_smiles(mol: Chem.RWMol) -> tuple[str | None, str | None, int, str | None]:
    """(SMILES of the largest fragment, its novelty key, number of fragments, invalid reason) of ``mol``.

    Sanitizes ``mol`` in place (EDM's ``mol2smiles`` + largest ``GetMolFrags`` fragment). SMILES and key are
    None when the molecule is invalid.
    """
    if mol.GetNumAtoms() == 0:
        return None, None, 0, "empty"
    reason = sanitize_reason(mol)
    if reason is not None:
        return None, None, len(rdmolops.GetMolFrags(mol)), reason
    largest, n_frags = _largest_fragment(mol)
    reason = sanitize_reason(largest)
    if reason is not None:
        return None, None, n_frags, reason
    return Chem.MolToSmiles(largest), _key(largest), n_frags, None


def canonical_key(smiles: str) -> str | None:
    """Novelty key of a SMILES string (largest fragment, no explicit H, no stereo); None if RDKit rejects it."""
    with quiet_rdkit():
        mol = Chem.MolFromSmiles(smiles)
        if mol is None:
            return None
        largest, _ = _largest_fragment(mol)
        return _key(largest) if sanitize_reason(largest) is None else None


def training_keys(smiles: Iterable[str]) -> set[str]:
    """Novelty keys of training SMILES (e.g. QM9's GDB SMILES column); strings RDKit rejects are skipped."""
    keys = (canonical_key(s) for s in smiles if isinstance(s, str) and s)
    return {k for k in keys if k is not None}


@dataclass
class ChemistryResult:
    """RDKit checks of M molecules.

    valid: (M,) bool; smiles, keys: (M,) object (str, or None when invalid); num_fragments: (M,) int64;
    invalid_reason: (M,) object (None when valid); novel: (M,) bool (key not among the training keys;
    false when invalid), or None without a training set.
    """

    valid: np.ndarray
    smiles: np.ndarray
    keys: np.ndarray
    num_fragments: np.ndarray
    invalid_reason: np.ndarray
    novel: np.ndarray | None = None

    def summary(self) -> dict:
        """Validity, uniqueness (of valid), valid & unique (of all), novelty (of unique), failure counts."""
        m, n_valid = len(self.valid), int(self.valid.sum())
        first = {}
        for k, s in enumerate(self.smiles):
            if s is not None:
                first.setdefault(s, k)
        n_unique = len(first)
        out = {
            "num_molecules": m,
            "num_valid": n_valid,
            "num_unique": n_unique,
            "validity": n_valid / m if m else float("nan"),
            "uniqueness": n_unique / n_valid if n_valid else float("nan"),
            "valid_and_unique": n_unique / m if m else float("nan"),
            "connected": float(np.mean(self.num_fragments[self.valid] == 1)) if n_valid else float("nan"),
            "invalid_reasons": dict(Counter(r for r in self.invalid_reason if r is not None)),
            "novelty": None,
            "num_novel": None,
        }
        if self.novel is not None:
            n_novel = int(sum(self.novel[k] for k in first.values()))
            out["num_novel"] = n_novel
            out["novelty"] = n_novel / n_unique if n_unique else float("nan")
        return out


def evaluate_chemistry(
    table: MoleculeTable,
    bonds: Bonds | None = None,
    training_smiles: Iterable[str] | set[str] | None = None,
    single_bonds_only: bool = False,
) -> ChemistryResult:
    """Validity, SMILES and novelty of every molecule of ``table``.

    bonds: :func:`infer_bonds` of ``table`` (e.g. ``check_stability(table).bonds``), or None to infer them;
    training_smiles: SMILES strings of the training set (canonicalized with :func:`training_keys`), or a
    ``set`` already made of novelty keys; single_bonds_only: EDM's GEOM variant (all bonds single).
    """
    bonds = infer_bonds(table) if bonds is None else bonds
    m = len(table)
    smiles, keys = np.full(m, None, dtype=object), np.full(m, None, dtype=object)
    reasons, n_frags = np.full(m, None, dtype=object), np.zeros(m, dtype=np.int64)
    offsets, z = table.offsets, table.atomic_numbers
    with quiet_rdkit():
        for k in range(m):
            pairs, orders = bonds.of(k)
            mol = build_molecule(z[offsets[k] : offsets[k + 1]], pairs, orders, single_bonds_only=single_bonds_only)
            smiles[k], keys[k], n_frags[k], reasons[k] = molecule_smiles(mol)
    valid = np.array([s is not None for s in smiles], dtype=bool)
    novel = None
    if training_smiles is not None:
        known = training_smiles if isinstance(training_smiles, set) else training_keys(training_smiles)
        novel = np.array([k is not None and k not in known for k in keys], dtype=bool)
    return ChemistryResult(valid, smiles, keys, n_frags, reasons, novel)


def to_rdkit_mol(
    atomic_numbers: np.ndarray,
    positions_ang: np.ndarray,
    bond_atoms: np.ndarray | None = None,
    bond_orders: np.ndarray | None = None,
    name: str | None = None,
) -> Chem.Mol:
    """A 3D RDKit molecule for SDF export: atoms and positions exactly as given, bonds by EDM's rule.

    atomic_numbers: (N,) int; positions_ang: (N, 3) Å; bond_atoms (B, 2) / bond_orders (B,): the bonds, or
    None to infer them from the distances (:func:`infer_bonds`). No implicit hydrogens are added: an
    under-bonded atom stays so (a radical after sanitization). Sanitization is attempted; when it fails the
    molecule is returned unsanitized (its property cache updated leniently) and its ``invalid_reason``
    property says why.
    """
    z = np.asarray(atomic_numbers).reshape(-1)
    pos = np.asarray(positions_ang, dtype=np.float64).reshape(-1, 3)
    if bond_atoms is None or bond_orders is None:
        one = MoleculeTable([0], [len(z)], z, pos, [None])
        bond_atoms, bond_orders = infer_bonds(one).of(0)
    mol = build_molecule(z, bond_atoms, bond_orders, positions_ang=pos)
    for atom in mol.GetAtoms():
        atom.SetNoImplicit(True)
    with quiet_rdkit():
        reason = sanitize_reason(mol)
        if reason is not None:
            mol.UpdatePropertyCache(strict=False)
            mol.SetProp("invalid_reason", reason)
    if name is not None:
        mol.SetProp("_Name", name)
    return mol.GetMol()


def table_rdkit_mols(table: MoleculeTable, bonds: Bonds | None = None) -> list[Chem.Mol]:
    """:func:`to_rdkit_mol` of every molecule of ``table``, named by its ``mol_id``."""
    bonds = infer_bonds(table) if bonds is None else bonds
    o = table.offsets
    return [
        to_rdkit_mol(
            table.atomic_numbers[o[k] : o[k + 1]],
            table.positions_ang[o[k] : o[k + 1]],
            *bonds.of(k),
            name=str(int(table.mol_id[k])),
        )
        for k in range(len(table))
    ]
