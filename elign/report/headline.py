"""The report's first screen: one table that answers "did alignment help, and at what cost?".

One row per evaluated set in the order given (the data reference first, then pretrained, aligned, guided);
one column per headline metric. Each cell holds the set's value and, for every model other than the baseline
(``report.baseline_model``, pretrained), its difference from the baseline with the confidence interval and
p-value of the statistics table (``elign stats``: bootstrap interval of the difference of means, Welch's t
test; for a model sampled with the baseline's noise, molecule by molecule, the paired difference and paired t
test of :mod:`elign.stats.paired`, marked ‡; its DFT cells also give the number of pairs and the smallest
difference the test detects at ``report.power``). Paired means the same mol_id and sampling noise: the aligned
model's molecules and its DFT rows (the mol_ids chosen once from the baseline's sample). Sampling cost is
compared as the ratio of paired timing repeats (geometric mean, t interval and paired t test on log
times: :func:`elign.stats.inference.ratio_inference`).
A value or comparison that does not exist (no DFT for the reference, a metric the statistics table lacks) is
"–", never made up.

Values are the metric table's (:func:`elign.report.tables.metric_table`): proportions pooled as the evaluate
stage defines them and means over the molecules that were scored. The statistics compare per-molecule
values, so a Δ equals the difference of the shown values, except for atom stability (EDM's pooled fraction of
stable atoms shown; Δ of the per-molecule fraction).
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field

import pandas as pd

from elign.stats.inference import ratio_inference


@dataclass(frozen=True)
class Column:
    key: str  # column of the metric table holding the value
    label: str  # header (short: the table must fit a laptop screen)
    unit: str
    stat: str | None  # metric key of the statistics table for Δ; None = sampling-time ratio
    percent: bool = False  # a proportion, shown in %; Δ in percentage points


COLUMNS: tuple[Column, ...] = (
    Column("molecule_stability", "molecule stable", "%", "molecule_stable", True),
    Column("atom_stability", "atom stable", "%", "atom_stable_fraction", True),
    Column("validity", "valid", "%", "valid", True),
    Column("uniqueness", "unique (of valid)", "%", "uniqueness", True),
    Column("mlff_force_rms_ev_per_ang_mean", "MLFF force RMS", "eV/Å", "mlff_force_rms_ev_per_ang"),
    Column("relaxation_energy_kcal_mol_mean", "MLFF relaxation energy", "kcal/mol", "relaxation_energy_kcal_mol"),
    Column("dft_force_rms_ev_per_ang_mean", "DFT force RMS", "eV/Å", "dft_force_rms_ev_per_ang"),
    Column(
        "dft_formation_energy_per_atom_ev_mean", "DFT formation energy", "eV/atom", "dft_formation_energy_per_atom_ev"
    ),
    Column("dft_converged_fraction", "DFT converged", "%", "dft_converged", True),
    Column("sampling_seconds_per_molecule", "sampling cost", "s/molecule", None),
)
DASH = "–"
PAIRED_MARK = "‡"  # a paired test (the model was sampled with the baseline's noise, molecule by molecule)
NO_COMPARISON = {
    "diff": math.nan,
    "ci_low": math.nan,
    "ci_high": math.nan,
    "p_value": math.nan,
    "test": "",
    "n_pairs": 0,
    "detectable_diff": math.nan,
}


@dataclass
class Cell:
    value: str = DASH
    diff: str = ""  # "Δ −1.9 [−3.1, −0.7]" or "×1.05 [1.01, 1.10]"; "" for the baseline and the reference
    p: str = ""  # "p 0.003"; "p 0.003 ‡" for a paired test
    power: str = ""  # paired DFT cells: "40 pairs, detects 0.19"


@dataclass
class Headline:
    names: list[str]
    cells: list[list[Cell]]  # [row][column]
    baseline: str
    confidence: float
    long: pd.DataFrame = field(default_factory=pd.DataFrame)  # the numbers: one row per (set, metric)
    dft_level: str | None = None  # the DFT stage's level in words (dft_level_text), None = not recorded


def num(value, digits: int = 3) -> str:
    """Compact: ``digits`` significant digits (no exponent for |v| >= 1e-3), a true minus sign, "–" if missing."""
    if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
        return DASH
    if value != 0 and abs(value) < 1e-3:
        text = f"{value:.{digits - 1}e}"
    elif abs(value) >= 10**digits:
        text = f"{value:.0f}"
    else:
        text = f"{value:.{digits}g}"
        if "e" in text:
            text = f"{value:.0f}"
    return text.replace("-", "−")


def p_text(p) -> str:
    if p is None or not math.isfinite(p):
        return ""
    return "p < 0.0001" if p < 1e-4 else f"p {p:.2g}" if p < 0.01 else f"p {p:.2f}"


def _scaled(value, col: Column) -> float:
    v = float(value) if value is not None else math.nan
    return 100 * v if col.percent else v


def _stat_rows(statistics: pd.DataFrame | None, baseline: str) -> dict[tuple[str, str], pd.Series]:
    if statistics is None or statistics.empty or not {"metric", "model", "baseline"} <= set(statistics.columns):
        return {}
    rows = statistics[statistics["baseline"] == baseline]
    return {(r["metric"], r["model"]): r for _, r in rows.iterrows()}


def timing_ratios(timing: dict | None, name: str, baseline: str) -> list[float]:
    """Per-repeat time ratios of ``name`` to ``baseline`` from the time_sampling JSON (reps are interleaved, so
    repeat r of both ran side by side); a hook acting on a fraction f of the steps counts as in
    :func:`elign.diffusion.timing.time_models`: f * t_model / t_base + (1 - f)."""
    models = (timing or {}).get("models") or {}
    if name not in models or baseline not in models:
        return []
    m, b = models[name].get("reps_s") or [], models[baseline].get("reps_s") or []
    if len(m) != len(b):
        return []
    f = float(models[name].get("hook_fraction", 1.0))
    return [f * tm / tb + (1 - f) for tm, tb in zip(m, b) if tb > 0]


def _compare(col: Column, name: str, stats: dict, timing: dict | None, baseline: str, confidence: float) -> dict:
    """{diff, ci_low, ci_high, p_value, test} of ``name`` against the baseline on one column (NaNs if none)."""
    if col.stat is None:
        r = ratio_inference(timing_ratios(timing, name, baseline), confidence)
        return {
            "diff": r.ratio,
            "ci_low": r.ci_low,
            "ci_high": r.ci_high,
            "p_value": r.p_value,
            "test": f"ratio of {r.n} paired repeats (paired t on log times)",
        }
    row = stats.get((col.stat, name))
    if row is None:
        return dict(NO_COMPARISON)
    k = 100.0 if col.percent else 1.0
    if _is_paired(row):  # sampled with the baseline's noise: the paired difference and test (elign.stats.paired)
        return {
            "diff": k * float(row["paired_diff"]),
            "ci_low": k * float(row["paired_ci_low"]),
            "ci_high": k * float(row["paired_ci_high"]),
            "p_value": float(row["paired_p"]),
            "test": f"paired t over {int(row['n_pairs'])} pairs",
            "n_pairs": int(row["n_pairs"]),
            "detectable_diff": k * float(row.get("detectable_diff", math.nan)),
        }
    return {
        "diff": k * float(row["mean_diff"]),
        "ci_low": k * float(row["diff_ci_low"]),
        "ci_high": k * float(row["diff_ci_high"]),
        "p_value": float(row["welch_p"]),
        "test": "Welch t",
        "n_pairs": 0,
        "detectable_diff": math.nan,
    }


def _is_paired(row: pd.Series) -> bool:
    """A statistics row with paired columns (older tables have none: unpaired)."""
    value = row.get("paired", False)
    return bool(value) and str(value).lower() not in ("false", "nan")


def _cell(value: float, cmp: dict | None, col: Column) -> Cell:
    cell = Cell(num(value, 3))
    if cmp is None:
        return cell
    if col.stat is None:
        diff = f"×{num(cmp['diff'])} [{num(cmp['ci_low'])}, {num(cmp['ci_high'])}]"
    else:
        sign = "+" if math.isfinite(cmp["diff"]) and cmp["diff"] > 0 else ""
        diff = f"Δ {sign}{num(cmp['diff'], 2)} [{num(cmp['ci_low'], 2)}, {num(cmp['ci_high'], 2)}]"
    cell.diff = diff if math.isfinite(cmp["diff"]) else f"{'×' if col.stat is None else 'Δ'} {DASH}"
    cell.p = p_text(cmp["p_value"])
    if cell.p and cmp["test"].startswith("paired t "):
        cell.p += f" {PAIRED_MARK}"
    if str(col.stat).startswith("dft_") and math.isfinite(cmp.get("detectable_diff", math.nan)):
        cell.power = f"{cmp['n_pairs']} pairs, detects {num(cmp['detectable_diff'], 2)}"
    return cell


def dft_level_text(level: dict | None) -> str | None:
    """The DFT level of a results file's provenance (:meth:`elign.dft.level.DftLevel.describe`) in words."""
    if not level:
        return None
    fitting = ", density fitting" if level.get("density_fit") else ""
    return (
        f"{level.get('functional')} / {level.get('basis')} ({level.get('basis_convention')} basis convention"
        f"{fitting}, grid {level.get('grid_level')}), SCF at most {level.get('max_cycles')} DIIS + "
        f"{level.get('newton_cycles')} Newton cycles"
    )


def build_headline(
    table: pd.DataFrame,
    statistics: pd.DataFrame | None,
    timing: dict | None,
    baseline: str,
    confidence: float,
    dft_level: str | None = None,
) -> Headline:
    """The headline from the metric table (one row per set), the statistics table and the timing JSON."""
    stats = _stat_rows(statistics, baseline)
    names = [str(n) for n in table["model"]] if "model" in table else []
    known = {model for _, model in stats} | set((timing or {}).get("models") or {})
    compared = {n for n in names if n != baseline and n in known}  # the models; not the data reference
    cells, long = [], []
    for i, name in enumerate(names):
        row = []
        for col in COLUMNS:
            value = _scaled(table[col.key].iloc[i], col) if col.key in table else math.nan
            cmp = _compare(col, name, stats, timing, baseline, confidence) if name in compared else None
            row.append(_cell(value, cmp, col))
            long.append({"set": name, "metric": col.key, "unit": col.unit, "value": value, **(cmp or NO_COMPARISON)})
        cells.append(row)
    return Headline(names, cells, baseline, confidence, pd.DataFrame(long), dft_level)


def caption(h: Headline) -> str:
    conf = f"{100 * h.confidence:g} %"
    return (
        f"Each model against {h.baseline}: Δ = model − {h.baseline} [{conf} bootstrap interval] and the Welch "
        f"t test p-value, from the statistics table below; {PAIRED_MARK} marks a paired comparison (the same "
        f"mol_id and sampling noise: a model sampled with {h.baseline}'s noise, molecule by molecule: mean of the "
        "per-molecule differences, pairs resampled, paired t test; the statistics table also gives Welch's test "
        f"for it). DFT: the same mol_ids for every model sampled with {h.baseline}'s noise, chosen once from "
        f"{h.baseline}'s sample; a paired DFT cell gives the pairs with both sides converged and the smallest "
        "difference the paired test detects at the report's power; a model sampled with other noise (the guided "
        "baseline) gets other molecules of the same sizes, unpaired. Proportions in %, their Δ in percentage points; "
        "atom stability is EDM's pooled fraction, its Δ that of the per-molecule fraction. Sampling cost: "
        f"seconds per molecule and × = time ratio to {h.baseline} over paired repeats [{conf} t interval, "
        "paired t test on log times]. MLFF columns: mean over the molecules the force field could score or "
        "relax; relaxation energy = E(sample) − E(relaxed), FIRE with a step cap (a lower bound where it did "
        "not converge). DFT columns: the DFT subset; energies and forces over converged rows. "
        f"DFT level: {h.dft_level or 'not recorded'}. reference = the data split."
    )


def headline_markdown(h: Headline) -> str:
    head = "| set | " + " | ".join(f"{c.label} ({c.unit})" for c in COLUMNS) + " |"
    rule = "|" + "---|" * (len(COLUMNS) + 1)
    lines = [head, rule]
    for name, row in zip(h.names, h.cells):
        parts = [
            " ".join(
                x for x in (c.value, f"({', '.join(y for y in (c.diff, c.p, c.power) if y)})" if c.diff else "") if x
            )
            for c in row
        ]
        lines.append(f"| {name} | " + " | ".join(parts) + " |")
    return "\n".join(lines) + "\n\n" + caption(h) + "\n"


def headline_html(h: Headline) -> str:
    """``<table id="headline-table">``: value, Δ [CI] and p stacked in each cell (narrow columns, no scrolling)."""
    e = html.escape
    head = "".join(f"<th>{e(c.label)}<br><small>{e(c.unit)}</small></th>" for c in COLUMNS)
    body = []
    for name, row in zip(h.names, h.cells):
        tds = []
        for c in row:
            extra = (
                (f'<span class="d">{e(c.diff)}</span>' if c.diff else "")
                + (f'<span class="p">{e(c.p)}</span>' if c.p else "")
                + (f'<span class="p">{e(c.power)}</span>' if c.power else "")
            )
            tds.append(f'<td><span class="v">{e(c.value)}</span>{extra}</td>')
        body.append(f'<tr><th scope="row">{e(name)}</th>{"".join(tds)}</tr>')
    return (
        f'<table id="headline-table"><thead><tr><th>set</th>{head}</tr></thead>'
        f'<tbody>{"".join(body)}</tbody></table><p class="caption">{e(caption(h))}</p>'
    )
