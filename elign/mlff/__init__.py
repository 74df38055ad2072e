"""elign.mlff: ML force fields behind one protocol (see base.py), built by name (see registry.py).

    from elign.mlff import get_backend
    backend = get_backend("ani2x", device="cpu", dtype="float64")
    result = backend.evaluate(atomic_numbers, positions_ang)   # (B, N) int 0 = padding, (B, N, 3) Å
    result.energy_ev, result.forces_ev_per_ang, result.formation_energy_per_atom_ev, result.status

Importing this package imports no MLFF library: each backend imports its own (torchani, mace-torch,
fairchem-core; tblite only in the gfn2-xtb worker processes) when it is built.
"""

from elign.constants import BOHR_TO_ANG, HARTREE_TO_EV
from elign.mlff import aimnet2, ani, mace, uma, xtb  # noqa: F401  (registers the backends)
from elign.mlff.base import (
    FAILURE_STATUSES,
    STATUS_OK,
    MissingDependencyError,
    MissingWeightsError,
    MLFFBackend,
    MLFFResult,
    pad_molecules,
)
from elign.mlff.registry import DEFAULT_BACKEND, available_backends, get_backend, register_backend

__all__ = [
    "BOHR_TO_ANG",
    "DEFAULT_BACKEND",
    "FAILURE_STATUSES",
    "HARTREE_TO_EV",
    "STATUS_OK",
    "MissingDependencyError",
    "MissingWeightsError",
    "MLFFBackend",
    "MLFFResult",
    "available_backends",
    "get_backend",
    "pad_molecules",
    "register_backend",
]
