"""Small molecules and reference numbers for the DFT tests."""

from __future__ import annotations

import numpy as np

THREADS = 1  # OpenMP threads per PySCF calculation: the suite's cores are shared with other jobs

# Å; slightly off equilibrium so the forces are not ~0 (the finite-difference test needs real forces)
WATER = (np.array([8, 1, 1]), np.array([[0.0, 0.0, 0.12], [0.0, 0.80, -0.45], [0.0, -0.72, -0.50]]))
METHANE = (
    np.array([6, 1, 1, 1, 1]),
    np.array(
        [[0, 0, 0], [0.63, 0.63, 0.63], [-0.63, -0.63, 0.63], [-0.63, 0.63, -0.63], [0.63, -0.63, -0.63]], dtype=float
    ),
)
METHYL = (np.array([6, 1, 1, 1]), np.array([[0, 0, 0], [1.08, 0, 0], [-0.54, 0.935, 0], [-0.54, -0.935, 0]]))

# QM9's atomic reference energies (U0, Ha) at B3LYP/6-31G(2df,p), from QM9's atomref table
QM9_ATOM_U0_HA = {1: -0.500273, 6: -37.846772, 7: -54.583861, 8: -75.064579, 9: -99.718730}
