"""The report's metric table: one row per evaluate name (the data reference first, then the models).

Columns: the evaluate stage's summary (:func:`elign.metrics.evaluate.summarize`, recomputed from the
per-molecule Parquet, so it equals ``summary.csv``; with the relaxation columns when the evaluate stage relaxed),
then the DFT subset (ok / failed counts, converged fraction, mean force RMS and formation energy per atom over
the ok rows) and the controlled sampling time (``time_sampling``).
Missing parts are NaN (shown as "–"), never made up.
"""

from __future__ import annotations

import math

import pandas as pd

from elign.metrics import evaluate as metrics_evaluate

#: the summary columns the report's metrics table shows (not the run's name, SEMs or failure counts)
SUMMARY_COLUMNS = tuple(
    c
    for c in metrics_evaluate.SUMMARY_COLUMNS
    if c not in ("model", "force_rms_ev_per_ang_sem", "mlff_failures", "relax_failures")
)
RENAME = {
    "formation_energy_per_atom_ev_mean": "mlff_formation_energy_per_atom_ev_mean",
    "force_rms_ev_per_ang_mean": "mlff_force_rms_ev_per_ang_mean",
}
DFT_COLUMNS = (
    "dft_ok",
    "dft_failed",
    "dft_converged_fraction",
    "dft_force_rms_ev_per_ang_mean",
    "dft_formation_energy_per_atom_ev_mean",
)
TIMING_COLUMNS = ("sampling_seconds_per_molecule", "sampling_time_ratio_vs_pretrained")


def _summary_row(frame: pd.DataFrame, name: str) -> dict:
    from elign.metrics.evaluate import summarize

    row = summarize(frame, name)
    return {RENAME.get(c, c): row.get(c, math.nan) for c in SUMMARY_COLUMNS}


def _dft_row(frame: pd.DataFrame | None) -> dict:
    if frame is None:
        return dict.fromkeys(DFT_COLUMNS, math.nan)
    ok = frame[frame["status"] == "ok"]

    def mean(col: str) -> float:
        v = pd.to_numeric(ok[col], errors="coerce").dropna()
        return float(v.mean()) if len(v) else math.nan

    return {
        "dft_ok": int(len(ok)),
        "dft_failed": int(len(frame) - len(ok)),
        "dft_converged_fraction": len(ok) / len(frame) if len(frame) else math.nan,
        "dft_force_rms_ev_per_ang_mean": mean("force_rms_ev_per_ang"),
        "dft_formation_energy_per_atom_ev_mean": mean("formation_energy_per_atom_ev"),
    }


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _timing_row(timing: dict | None, name: str) -> dict:
    models = (timing or {}).get("models") or {}
    ratios = (timing or {}).get("ratio_vs_pretrained") or {}
    entry = models.get(name) or {}
    ratio = ratios.get(name, 1.0 if entry and name == "pretrained" else None)
    return {
        "sampling_seconds_per_molecule": _float(entry.get("seconds_per_molecule")),
        "sampling_time_ratio_vs_pretrained": _float(ratio),
    }


def metric_table(metrics: dict[str, pd.DataFrame], dft: dict[str, pd.DataFrame], timing: dict | None) -> pd.DataFrame:
    """The metric table (names in the order of ``metrics``, then DFT-only models)."""
    names = list(dict.fromkeys([*metrics, *dft]))
    rows = []
    for name in names:
        row = {"model": name}
        if name in metrics:
            row.update(_summary_row(metrics[name], name))
        else:
            row.update({RENAME.get(c, c): math.nan for c in SUMMARY_COLUMNS})
        row.update(_dft_row(dft.get(name)))
        row.update(_timing_row(timing, name))
        rows.append(row)
    columns = ["model", *(RENAME.get(c, c) for c in SUMMARY_COLUMNS), *DFT_COLUMNS, *TIMING_COLUMNS]
    return pd.DataFrame(rows, columns=columns)


COUNT_COLUMNS = ("num_molecules", "dft_ok", "dft_failed", "relax_num_scored")


def _fmt(value, count: bool = False) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if count:
        return str(int(value))
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def display(table: pd.DataFrame) -> pd.DataFrame:
    """Values as strings (4 significant digits, counts as integers, "–" where missing)."""
    return pd.DataFrame({col: [_fmt(v, col in COUNT_COLUMNS) for v in table[col]] for col in table.columns})


def display_long(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`display` turned on its side: one row per metric, one column per set (fits a narrow screen)."""
    shown = display(table)
    if "model" not in shown or shown.empty:
        return pd.DataFrame({"metric": [c for c in shown.columns if c != "model"]})
    long = shown.set_index("model").T.reset_index().rename(columns={"index": "metric"})
    long.columns.name = None
    return long


BACKBONE_METRICS = (
    ("atom_stability", "atom stability"),
    ("molecule_stability", "molecule stability"),
    ("validity", "validity"),
    ("uniqueness", "uniqueness"),
    ("novelty", "novelty"),
)


def backbone_section(backbone: dict | None, pretrained: pd.DataFrame | None) -> tuple[str, pd.DataFrame] | None:
    """(intro, table) of where the pretrained model came from: for a shipped backbone its card's sample
    quality beside this run's own pretrained samples; None without a backbone record."""
    from elign.metrics.evaluate import summarize

    if not backbone:
        return None
    rows = []
    if backbone.get("kind") == "shipped":
        card = backbone.get("card", {})
        m, t = card.get("metrics", {}), card.get("training", {})
        intro = (
            f"Shipped backbone `{backbone.get('name')}` (models/{backbone.get('name')}/card.md), weights sha256 "
            f"{str(backbone.get('sha256'))[:16]}…: {t.get('steps', 0):,} steps = {t.get('epochs', 0):.1f} epochs, "
            f"{t.get('train_seconds', 0) / 3600:.1f} h of training. Its card's samples beside this run's."
        )
        rows.append(
            {
                "set": f"backbone card ({m.get('num_molecules')} molecules, seed {m.get('seed')})",
                **{label: m.get(key) for key, label in BACKBONE_METRICS},
            }
        )
    elif backbone.get("kind") == "train":
        intro = f"Backbone trained in this run: {backbone.get('steps', 0):,} steps ({backbone.get('git_sha')})."
    else:
        intro = f"Backbone from {backbone.get('kind')} `{backbone.get('weights')}` (sha256 {backbone.get('sha256')})."
    if pretrained is not None and len(pretrained):
        s = summarize(pretrained, "pretrained")
        rows.append(
            {
                "set": f"this run: pretrained samples ({len(pretrained)} molecules)",
                **{label: s.get(key) for key, label in BACKBONE_METRICS},
            }
        )
    table = pd.DataFrame(rows, columns=["set"] + [label for _, label in BACKBONE_METRICS])
    for _, label in BACKBONE_METRICS:
        table[label] = [("–" if v is None or v != v else f"{100 * float(v):.1f} %") for v in table[label]]
    return intro, table
