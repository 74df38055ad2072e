"""Small real molecules for the MLFF tests (Å) and paths to the offline weights in ../shared/mlff.

Geometries: methane (C-H 1.0895), water (O-H 0.9572, 104.5°), ethanol (anti, NIST CCCBDB experimental),
chloromethane and bromomethane (C-X 1.78 / 1.93, C-H 1.09), methyl radical (planar, C-H 1.08), LiH (1.595).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
AIMNET2_PATH = SHARED / "mlff" / "aimnet2" / "aimnet2_wb97m-d3_ens.jpt"
TORCHANI_DIR = SHARED / "mlff" / "torchani"

MOLECULES: dict[str, tuple[list[int], list[list[float]]]] = {
    "methane": ([6, 1, 1, 1, 1], [[0.0, 0.0, 0.0], [0.629, 0.629, 0.629], [-0.629, -0.629, 0.629],
                                  [-0.629, 0.629, -0.629], [0.629, -0.629, -0.629]]),
    "water": ([8, 1, 1], [[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]]),
    "ethanol": ([6, 6, 8, 1, 1, 1, 1, 1, 1], [
        [1.1879, -0.3829, 0.0], [0.0, 0.5526, 0.0], [-1.1867, -0.2472, 0.0], [-1.9237, 0.3850, 0.0],
        [2.0985, 0.2306, 0.0], [1.1184, -1.0093, 0.8869], [1.1184, -1.0093, -0.8869],
        [0.0227, 1.1812, 0.8852], [0.0227, 1.1812, -0.8852]]),
    "chloromethane": ([6, 17, 1, 1, 1], [[0.0, 0.0, 0.0], [0.0, 0.0, 1.781], [1.027, 0.0, -0.363],
                                         [-0.513, 0.889, -0.363], [-0.513, -0.889, -0.363]]),
    "bromomethane": ([6, 35, 1, 1, 1], [[0.0, 0.0, 0.0], [0.0, 0.0, 1.934], [1.038, 0.0, -0.331],
                                        [-0.519, 0.899, -0.331], [-0.519, -0.899, -0.331]]),
    "methyl": ([6, 1, 1, 1], [[0.0, 0.0, 0.0], [1.08, 0.0, 0.0], [-0.54, 0.9353, 0.0], [-0.54, -0.9353, 0.0]]),
    "lithium_hydride": ([3, 1], [[0.0, 0.0, 0.0], [0.0, 0.0, 1.595]]),
}


def molecule(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(N,) int64 atomic numbers, (N, 3) float64 Å."""
    z, x = MOLECULES[name]
    return np.array(z, dtype=np.int64), np.array(x, dtype=np.float64)


def batch(*names: str, pad_to: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Padded batch of the named molecules: (B, N) with 0 = padding, (B, N, 3)."""
    from elign.mlff import pad_molecules

    mols = [molecule(n) for n in names]
    return pad_molecules([m[0] for m in mols], [m[1] for m in mols], pad_to)
