"""The level of theory of a DFT job, its unit constants, and the basis-function convention.

Units: PySCF works in Bohr and Hartree. We build every ``Mole`` with ``unit="Angstrom"`` and convert
energies and gradients with CODATA 2018 (E. Tiesinga et al., Rev. Mod. Phys. 93, 025010 (2021);
https://physics.nist.gov/cuu/Constants/; :mod:`elign.constants`): 1 Ha = 27.211386245988 eV, 1 Bohr = 0.529177210903 Å.
(PySCF converts Å to Bohr with its own 0.52917721092, CODATA 2010; the relative difference, 3e-11, is far
below anything we report.)

Basis-function convention (``basis_convention``; ``"auto"``, the default, means ``"gaussian"`` for the
6-31G family below and ``"pyscf"`` for any other basis name):

* ``"gaussian"`` (default): the basis as Gaussian 09/16 defines it, i.e. the program QM9 was computed
  with (B3LYP/6-31G(2df,p), Ramakrishnan et al., Sci. Data 1, 140022 (2014)). Two differences from the
  Basis Set Exchange data that PySCF ships: (1) the 6-31G family uses **Cartesian d functions (6D)** and
  pure f functions (7F) in Gaussian, PySCF uses pure (spherical) functions unless ``mol.cart``, which
  would make f Cartesian too (10F); (2) Gaussian builds multiple polarization sets by scaling the single
  6-31G* exponent by 2 and 1/2 (Frisch, Pople & Binkley, J. Chem. Phys. 80, 3265 (1984)): C/N/O/F
  d = 1.6 and 0.4, where the BSE 6-31G(2df,p) file has 6-311G-derived values (e.g. O 2.584 and 0.646).
  We measured the effect (pyscf 2.14, b3lypg, density fitting): with ``gaussian`` the isolated C, N, O, F
  atoms reproduce QM9's atomic reference energies to 1 uHa and QM9 molecules give E - (U0 - ZPVE) below
  0.01 mHa with force RMS 0.0001-0.01 eV/A at QM9's geometries; with ``pyscf`` the heavy atoms are 1-4 mHa
  too high and formaldehyde's force RMS is 0.059 eV/A. 6D7F has no switch in PySCF, so the runner builds
  the molecule with ``cart=True`` and solves the SCF in the subspace where each f shell is pure (see
  :func:`elign.dft.pyscf_runner.pure_f_orthogonalizer`); analytic gradients stay exact because the
  subspace is a fixed linear map of the atom-centred functions (checked against finite differences).
  Defined here for the 6-31G family only (see :data:`GAUSSIAN_BASES`).
* ``"pyscf"``: the basis exactly as PySCF names it (spherical functions, BSE exponents). Any basis name.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass

# Names (lower case, no spaces) for which the "gaussian" convention is defined, and what each needs:
# (Cartesian d, number of d sets whose exponents Gaussian scales from the 6-31G* value).
GAUSSIAN_BASES = {
    "6-31g": (True, 0),
    "6-31g*": (True, 1),
    "6-31g(d)": (True, 1),
    "6-31g**": (True, 1),
    "6-31g(d,p)": (True, 1),
    "6-31g(2df,p)": (True, 2),
}
GAUSSIAN_2D_SCALE = (2.0, 0.5)  # Frisch, Pople & Binkley 1984: two d sets = 2x and 1/2x the single exponent


@dataclass(frozen=True)
class DftLevel:
    """Everything that decides the numbers of a single point (and the isolated-atom references)."""

    functional: str = "b3lypg"
    basis: str = "6-31g(2df,p)"
    basis_convention: str = "auto"
    density_fit: bool = True
    grid_level: int = 3
    conv_tol: float = 1e-9
    max_cycles: int = 100
    newton_cycles: int = 30
    charge: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.basis_convention == "auto":
            auto = "gaussian" if normalize_basis(self.basis) in GAUSSIAN_BASES else "pyscf"
            object.__setattr__(self, "basis_convention", auto)
        if self.basis_convention not in ("gaussian", "pyscf"):
            raise ValueError(f"basis_convention must be 'auto', 'gaussian' or 'pyscf', got {self.basis_convention!r}")
        if self.basis_convention == "gaussian" and normalize_basis(self.basis) not in GAUSSIAN_BASES:
            raise ValueError(
                f"basis_convention 'gaussian' is defined here only for {sorted(GAUSSIAN_BASES)}; "
                f"got basis {self.basis!r}: use basis_convention 'pyscf' for other bases"
            )

    @classmethod
    def from_config(cls, dft, charge: int = 0) -> DftLevel:
        """From a :class:`elign.config.DftConfig` (``basis_convention``: "auto" while the config has no such
        field)."""
        return cls(
            functional=dft.functional,
            basis=dft.basis,
            basis_convention=getattr(dft, "basis_convention", "auto"),
            density_fit=dft.density_fit,
            grid_level=dft.grid_level,
            conv_tol=dft.conv_tol,
            max_cycles=dft.max_cycles,
            newton_cycles=dft.newton_cycles,
            charge=charge,
            device=dft.device,
        )

    def reference_key(self) -> str:
        """Hash of what decides an isolated atom's energy (not the cycle limits, charge or device) + pyscf version."""
        import pyscf

        fields = {k: v for k, v in asdict(self).items() if k not in ("max_cycles", "newton_cycles", "charge", "device")}
        fields["pyscf"] = pyscf.__version__
        blob = json.dumps(fields, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def describe(self) -> dict:
        return asdict(self)


def normalize_basis(name: str) -> str:
    return re.sub(r"\s+", "", name.lower())
