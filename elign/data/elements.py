"""Element symbols and atomic numbers (IUPAC periodic table, Z = 1..118)."""

from __future__ import annotations

SYMBOLS: tuple[str, ...] = (
    "H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne", "Na", "Mg", "Al", "Si", "P", "S", "Cl", "Ar",
    "K", "Ca", "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge", "As", "Se", "Br",
    "Kr", "Rb", "Sr", "Y", "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd", "In", "Sn", "Sb", "Te",
    "I", "Xe", "Cs", "Ba", "La", "Ce", "Pr", "Nd", "Pm", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho", "Er", "Tm",
    "Yb", "Lu", "Hf", "Ta", "W", "Re", "Os", "Ir", "Pt", "Au", "Hg", "Tl", "Pb", "Bi", "Po", "At", "Rn",
    "Fr", "Ra", "Ac", "Th", "Pa", "U", "Np", "Pu", "Am", "Cm", "Bk", "Cf", "Es", "Fm", "Md", "No", "Lr",
    "Rf", "Db", "Sg", "Bh", "Hs", "Mt", "Ds", "Rg", "Cn", "Nh", "Fl", "Mc", "Lv", "Ts", "Og",
)
#: 2S+1 of the isolated neutral atom's ground state (Hund's rules; NIST atomic spectra database), for the
#: formation-energy references of the DFT stage and of GFN2-xTB: H-Ar, Br, I.
GROUND_STATE_MULTIPLICITY: dict[int, int] = {1: 2, 2: 1, 3: 2, 4: 1, 5: 2, 6: 3, 7: 4, 8: 3, 9: 2, 10: 1, 11: 2, 12: 1, 13: 2,
                                              14: 3, 15: 4, 16: 3, 17: 2, 18: 1, 35: 2, 53: 2}
_Z_BY_SYMBOL = {s.lower(): z for z, s in enumerate(SYMBOLS, start=1)}


def atomic_number(symbol: str) -> int:
    """Atomic number of an element symbol (case-insensitive); KeyError naming the symbol if unknown."""
    z = _Z_BY_SYMBOL.get(symbol.strip().lower())
    if z is None:
        raise KeyError(f"unknown element symbol {symbol!r}")
    return z


def symbol(z: int) -> str:
    """Element symbol of atomic number ``z`` (1..118)."""
    if not 1 <= int(z) <= len(SYMBOLS):
        raise KeyError(f"no element with atomic number {z}")
    return SYMBOLS[int(z) - 1]
