"""The statistics table: every model against the baseline, per metric (``elign stats``).

Per-molecule values come from the evaluate stage's metrics Parquet (MLFF, relaxation, stability, validity)
and the DFT stage's Parquet. Continuous metrics: a molecule whose value is missing (MLFF could not score or
relax it, SCF failed, ...) is NaN, excluded and counted (``n_failed``), never imputed. Binary metrics (0/1)
follow the evaluate stage: a failed sample counts as not stable / not valid, as in EDM, and a DFT row that did
not converge (or ran out of time) as not converged, so they have no NaN rows; the one exception is uniqueness,
a proportion among the valid molecules, whose invalid molecules are excluded (counted in ``n_failed``).

One row per (metric, model): both groups' means with bootstrap intervals, the difference of means
(model - baseline) with its bootstrap interval, Welch's t test and the Mann-Whitney U test; for a paired model
(the same mol_id and sampling noise, :mod:`elign.stats.paired`) also the paired difference, paired t test and
power figures. DFT rows are paired when the model is and both DFT tables hold the same mol_ids (the workflow
computes the baseline's selection for every model sampled with its noise); their rows are matched by mol_id.
The bootstrap streams are seeded from (seed, metric, name), so a row does not change when models are added or
removed.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Collection
from dataclasses import dataclass

import numpy as np
import pandas as pd

from elign.stats.display import display_table, markdown_table, method_line  # noqa: F401 (their old home)
from elign.stats.inference import (
    Cleaned,
    bootstrap_diff_ci,
    bootstrap_mean_ci,
    drop_failed,
    mann_whitney_test,
    welch_test,
)
from elign.stats.paired import UNPAIRED, paired_columns


@dataclass(frozen=True)
class MetricSpec:
    key: str  # statistics-table name, units in the name
    label: str  # human-readable
    source: str  # "metrics" (evaluate Parquet) or "dft" (DFT Parquet)
    kind: str  # "continuous" or "binary"
    unit: str
    extract: Callable[[pd.DataFrame], np.ndarray | None]  # per-molecule values (NaN = failed); None = absent
    pairable: bool = True  # False: a set-level property (uniqueness) with no per-molecule pairing


def _ok_column(frame: pd.DataFrame, status: str, column: str) -> np.ndarray | None:
    if status not in frame or column not in frame:
        return None
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return np.where(frame[status].to_numpy() == "ok", values, np.nan)


def _relaxed(column: str):
    """A DFT relaxation column over the converged relaxations; None (no row) when no relaxation was asked for."""

    def extract(frame: pd.DataFrame) -> np.ndarray | None:
        if "relax_status" not in frame or not (frame["relax_status"].fillna("skipped") != "skipped").any():
            return None
        return _ok_column(frame, "relax_status", column)

    return extract


def _binary(column: str):
    def extract(frame: pd.DataFrame) -> np.ndarray | None:
        if column not in frame:
            return None
        return frame[column].fillna(False).astype(bool).to_numpy(dtype=np.float64)

    return extract


def valid_and_unique(frame: pd.DataFrame) -> np.ndarray | None:
    """1 for a valid molecule whose SMILES is the first occurrence among the valid ones; its mean is the
    evaluate stage's ``valid_and_unique`` (unique valid SMILES / all molecules)."""
    if "valid" not in frame or "smiles" not in frame:
        return None
    valid = frame["valid"].fillna(False).astype(bool).to_numpy()
    first = np.zeros(len(frame), dtype=bool)
    first[valid] = ~frame.loc[valid, "smiles"].duplicated().to_numpy()
    return first.astype(np.float64)


def unique_among_valid(frame: pd.DataFrame) -> np.ndarray | None:
    """1 for a valid molecule whose SMILES is the first among the valid ones, 0 for a repeat, NaN for an invalid
    molecule; its mean over the valid ones is the evaluate stage's ``uniqueness`` (unique valid / valid)."""
    first = valid_and_unique(frame)
    if first is None:
        return None
    return np.where(frame["valid"].fillna(False).astype(bool).to_numpy(), first, np.nan)


def dft_converged(frame: pd.DataFrame) -> np.ndarray | None:
    """1 where the DFT row has status ok (SCF converged, forces computed), 0 otherwise (not converged, timeout,
    error): its mean is the converged fraction of the DFT subset."""
    if "status" not in frame:
        return None
    return (frame["status"].to_numpy() == "ok").astype(np.float64)


def atom_stable_fraction(frame: pd.DataFrame) -> np.ndarray | None:
    if "num_stable_atoms" not in frame or "num_atoms" not in frame:
        return None
    n = frame["num_atoms"].to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, frame["num_stable_atoms"].to_numpy(dtype=np.float64) / n, np.nan)


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec(
        "dft_formation_energy_per_atom_ev",
        "DFT formation energy per atom",
        "dft",
        "continuous",
        "eV/atom",
        lambda f: _ok_column(f, "status", "formation_energy_per_atom_ev"),
    ),
    MetricSpec(
        "dft_force_rms_ev_per_ang",
        "DFT force RMS",
        "dft",
        "continuous",
        "eV/Å",
        lambda f: _ok_column(f, "status", "force_rms_ev_per_ang"),
    ),
    MetricSpec(
        "mlff_force_rms_ev_per_ang",
        "MLFF force RMS",
        "metrics",
        "continuous",
        "eV/Å",
        lambda f: _ok_column(f, "mlff_status", "force_rms_ev_per_ang"),
    ),
    MetricSpec(
        "mlff_formation_energy_per_atom_ev",
        "MLFF formation energy per atom",
        "metrics",
        "continuous",
        "eV/atom",
        lambda f: _ok_column(f, "mlff_status", "formation_energy_per_atom_ev"),
    ),
    MetricSpec("dft_converged", "DFT converged", "dft", "binary", "proportion", dft_converged),
    MetricSpec(
        "dft_relaxation_energy_kcal_mol",
        "DFT relaxation energy",
        "dft",
        "continuous",
        "kcal/mol",
        _relaxed("relaxation_energy_kcal_mol"),
    ),
    MetricSpec(
        "dft_relax_steps",
        "DFT relaxation steps to converge",
        "dft",
        "continuous",
        "steps",
        _relaxed("relax_steps"),
    ),
    MetricSpec(
        "dft_relax_heavy_rmsd_ang",
        "heavy-atom RMSD to the DFT-relaxed geometry",
        "dft",
        "continuous",
        "Å",
        _relaxed("relax_heavy_rmsd_ang"),
    ),
    MetricSpec(
        "relaxation_energy_kcal_mol",
        "MLFF relaxation energy",
        "metrics",
        "continuous",
        "kcal/mol",
        lambda f: _ok_column(f, "relax_status", "relaxation_energy_kcal_mol"),
    ),
    MetricSpec(
        "relax_heavy_rmsd_ang",
        "heavy-atom RMSD to the relaxed geometry",
        "metrics",
        "continuous",
        "Å",
        lambda f: _ok_column(f, "relax_status", "relax_heavy_rmsd_ang"),
    ),
    MetricSpec(
        "atom_stable_fraction", "atom stability per molecule", "metrics", "continuous", "fraction", atom_stable_fraction
    ),
    MetricSpec("molecule_stable", "molecule stability", "metrics", "binary", "proportion", _binary("molecule_stable")),
    MetricSpec("valid", "RDKit validity", "metrics", "binary", "proportion", _binary("valid")),
    MetricSpec("valid_and_unique", "valid and unique", "metrics", "binary", "proportion", valid_and_unique, False),
    MetricSpec("uniqueness", "uniqueness among valid", "metrics", "binary", "proportion", unique_among_valid, False),
)

COLUMNS = (
    "metric",
    "label",
    "kind",
    "unit",
    "source",
    "baseline",
    "model",
    "n_used_baseline",
    "n_failed_baseline",
    "n_used",
    "n_failed",
    "mean_baseline",
    "ci_low_baseline",
    "ci_high_baseline",
    "mean",
    "ci_low",
    "ci_high",
    "mean_diff",
    "diff_ci_low",
    "diff_ci_high",
    "welch_t",
    "welch_p",
    "mannwhitney_u",
    "mannwhitney_p",
    *UNPAIRED,
    "n_bootstrap",
    "confidence",
    "ci_method",
    "note",
)


@dataclass(frozen=True)
class BootstrapSettings:
    n_resamples: int = 10000
    confidence: float = 0.95
    method: str = "percentile"
    seed: int = 0
    power: float = 0.8  # of the detectable difference stated for a paired test

    def rng(self, *keys: str) -> np.random.Generator:
        """A generator seeded from (seed, keys): stable per metric and name, independent of table order."""
        return np.random.default_rng([self.seed, *(zlib.crc32(k.encode()) for k in keys)])


def _group_ci(
    c: Cleaned, spec: MetricSpec, name: str, bs: BootstrapSettings, cache: dict | None = None
) -> tuple[float, float]:
    """Interval of one group's mean; ``cache`` (keyed by metric and name) saves the baseline's recomputation."""
    key = (spec.key, name)
    if cache is not None and key in cache:
        return cache[key]
    ci = bootstrap_mean_ci(c.values, bs.n_resamples, bs.confidence, bs.rng(spec.key, name), bs.method)
    if cache is not None:
        cache[key] = ci
    return ci


def _note(base: Cleaned, other: Cleaned) -> str:
    notes = []
    for who, c in (("baseline", base), ("model", other)):
        if c.n_used == 0:
            notes.append(f"{who}: no usable rows")
        elif c.n_used < 2:
            notes.append(f"{who}: one usable row")
    if not notes and np.ptp(base.values) == 0 and np.ptp(other.values) == 0:
        notes.append("both groups constant: Welch t undefined, p is its limit")
    return "; ".join(notes)


def compare(
    spec: MetricSpec,
    baseline: str,
    base_values,
    model: str,
    model_values,
    bs: BootstrapSettings,
    cache: dict | None = None,
    paired: bool = False,
) -> dict:
    """One statistics row: ``model`` against ``baseline`` on one metric (values: per molecule, NaN = failed).

    ``paired``: molecule i of both sets shares its sampling noise (:mod:`elign.stats.paired`), so the row also
    gets the paired difference, its interval over resampled pairs and the paired t test."""
    base, other = drop_failed(base_values), drop_failed(model_values)
    b_lo, b_hi = _group_ci(base, spec, baseline, bs, cache)
    m_lo, m_hi = _group_ci(other, spec, model, bs)
    d_lo, d_hi = bootstrap_diff_ci(
        base.values, other.values, bs.n_resamples, bs.confidence, bs.rng(spec.key, model, "minus", baseline), bs.method
    )
    welch, mw = welch_test(base.values, other.values), mann_whitney_test(base.values, other.values)
    diff = other.mean - base.mean if base.n_used and other.n_used else math.nan
    return {
        "metric": spec.key,
        "label": spec.label,
        "kind": spec.kind,
        "unit": spec.unit,
        "source": spec.source,
        "baseline": baseline,
        "model": model,
        "n_used_baseline": base.n_used,
        "n_failed_baseline": base.n_failed,
        "n_used": other.n_used,
        "n_failed": other.n_failed,
        "mean_baseline": base.mean,
        "ci_low_baseline": b_lo,
        "ci_high_baseline": b_hi,
        "mean": other.mean,
        "ci_low": m_lo,
        "ci_high": m_hi,
        "mean_diff": diff,
        "diff_ci_low": d_lo,
        "diff_ci_high": d_hi,
        "welch_t": welch.statistic,
        "welch_p": welch.p_value,
        "mannwhitney_u": mw.statistic,
        "mannwhitney_p": mw.p_value,
        **(
            paired_columns(
                base_values,
                model_values,
                bs.n_resamples,
                bs.confidence,
                bs.rng(spec.key, model, "paired"),
                bs.method,
                bs.power,
            )
            if paired and spec.pairable
            else UNPAIRED
        ),
        "n_bootstrap": bs.n_resamples,
        "confidence": bs.confidence,
        "ci_method": bs.method,
        "note": _note(base, other),
    }


def statistics_table(
    metrics: dict[str, pd.DataFrame],
    dft: dict[str, pd.DataFrame],
    baseline: str,
    bs: BootstrapSettings,
    specs: tuple[MetricSpec, ...] = METRICS,
    paired_models: Collection[str] = (),
) -> pd.DataFrame:
    """Rows for every metric and every model other than ``baseline`` (in the inputs' order).

    paired_models: models whose evaluate rows share the baseline's sampling noise row by row
    (:func:`elign.stats.paired.paired_design`); their ``metrics`` rows get paired columns as well, and their
    ``dft`` rows too when both DFT tables hold the same mol_ids (:func:`align_by_mol_id`).

    metrics / dft: per-molecule frames by name. A metric whose columns a frame lacks (e.g. no MLFF in the
    evaluate run), or whose source has no frame for the baseline or the model, gives no row.
    """
    if baseline not in metrics and baseline not in dft:
        raise ValueError(
            f"the baseline model {baseline!r} is not among the inputs "
            f"({sorted(set(metrics) | set(dft))}); set report.baseline_model or pass its files"
        )
    models = [m for m in dict.fromkeys([*metrics, *dft]) if m != baseline]
    rows, cache = [], {}
    for spec in specs:
        frames = metrics if spec.source == "metrics" else dft
        if baseline not in frames:
            continue
        base_values = spec.extract(frames[baseline])
        for model in models:
            if model not in frames or base_values is None:
                continue
            frame, paired = frames[model], model in paired_models
            if spec.source == "dft":
                aligned = align_by_mol_id(frames[baseline], frame) if paired else None
                frame, paired = (frame, False) if aligned is None else (aligned, True)
            values = spec.extract(frame)
            if values is not None:
                rows.append(compare(spec, baseline, base_values, model, values, bs, cache, paired))
    return pd.DataFrame(rows, columns=list(COLUMNS))


def align_by_mol_id(baseline: pd.DataFrame, model: pd.DataFrame) -> pd.DataFrame | None:
    """``model``'s rows in the order of ``baseline``'s mol_ids, or None unless both hold the same mol_ids once
    each (then molecule i of the two frames is the same mol_id: a pair)."""
    if "mol_id" not in baseline or "mol_id" not in model:
        return None
    a, b = baseline["mol_id"].to_numpy(), model["mol_id"].to_numpy()
    if len(a) != len(b) or len(set(a.tolist())) != len(a) or set(a.tolist()) != set(b.tolist()):
        return None
    return model.set_index("mol_id", drop=False).loc[a].reset_index(drop=True)
