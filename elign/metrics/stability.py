"""Atom and molecule stability by EDM's bond-order rule, vectorized over a :class:`MoleculeTable`.

The rule (Hoogeboom et al. 2022, "Equivariant Diffusion for Molecule Generation in 3D"; code:
github.com/ehoogeboom/e3_diffusion_for_molecules, ``qm9/bond_analyze.py`` ``get_bond_order`` and
``qm9/analyze.py`` ``check_stability``): every pair of atoms ``i < j`` of a molecule gets a bond order from
its distance ``d`` (Å, compared as ``100 * d`` in pm) and the typical bond lengths of its element pair::

    order = 0 unless 100 d < bonds1 + margin1
    order = 1 unless the pair has a double-bond length and 100 d < bonds2 + margin2
    order = 2 unless the pair has a triple-bond length and 100 d < bonds3 + margin3
    order = 3

(strict ``<`` everywhere; margins 10, 5, 3 pm). An atom's valence is the sum of its bond orders; the atom
is stable when the valence is one of ``allowed_bonds`` for its element (no formal charges: zwitterions
and nitro groups of QM9 are unstable by design); a molecule is stable when all its atoms are.

Differences from EDM's loops, all of which leave QM9 (H, C, N, O, F) unchanged:

* A pair of elements without a single-bond length gets order 0 (EDM's GEOM ``check_exists=True``; its QM9
  path would raise ``KeyError``). An element missing from ``allowed_bonds`` is never stable.
* The tables are looked up with the pair ordered by atomic number, as EDM's GEOM path does (it sorts the
  pair by its atom decoder, which is in atomic-number order). EDM's dictionaries are symmetric except
  ``bonds2['C']['S'] = 160`` without ``bonds2['S']['C']``: C–S therefore can be a double bond here.
* EDM's GEOM variant ``limit_bonds_to_one`` (every bond single) is used only to build RDKit molecules, not
  for stability; see :mod:`elign.metrics.chemistry`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from elign.elements import SYMBOLS, atomic_number
from elign.io.table import MoleculeTable

# ---------------------------------------------------------------------------------------------------------
# EDM's tables, transcribed from qm9/bond_analyze.py (commit d28fd52). Typical bond lengths in pm; EDM cites
#   http://www.wiredchemist.com/chemistry/data/bond_energies_lengths.html
#   http://chemistry-reference.com/tables/Bond%20Lengths%20and%20Enthalpies.pdf
# ---------------------------------------------------------------------------------------------------------
BONDS1: dict[str, dict[str, int]] = {
    "H": {
        "H": 74,
        "C": 109,
        "N": 101,
        "O": 96,
        "F": 92,
        "B": 119,
        "Si": 148,
        "P": 144,
        "As": 152,
        "S": 134,
        "Cl": 127,
        "Br": 141,
        "I": 161,
    },
    "C": {
        "H": 109,
        "C": 154,
        "N": 147,
        "O": 143,
        "F": 135,
        "Si": 185,
        "P": 184,
        "S": 182,
        "Cl": 177,
        "Br": 194,
        "I": 214,
    },
    "N": {"H": 101, "C": 147, "N": 145, "O": 140, "F": 136, "Cl": 175, "Br": 214, "S": 168, "I": 222, "P": 177},
    "O": {
        "H": 96,
        "C": 143,
        "N": 140,
        "O": 148,
        "F": 142,
        "Br": 172,
        "S": 151,
        "P": 163,
        "Si": 163,
        "Cl": 164,
        "I": 194,
    },
    "F": {
        "H": 92,
        "C": 135,
        "N": 136,
        "O": 142,
        "F": 142,
        "S": 158,
        "Si": 160,
        "Cl": 166,
        "Br": 178,
        "P": 156,
        "I": 187,
    },
    "B": {"H": 119, "Cl": 175},
    "Si": {"Si": 233, "H": 148, "C": 185, "O": 163, "S": 200, "F": 160, "Cl": 202, "Br": 215, "I": 243},
    "Cl": {
        "Cl": 199,
        "H": 127,
        "C": 177,
        "N": 175,
        "O": 164,
        "P": 203,
        "S": 207,
        "B": 175,
        "Si": 202,
        "F": 166,
        "Br": 214,
    },
    "S": {
        "H": 134,
        "C": 182,
        "N": 168,
        "O": 151,
        "S": 204,
        "F": 158,
        "Cl": 207,
        "Br": 225,
        "Si": 200,
        "P": 210,
        "I": 234,
    },
    "Br": {"Br": 228, "H": 141, "C": 194, "O": 172, "N": 214, "Si": 215, "S": 225, "F": 178, "Cl": 214, "P": 222},
    "P": {"P": 221, "H": 144, "C": 184, "O": 163, "Cl": 203, "S": 210, "F": 156, "N": 177, "Br": 222},
    "I": {"H": 161, "C": 214, "Si": 243, "N": 222, "O": 194, "S": 234, "F": 187, "I": 266},
    "As": {"H": 152},
}
BONDS2: dict[str, dict[str, int]] = {
    "C": {"C": 134, "N": 129, "O": 120, "S": 160},
    "N": {"C": 129, "N": 125, "O": 121},
    "O": {"C": 120, "N": 121, "O": 121, "P": 150},
    "P": {"O": 150, "S": 186},
    "S": {"P": 186},
}
BONDS3: dict[str, dict[str, int]] = {
    "C": {"C": 120, "N": 116, "O": 113},
    "N": {"C": 116, "N": 110},
    "O": {"C": 113},
}
# EDM: "margin1, margin2 and margin3 have been tuned to maximize the stability of the QM9 true samples."
MARGIN1_PM, MARGIN2_PM, MARGIN3_PM = 10, 5, 3
# Allowed valences (sum of bond orders) per element; a tuple where EDM lists several.
ALLOWED_BONDS: dict[str, int | tuple[int, ...]] = {
    "H": 1,
    "C": 4,
    "N": 3,
    "O": 2,
    "F": 1,
    "B": 3,
    "Al": 3,
    "Si": 4,
    "P": (3, 5),
    "S": 4,
    "Cl": 1,
    "As": 3,
    "Br": 1,
    "I": 1,
    "Hg": (1, 2),
    "Bi": (3, 5),
}

Z_MAX = len(SYMBOLS)  # atomic numbers index the tables directly: rows 0..118 (0 = no element)
_PAIR_CHUNK = 1 << 20  # atom pairs evaluated per numpy pass (bounds memory at ~100 MB)


def _threshold_table(bonds: dict[str, dict[str, int]], margin: int) -> np.ndarray:
    """(Z_MAX+1, Z_MAX+1) float64 thresholds in pm, bond length + margin; -inf where EDM has no length.

    The entry of a pair is read with its elements ordered by atomic number and mirrored.
    """
    table = np.full((Z_MAX + 1, Z_MAX + 1), -np.inf)
    for a, row in bonds.items():
        for b, length in row.items():
            za, zb = atomic_number(a), atomic_number(b)
            if za <= zb:
                table[za, zb] = table[zb, za] = length + margin
    return table


def _allowed_table(allowed: dict[str, int | tuple[int, ...]]) -> np.ndarray:
    """(Z_MAX+1, V+2) bool: ``[z, v]`` true when valence ``v`` is allowed; the last column (v > V) is false."""
    v_max = max(max(np.atleast_1d(v)) for v in allowed.values())
    table = np.zeros((Z_MAX + 1, v_max + 2), dtype=bool)
    for element, valences in allowed.items():
        table[atomic_number(element), list(np.atleast_1d(valences))] = True
    return table


T1_PM = _threshold_table(BONDS1, MARGIN1_PM)
T2_PM = _threshold_table(BONDS2, MARGIN2_PM)
T3_PM = _threshold_table(BONDS3, MARGIN3_PM)
ALLOWED = _allowed_table(ALLOWED_BONDS)


def bond_order(z1: np.ndarray, z2: np.ndarray, distance_ang: np.ndarray) -> np.ndarray:
    """EDM's bond order (0..3, int8) of atom pairs, elementwise with broadcasting.

    z1, z2: atomic numbers (0..118); distance_ang: distances in Å (compared as ``100 * d`` pm, float64).
    """
    z1, z2 = np.asarray(z1, dtype=np.intp), np.asarray(z2, dtype=np.intp)
    d_pm = 100 * np.asarray(distance_ang, dtype=np.float64)
    order = np.where(d_pm < T3_PM[z1, z2], 3, 2)
    order = np.where(d_pm < T2_PM[z1, z2], order, 1)
    return np.where(d_pm < T1_PM[z1, z2], order, 0).astype(np.int8)


@dataclass
class Bonds:
    """Inferred bonds of M molecules, B bonds in total, grouped by molecule.

    offsets: (M+1,) int64, molecule ``m`` owns bonds ``offsets[m]:offsets[m+1]``; atoms: (B, 2) int32 atom
    indices *within* the molecule, ``i < j``, sorted; order: (B,) int8 bond orders 1..3.
    """

    offsets: np.ndarray
    atoms: np.ndarray
    order: np.ndarray

    def of(self, m: int) -> tuple[np.ndarray, np.ndarray]:
        """Bonds of molecule ``m``: (b, 2) atom pairs and (b,) orders."""
        sl = slice(self.offsets[m], self.offsets[m + 1])
        return self.atoms[sl], self.order[sl]


@dataclass
class StabilityResult:
    """Per-molecule and per-atom stability of M molecules with A atoms.

    num_atoms, num_stable_atoms: (M,) int64; molecule_stable: (M,) bool; valence: (A,) int32 (sum of bond
    orders); atom_stable: (A,) bool; bonds: the inferred :class:`Bonds`.
    """

    num_atoms: np.ndarray
    num_stable_atoms: np.ndarray
    molecule_stable: np.ndarray
    valence: np.ndarray
    atom_stable: np.ndarray
    bonds: Bonds

    def summary(self) -> dict[str, float | int]:
        """Atom stability (stable atoms / all atoms) and molecule stability (fraction fully stable)."""
        n_atoms, n_mols = int(self.num_atoms.sum()), len(self.num_atoms)
        return {
            "num_molecules": n_mols,
            "num_atoms": n_atoms,
            "atom_stability": float(self.num_stable_atoms.sum() / n_atoms) if n_atoms else float("nan"),
            "molecule_stability": float(self.molecule_stable.mean()) if n_mols else float("nan"),
        }


def _pair_blocks(num_atoms: np.ndarray, offsets: np.ndarray):
    """Yield (gi, gj) global atom indices of all pairs ``i < j`` within molecules, in blocks.

    Molecules are grouped by size so that each block is one (k, n(n-1)/2) gather; k is chosen so that a
    block holds about ``_PAIR_CHUNK`` pairs.
    """
    for n in np.unique(num_atoms):
        if n < 2:
            continue
        iu, ju = np.triu_indices(int(n), 1)
        starts = offsets[:-1][num_atoms == n]
        k = max(1, _PAIR_CHUNK // len(iu))
        for s in range(0, len(starts), k):
            base = starts[s : s + k, None]
            yield (base + iu).ravel(), (base + ju).ravel()


def infer_bonds(table: MoleculeTable) -> Bonds:
    """Bonds of every molecule by EDM's rule (see the module docstring); vectorized, chunked over pairs."""
    z = np.asarray(table.atomic_numbers, dtype=np.intp)
    if len(z) and (z.min() < 0 or z.max() > Z_MAX):
        raise ValueError(f"atomic numbers must lie in 0..{Z_MAX}, got {z.min()}..{z.max()}")
    pos = np.asarray(table.positions_ang, dtype=np.float64)
    offsets = table.offsets
    found_i, found_j, found_o = [], [], []
    for gi, gj in _pair_blocks(table.num_atoms, offsets):
        d = np.sqrt(np.sum((pos[gi] - pos[gj]) ** 2, axis=1))
        order = bond_order(z[gi], z[gj], d)
        keep = order > 0
        found_i.append(gi[keep]), found_j.append(gj[keep]), found_o.append(order[keep])
    gi = np.concatenate(found_i) if found_i else np.zeros(0, dtype=np.int64)
    gj = np.concatenate(found_j) if found_j else np.zeros(0, dtype=np.int64)
    order = np.concatenate(found_o) if found_o else np.zeros(0, dtype=np.int8)
    sort = np.lexsort((gj, gi))
    gi, gj, order = gi[sort], gj[sort], order[sort]
    mol = table.atom_molecule_index()[gi]
    bond_offsets = np.zeros(len(table) + 1, dtype=np.int64)
    np.cumsum(np.bincount(mol, minlength=len(table)), out=bond_offsets[1:])
    local = np.stack([gi - offsets[mol], gj - offsets[mol]], axis=1).astype(np.int32).reshape(-1, 2)
    return Bonds(bond_offsets, local, order)


def valences(table: MoleculeTable, bonds: Bonds) -> np.ndarray:
    """(A,) int32 sum of bond orders of every atom."""
    mol = np.repeat(np.arange(len(table)), np.diff(bonds.offsets))
    glob = bonds.atoms.astype(np.int64) + table.offsets[mol][:, None]
    w = bonds.order.astype(np.float64)
    a = len(table.atomic_numbers)
    return (np.bincount(glob[:, 0], w, minlength=a) + np.bincount(glob[:, 1], w, minlength=a)).astype(np.int32)


def check_stability(table: MoleculeTable, bonds: Bonds | None = None) -> StabilityResult:
    """Atom and molecule stability of all molecules of ``table`` (EDM's ``check_stability``, vectorized).

    bonds: precomputed :func:`infer_bonds` of ``table``, or None to infer them. A molecule without atoms
    counts as stable (all of its zero atoms are), as in EDM.
    """
    bonds = infer_bonds(table) if bonds is None else bonds
    valence = valences(table, bonds)
    z = np.asarray(table.atomic_numbers, dtype=np.intp)
    column = np.minimum(valence, ALLOWED.shape[1] - 1)
    atom_stable = ALLOWED[z, column]
    mol = table.atom_molecule_index()
    num_atoms = table.num_atoms.astype(np.int64)
    num_stable = np.bincount(mol, atom_stable.astype(np.int64), minlength=len(table)).astype(np.int64)
    return StabilityResult(num_atoms, num_stable, num_stable == num_atoms, valence, atom_stable, bonds)
