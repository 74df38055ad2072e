"""Is a parsed record a molecule? Checks every reader of the user's files applies, once, before any cast.

A reader parses text or columns into atomic numbers (int64) and positions in Å (float64); before the record
becomes a row of a :class:`~elign.io.table.MoleculeTable` (atomic numbers int8, positions float32, and in
the Parquet artifacts ``num_atoms`` int16) :func:`record_problem` says what, if anything, is wrong with it:

* atom count: at least 1, at most :data:`MAX_ATOMS` (what the int16 ``num_atoms`` column holds);
* elements: atomic numbers 1..118 (the periodic table, :data:`elign.elements.SYMBOLS`);
* coordinates: finite, and no farther from the origin than ``max_abs_coordinate_ang`` on any axis;
* atoms: no two closer than ``min_distance_ang`` (duplicated atoms, all atoms at the origin, a collapse);
* failed samples: elign's own sample exports mark a sample that went wrong (SD property
  ``nonfinite_positions`` = 1, or ``status`` one of :data:`FAILED_SAMPLE_STATUSES`); such a record is not
  a molecule even though the SD file holds it at the origin.

Each problem is ``(kind, message)``: ``kind`` is the short reason counted in stats.json, the message says
which atom and why, and the reader adds file, record and line (:class:`~elign.data.errors.DataFormatError`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from elign.elements import SYMBOLS

MAX_ATOMS = int(np.iinfo(np.int16).max)  # 32767: num_atoms is int16 in the Parquet artifacts (elign.io.molecules)
MAX_Z = len(SYMBOLS)  # 118
# elign.diffusion.sampler.STATUSES other than "ok" (a test keeps the two in step; the sampler imports torch).
FAILED_SAMPLE_STATUSES = ("nan", "exploded", "bad_charge")
_KDTREE_FROM_ATOMS = 64  # above this many atoms a k-d tree beats the all-pairs distance matrix


@dataclass(frozen=True)
class GeometryLimits:
    """Where coordinates stop being a molecule (``data.files`` holds the configured values).

    max_abs_coordinate_ang: float32 storage keeps about 1e-4 Å (a molfile's precision) only up to ~1000 Å
    from the origin; a coordinate beyond the limit is a wrong unit or a corrupt file.
    min_distance_ang: the shortest bond in chemistry is H2's 0.74 Å; closer atoms are duplicated or
    collapsed. 0 turns the check off.
    """

    max_abs_coordinate_ang: float = 1000.0
    min_distance_ang: float = 0.5


def _vector(row: np.ndarray) -> str:
    return "[" + ", ".join(f"{v:.6g}" for v in row.tolist()) + "]"


def _closest_pair(pos: np.ndarray) -> tuple[int, int, float]:
    """(i, j, distance) of the two closest atoms (i < j) of (n >= 2, 3) finite positions."""
    if len(pos) > _KDTREE_FROM_ATOMS:
        from scipy.spatial import cKDTree

        dist, idx = cKDTree(pos).query(pos, k=2)
        i = int(np.argmin(dist[:, 1]))
        j = int(idx[i, 1])
        return min(i, j), max(i, j), float(dist[i, 1])
    d = np.linalg.norm(pos[:, None, :] - pos[None, :, :], axis=-1)
    d[np.tril_indices(len(pos))] = np.inf
    i, j = np.unravel_index(int(np.argmin(d)), d.shape)
    return int(i), int(j), float(d[i, j])


def atoms_problem(atomic_numbers: np.ndarray) -> tuple[str, str] | None:
    """Atom count and elements of one record (integers, not yet narrowed), or None if they are fine."""
    z = np.asarray(atomic_numbers)
    if len(z) == 0:
        return "no_atoms", "the molecule has no atoms"
    if len(z) > MAX_ATOMS:
        return "too_many_atoms", (
            f"the molecule has {len(z)} atoms; at most {MAX_ATOMS} fit a molecule "
            "(num_atoms is int16 in the Parquet artifacts)"
        )
    bad = np.flatnonzero((z < 1) | (z > MAX_Z))
    if len(bad):
        return "unknown_element", (
            f"atom {bad[0] + 1} has atomic number {z[bad[0]]}, not a chemical element (1..{MAX_Z})"
        )
    return None


def geometry_problem(positions_ang: np.ndarray, limits: GeometryLimits) -> tuple[str, str] | None:
    """Coordinates of one record ((n, 3) Å, float64, not yet narrowed), or None if they are a geometry."""
    pos = np.asarray(positions_ang, dtype=np.float64).reshape(-1, 3)
    finite = np.isfinite(pos).all(axis=1)
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        return "nan_coordinate", f"atom {i + 1} has a non-finite coordinate {_vector(pos[i])}"
    far = np.flatnonzero((np.abs(pos) > limits.max_abs_coordinate_ang).any(axis=1))
    if len(far):
        i = int(far[0])
        return "implausible_coordinate", (
            f"atom {i + 1} is at {_vector(pos[i])} Å, beyond data.files.max_abs_coordinate_ang = "
            f"{limits.max_abs_coordinate_ang:g} Å (float32 storage keeps ~1e-4 Å only near the origin; "
            "a wrong unit or a corrupt file?)"
        )
    if len(pos) >= 2 and limits.min_distance_ang > 0:
        i, j, dist = _closest_pair(pos)
        if dist < limits.min_distance_ang:
            return "overlapping_atoms", (
                f"atoms {i + 1} and {j + 1} are {dist:.4g} Å apart, closer than data.files.min_distance_ang = "
                f"{limits.min_distance_ang:g} Å (the shortest bond, H2, is 0.74 Å): duplicated or collapsed atoms"
            )
    return None


def _text(value) -> str:
    return str(value).strip().lower() if value is not None else ""


def failed_sample_problem(props: Mapping) -> tuple[str, str] | None:
    """A record that elign's sample export marked as a failed sample (see module doc), or None."""
    flag = props.get("nonfinite_positions")
    if flag is not None and _text(flag) in ("1", "1.0", "true"):
        return "failed_sample", (
            "flagged nonfinite_positions=1: a sample that went non-finite, written at the "
            "origin by elign's SDF export; it is not a molecule"
        )
    status = _text(props.get("status"))
    if status in FAILED_SAMPLE_STATUSES:
        reason = _text(props.get("reason"))
        return "failed_sample", (
            f"status {status!r}: a failed sample from elign's sampler"
            + (f" ({reason})" if reason and reason != "nan" else "")
            + "; it is not a molecule"
        )
    return None


def record_problem(
    atomic_numbers: np.ndarray, positions_ang: np.ndarray, props: Mapping, limits: GeometryLimits
) -> tuple[str, str] | None:
    """The first problem of one parsed record (failed sample, atoms, elements, geometry), or None."""
    return failed_sample_problem(props) or atoms_problem(atomic_numbers) or geometry_problem(positions_ang, limits)
