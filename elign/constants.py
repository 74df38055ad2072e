"""Physical constants, CODATA 2018 (E. Tiesinga et al., Rev. Mod. Phys. 93, 025010 (2021); NIST).

The one home of the unit conversions: the MLFF backends (torchani, tblite, ...) and the DFT stage (PySCF)
work in Hartree and Bohr, every artifact in eV and Å. torchani's own constant is ASE's older CODATA 2014
value (27.211386024367243 eV); it differs from ours by 8e-9 relative (~1e-5 eV on a 1000 eV total energy).
PySCF converts Å to Bohr with its own 0.52917721092 (CODATA 2010; 3e-11 relative, far below anything we
report).
"""

from __future__ import annotations

HARTREE_TO_EV = 27.211386245988  #: 1 Hartree in eV
BOHR_TO_ANG = 0.529177210903  #: the Bohr radius in Å
HA_PER_BOHR_TO_EV_PER_ANG = HARTREE_TO_EV / BOHR_TO_ANG  #: a force (or gradient) in Ha/Bohr to eV/Å
BOLTZMANN_EV_PER_K = 8.617333262e-5  #: k_B in eV/K (exact in the 2019 SI)
