"""Small real molecules for the MLFF tests (:mod:`elign.testing.molecules`) and paths to the offline weights
in ../shared/mlff."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from elign.testing.molecules import MOLECULES

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
AIMNET2_PATH = SHARED / "mlff" / "aimnet2" / "aimnet2_wb97m-d3_ens.jpt"
TORCHANI_DIR = SHARED / "mlff" / "torchani"


def molecule(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(N,) int64 atomic numbers, (N, 3) float64 Å."""
    z, x = MOLECULES[name]
    return np.array(z, dtype=np.int64), np.array(x, dtype=np.float64)


def batch(*names: str, pad_to: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Padded batch of the named molecules: (B, N) with 0 = padding, (B, N, 3)."""
    from elign.mlff import pad_molecules

    mols = [molecule(n) for n in names]
    return pad_molecules([m[0] for m in mols], [m[1] for m in mols], pad_to)
