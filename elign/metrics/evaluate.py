"""Per-molecule evaluation of a molecule table: stability, chemistry and MLFF physics, plus a summary.

One row per molecule (a molecule that could not be scored keeps its row, with a status and a reason):
``mol_id, num_atoms, sample_status, num_stable_atoms, molecule_stable, valid, smiles, invalid_reason,
novel, mlff_status, mlff_reason, energy_ev, formation_energy_per_atom_ev, force_rms_ev_per_ang,
force_max_ev_per_ang``, and with relaxation settings the columns of :mod:`elign.metrics.relaxation`
(``relax_status``, ``relaxation_energy_kcal_mol``, ``relax_heavy_rmsd_ang``, ...).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pandas as pd

from elign.io.table import MoleculeTable
from elign.metrics.chemistry import evaluate_chemistry
from elign.metrics.registry import MetricBatch, run_metric
from elign.metrics.relaxation import NOT_SCORED, relaxation_columns, summarize_relaxation
from elign.metrics.stability import check_stability
from elign.mlff.base import MLFFBackend, pad_molecules
from elign.mlff.relax import FireSettings

# Sample statuses whose geometry and atom types are usable. "bad_charge" (the charge channel disagrees with
# the one-hot type) is information only: EDM evaluates samples from positions and the one-hot types alone.
EVALUABLE_SAMPLE_STATUSES = ("ok", "bad_charge")


#: the columns of the summary table (``elign summarize``), in order; a summary may lack some
SUMMARY_COLUMNS = (
    "model",
    "num_molecules",
    "atom_stability",
    "molecule_stability",
    "validity",
    "uniqueness",
    "valid_and_unique",
    "novelty",
    "mlff_ok_fraction",
    "formation_energy_per_atom_ev_mean",
    "force_rms_ev_per_ang_mean",
    "force_rms_ev_per_ang_sem",
    "mlff_failures",
    "relax_num_scored",
    "relaxation_energy_kcal_mol_mean",
    "relaxation_energy_kcal_mol_median",
    "relax_heavy_rmsd_ang_mean",
    "relax_heavy_rmsd_ang_median",
    "relax_converged_fraction",
    "relax_failures",
)


def random_subset(n: int, k: int, seed: int) -> np.ndarray:
    """Row indices of a uniformly random subset of min(k, n) of n rows, seeded, in increasing (file) order.

    For the reference row: a data split is stored in index order (QM9: small molecules first), so its first
    k rows are not a sample of it. ``numpy.random.default_rng(seed).choice`` without replacement.
    """
    if k < 1:
        raise ValueError(f"a subset needs at least one molecule, got {k}")
    if k >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


def force_rms(forces_ev_per_ang: np.ndarray, num_atoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RMS over real atoms of |F_i| and max |F_i|, per molecule.

    forces_ev_per_ang: (B, N, 3), zero at padding; num_atoms: (B,). Returns two (B,) arrays in eV/Å
    (NaN where the forces are NaN).
    """
    norm2 = (forces_ev_per_ang**2).sum(axis=-1)
    rms = np.sqrt(norm2.sum(axis=1) / np.maximum(num_atoms, 1))
    return rms, np.sqrt(norm2.max(axis=1))


def mlff_columns(table: MoleculeTable, backend: MLFFBackend, scorable: np.ndarray) -> dict[str, np.ndarray]:
    """MLFF energy and force statistics of the molecules where ``scorable`` (M,) is true; NaN elsewhere."""
    m = len(table)
    out = {"mlff_status": np.full(m, NOT_SCORED, dtype=object), "mlff_reason": np.full(m, "", dtype=object)}
    for name in ("energy_ev", "formation_energy_per_atom_ev", "force_rms_ev_per_ang", "force_max_ev_per_ang"):
        out[name] = np.full(m, np.nan)
    idx = np.flatnonzero(scorable)
    out["mlff_reason"][~scorable] = "the sample itself failed (see sample_status)"
    if len(idx) == 0:
        return out
    o = table.offsets
    z, x = pad_molecules(
        [table.atomic_numbers[o[i] : o[i + 1]] for i in idx], [table.positions_ang[o[i] : o[i + 1]] for i in idx]
    )
    result = backend.evaluate(z, x)
    rms, fmax = force_rms(result.forces_ev_per_ang, result.num_atoms)
    out["mlff_status"][idx], out["mlff_reason"][idx] = result.status, result.reason
    out["energy_ev"][idx] = result.energy_ev
    out["formation_energy_per_atom_ev"][idx] = result.formation_energy_per_atom_ev
    out["force_rms_ev_per_ang"][idx], out["force_max_ev_per_ang"][idx] = rms, fmax
    return out


def evaluate_table(
    table: MoleculeTable,
    backend: MLFFBackend | None,
    training_keys: set[str] | None,
    relax: FireSettings | None = None,
    bond_rules: str = "qm9",
    metrics: Sequence[str] = (),
) -> pd.DataFrame:
    """All per-molecule metrics of ``table`` (samples or a data split) as a DataFrame, one row per molecule.

    ``relax``: also relax every scorable molecule with ``backend`` (FIRE) and add the relaxation columns.
    ``bond_rules``: "qm9", or "geom" for EDM's GEOM-Drugs validity (every inferred bond single,
    ``limit_bonds_to_one``); stability uses EDM's tables and bond orders either way, as EDM does.
    ``metrics``: registered metrics (:mod:`elign.metrics.registry`) whose columns are added after these.
    """
    if bond_rules not in ("qm9", "geom"):
        raise ValueError(f"bond_rules must be 'qm9' or 'geom', got {bond_rules!r}")
    status = table.columns.get("status")
    sample_status = np.asarray(status, dtype=object) if status is not None else np.full(len(table), "ok", dtype=object)
    sample_ok = np.isin(sample_status, EVALUABLE_SAMPLE_STATUSES)
    stab = check_stability(table)
    chem = evaluate_chemistry(table, stab.bonds, training_keys, single_bonds_only=bond_rules == "geom")
    frame = {
        "mol_id": table.mol_id,
        "num_atoms": table.num_atoms,
        "sample_status": sample_status,
        "num_stable_atoms": stab.num_stable_atoms,
        "molecule_stable": stab.molecule_stable & sample_ok,
        "valid": chem.valid & sample_ok,
        "smiles": chem.smiles,
        "invalid_reason": chem.invalid_reason,
        "novel": chem.novel if chem.novel is not None else np.full(len(table), None, dtype=object),
    }
    attrs = {}
    if backend is not None:
        frame.update(mlff_columns(table, backend, sample_ok))
    if backend is not None and relax is not None:
        t0 = time.perf_counter()
        frame.update(relaxation_columns(table, backend, sample_ok, relax))
        attrs["relax_seconds"] = time.perf_counter() - t0  # wall time of the whole relaxation, for the summary
    if metrics:
        attrs["metrics"] = _metric_columns(table, sample_ok, backend, metrics, frame)
    out = pd.DataFrame(frame)
    out.attrs.update(attrs)
    return out


def _metric_columns(table, sample_ok, backend, metrics: Sequence[str], frame: dict) -> dict[str, list[str]]:
    """Add the columns of the registered ``metrics`` to ``frame``; {metric: its value columns}."""
    batch, added = MetricBatch(table, sample_ok, backend), {}
    for name in metrics:
        columns = run_metric(name, batch)
        if clash := sorted(set(columns) & set(frame)):
            raise ValueError(f"metric {name!r} would overwrite the columns {clash}")
        frame.update(columns)
        added[name] = [c for c in columns if c not in (f"{name}_status", f"{name}_reason")]
    return added


def summary_columns(row: dict) -> list[str]:
    """The summary table's columns present in ``row``: :data:`SUMMARY_COLUMNS`, then the registered metrics'."""
    extra = [c for c in row.get("metric_columns", []) if c in row]
    return [c for c in SUMMARY_COLUMNS if c in row] + extra


def _mean_sem(values: pd.Series) -> tuple[float, float]:
    v = values.dropna().to_numpy(dtype=float)
    if len(v) == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")


def valid_and_unique_flags(frame: pd.DataFrame) -> pd.Series:
    """Per molecule: valid, and the first valid molecule of the set with its SMILES (sample order). The mean is
    the set's valid_and_unique (:func:`summarize`), so it can be compared pair by pair."""
    valid = frame["valid"].astype(bool)
    repeated = frame.loc[valid, "smiles"].duplicated()
    flags = valid.copy()
    flags.loc[repeated.index[repeated.to_numpy()]] = False
    return flags


def summarize(frame: pd.DataFrame, name: str) -> dict:
    """One summary row: EDM metrics (atom/molecule stability, validity, uniqueness, novelty), MLFF stats and,
    when relaxed, :func:`elign.metrics.relaxation.summarize_relaxation`."""
    n = len(frame)
    valid = frame["valid"].astype(bool)
    unique = frame.loc[valid, "smiles"].nunique()
    novel = frame.loc[valid, "novel"]
    row = {
        "model": name,
        "num_molecules": n,
        "sample_ok_fraction": float((frame["sample_status"] == "ok").mean()) if n else float("nan"),
        "atom_stability": float(frame["num_stable_atoms"].sum() / frame["num_atoms"].sum()) if n else float("nan"),
        "molecule_stability": float(frame["molecule_stable"].mean()) if n else float("nan"),
        "validity": float(valid.mean()) if n else float("nan"),
        "uniqueness": unique / int(valid.sum()) if valid.any() else float("nan"),
        "valid_and_unique": unique / n if n else float("nan"),
        "novelty": float(frame.loc[valid].drop_duplicates("smiles")["novel"].astype(bool).mean())
        if valid.any() and novel.notna().all()
        else float("nan"),
    }
    if "mlff_status" in frame:
        ok = frame["mlff_status"] == "ok"
        row["mlff_ok_fraction"] = float(ok.mean()) if n else float("nan")
        for col in ("formation_energy_per_atom_ev", "force_rms_ev_per_ang"):
            row[f"{col}_mean"], row[f"{col}_sem"] = _mean_sem(frame.loc[ok, col])
        failures = frame.loc[~ok & (frame["mlff_status"] != NOT_SCORED), "mlff_status"].value_counts()
        row["mlff_failures"] = ";".join(f"{k}:{v}" for k, v in failures.items())
    if "relax_status" in frame:
        row.update(summarize_relaxation(frame))
    for name, columns in frame.attrs.get("metrics", {}).items():
        scored = frame[f"{name}_status"] == "ok"
        for column in columns:
            row[f"{column}_mean"] = float(frame.loc[scored, column].mean()) if scored.any() else float("nan")
        row.setdefault("metric_columns", []).extend(f"{column}_mean" for column in columns)
    return row
