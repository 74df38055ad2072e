"""How far from a minimum: relax each molecule with the evaluation MLFF and measure what changed.

Per molecule (columns of the evaluate stage's metrics Parquet):

* ``relax_status`` / ``relax_reason``: "ok", ``not_scored`` (the sample itself failed), or the backend's
  failure class (``unknown_element``, ``non_finite``, ...) with the step at which it failed;
* ``relaxation_energy_kcal_mol``: E(sample) - E(relaxed) with the MLFF, kcal/mol (≥ 0 up to FIRE's
  non-monotone steps; a lower bound where the step cap stopped the relaxation);
* ``relax_heavy_rmsd_ang``: RMSD of the heavy atoms (Z > 1) between the sample and its relaxed geometry
  after optimal superposition (Kabsch, ``scipy.spatial.transform.Rotation.align_vectors`` on centred
  coordinates), Å; 0 for one heavy atom; NaN with a reason for a molecule with none;
* ``relax_steps``, ``relax_converged`` (max |F_i| < fmax at the end), ``relax_fmax_ev_per_ang`` (at the end),
  ``relaxed_energy_ev``.

Evaluation suites for 3D generators report these two numbers after a GFN2-xTB relaxation (issue 13); here
the relaxing force field is the evaluation MLFF (``evaluate.mlff``, any backend) and the optimizer is
:func:`elign.mlff.relax.relax` (FIRE, ``evaluate.relax``).
"""

from __future__ import annotations

import warnings

import numpy as np

from elign.io.table import MoleculeTable
from elign.mlff.base import STATUS_OK, MLFFBackend, pad_molecules
from elign.mlff.relax import FireSettings, relax

NOT_SCORED = "not_scored"  # no MLFF call: the sample itself failed (elign.metrics.evaluate uses it too)
NO_HEAVY_ATOMS = "no heavy atoms: heavy-atom RMSD undefined"
FLOAT_COLUMNS = ("relaxation_energy_kcal_mol", "relax_heavy_rmsd_ang", "relax_fmax_ev_per_ang", "relaxed_energy_ev")


def superposed_rmsd(a: np.ndarray, b: np.ndarray) -> float:
    """RMSD of two (n, 3) point sets after optimal translation and rotation (Kabsch), Å.

    Proper rotations only (no reflection). n = 1: 0. n = 0: NaN.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] != 3:
        raise ValueError(f"expected two (n, 3) arrays of the same shape, got {a.shape} and {b.shape}")
    n = len(a)
    if n == 0:
        return float("nan")
    a, b = a - a.mean(axis=0), b - b.mean(axis=0)
    if n == 1:
        return 0.0
    from scipy.spatial.transform import Rotation

    with warnings.catch_warnings():  # two points (or collinear ones): the rotation is not unique, the RMSD is
        warnings.simplefilter("ignore", UserWarning)
        _, rssd = Rotation.align_vectors(a, b)
    return float(rssd) / np.sqrt(n)


def heavy_atom_rmsd(atomic_numbers: np.ndarray, before_ang: np.ndarray, after_ang: np.ndarray) -> float:
    """Superposed RMSD over the heavy atoms (Z > 1) of one molecule, Å (NaN when it has none)."""
    heavy = np.asarray(atomic_numbers) > 1
    return superposed_rmsd(before_ang[heavy], after_ang[heavy])


def empty_columns(m: int) -> dict[str, np.ndarray]:
    out = {
        "relax_status": np.full(m, NOT_SCORED, dtype=object),
        "relax_reason": np.full(m, "", dtype=object),
        "relax_steps": np.zeros(m, np.int64),
        "relax_converged": np.zeros(m, bool),
    }
    out.update({name: np.full(m, np.nan) for name in FLOAT_COLUMNS})
    return out


def relaxation_columns(
    table: MoleculeTable, backend: MLFFBackend, scorable: np.ndarray, settings: FireSettings
) -> dict[str, np.ndarray]:
    """The relaxation columns of ``table`` (M molecules): relaxed where ``scorable`` (M,) is true."""
    out = empty_columns(len(table))
    out["relax_reason"][~scorable] = "the sample itself failed (see sample_status)"
    idx = np.flatnonzero(scorable)
    if len(idx) == 0:
        return out
    o = table.offsets
    zs = [table.atomic_numbers[o[i] : o[i + 1]] for i in idx]
    z, x = pad_molecules(zs, [table.positions_ang[o[i] : o[i + 1]] for i in idx])
    res = relax(backend, z, x, settings)
    out["relax_status"][idx], out["relax_reason"][idx] = res.status, res.reason
    out["relaxation_energy_kcal_mol"][idx] = res.relaxation_energy_kcal_mol
    out["relaxed_energy_ev"][idx] = res.energy_final_ev
    out["relax_fmax_ev_per_ang"][idx] = res.fmax_final_ev_per_ang
    out["relax_steps"][idx], out["relax_converged"][idx] = res.steps, res.converged
    for j, i in enumerate(idx):
        if res.status[j] != STATUS_OK:
            continue
        n = len(zs[j])
        out["relax_heavy_rmsd_ang"][i] = heavy_atom_rmsd(zs[j], x[j, :n], res.positions_ang[j, :n])
        if not (zs[j] > 1).any():
            out["relax_reason"][i] = NO_HEAVY_ATOMS
    return out


def summarize_relaxation(frame) -> dict:
    """Summary entries: mean / median relaxation energy and heavy-atom RMSD over the relaxed molecules,
    their count, the converged fraction among them, the mean steps and the failures by status."""
    import pandas as pd

    ok = frame["relax_status"] == STATUS_OK
    row: dict = {"relax_num_scored": int(ok.sum())}
    for col in ("relaxation_energy_kcal_mol", "relax_heavy_rmsd_ang"):
        v = pd.to_numeric(frame.loc[ok, col], errors="coerce").dropna()
        row[f"{col}_mean"] = float(v.mean()) if len(v) else float("nan")
        row[f"{col}_median"] = float(v.median()) if len(v) else float("nan")
    row["relax_converged_fraction"] = float(frame.loc[ok, "relax_converged"].mean()) if ok.any() else float("nan")
    row["relax_steps_mean"] = float(frame.loc[ok, "relax_steps"].mean()) if ok.any() else float("nan")
    failures = frame.loc[~ok & (frame["relax_status"] != NOT_SCORED), "relax_status"].value_counts()
    row["relax_failures"] = ";".join(f"{k}:{v}" for k, v in failures.items())
    return row
