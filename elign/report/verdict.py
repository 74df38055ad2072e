"""The report's opening words: the DFT verdict in one or two sentences, generated from the statistics table.

For each model compared with the baseline (the first paired one, else the first one), one sentence per DFT
quantity (force RMS, formation energy per atom): what changed, by how much, and how sure: the paired
difference with its bootstrap interval, the paired t test's p and the number of pairs. A change is called
clear only when the interval excludes zero and p < 1 - confidence; otherwise the sentence gives the smallest
difference the test would have detected (:mod:`elign.stats.power`). A model without paired DFT rows gets the
difference of means and Welch's p, and says that its molecules differ. Nothing is said that the table does
not hold.
"""

from __future__ import annotations

import math

import pandas as pd

from elign.report.headline import num, p_text

QUANTITIES = (
    ("dft_force_rms_ev_per_ang", "DFT force RMS", "eV/Å"),
    ("dft_formation_energy_per_atom_ev", "DFT formation energy per atom", "eV/atom"),
)


def _paired(row: pd.Series) -> bool:
    value = row.get("paired", False)
    return bool(value) and str(value).lower() not in ("false", "nan")


def _dft_rows(statistics: pd.DataFrame | None, baseline: str) -> dict[str, dict[str, pd.Series]]:
    """{model: {metric: row}} of the DFT quantities against ``baseline``."""
    if statistics is None or statistics.empty or "metric" not in statistics:
        return {}
    keys = [k for k, _, _ in QUANTITIES]
    rows = statistics[(statistics["baseline"] == baseline) & statistics["metric"].isin(keys)]
    out: dict[str, dict[str, pd.Series]] = {}
    for _, r in rows.iterrows():
        out.setdefault(str(r["model"]), {})[str(r["metric"])] = r
    return out


def _change(row: pd.Series, label: str, unit: str, confidence: float) -> str:
    """One clause: '<label> is 0.21 eV/Å lower (95 % interval [...], paired p 0.004, 40 pairs ...)' or 'no clear
    change ...'."""
    paired = _paired(row)
    d, lo, hi, p = (
        (row["paired_diff"], row["paired_ci_low"], row["paired_ci_high"], row["paired_p"])
        if paired
        else (row["mean_diff"], row["diff_ci_low"], row["diff_ci_high"], row["welch_p"])
    )
    d, lo, hi, p = (float(v) for v in (d, lo, hi, p))
    if not math.isfinite(d):
        return f"{label} cannot be compared (too few converged molecules)"
    conf = f"{100 * confidence:g} %"
    how = (
        f"paired {p_text(p)}, {int(row['n_pairs'])} pairs of the same molecules"
        if paired
        else f"Welch {p_text(p)}, different molecules of the same sizes"
    )
    interval = f"[{num(lo, 2)}, {num(hi, 2)}]"
    clear = math.isfinite(lo) and math.isfinite(hi) and (lo > 0 or hi < 0) and p < 1 - confidence
    if clear:  # both the interval and the test: a bootstrap over a handful of pairs is too narrow on its own
        word = "lower" if d < 0 else "higher"
        return f"{label} is {num(abs(d), 2)} {unit} {word} ({conf} interval {interval}, {how})"
    detect = float(row.get("detectable_diff", math.nan)) if paired else math.nan
    power = float(row.get("power", math.nan)) if paired else math.nan
    tail = (
        f"; the test would detect a change of {num(detect, 2)} {unit} with {100 * power:g} % power"
        if math.isfinite(detect) and math.isfinite(power)
        else ""
    )
    return f"{label} shows no clear change (Δ {num(d, 2)} {unit}, {conf} interval {interval}, {how}{tail})"


def verdict(statistics: pd.DataFrame | None, baseline: str, confidence: float) -> str:
    """One or two sentences: the DFT verdict of the first paired model (else the first model) against the baseline."""
    rows = _dft_rows(statistics, baseline)
    if not rows:
        return "No DFT verdict: the statistics table has no DFT rows."
    paired = [m for m, r in rows.items() if any(_paired(x) for x in r.values())]
    model = (paired or list(rows))[0]
    clauses = [
        _change(rows[model][key], label, unit, confidence) for key, label, unit in QUANTITIES if key in rows[model]
    ]
    if not clauses:
        return "No DFT verdict: the statistics table has no DFT rows."
    first = f"At the DFT level, {model} against {baseline}: {clauses[0]}."
    return first if len(clauses) == 1 else f"{first} {clauses[1][0].upper()}{clauses[1][1:]}."


def power_table(statistics: pd.DataFrame | None, baseline: str) -> pd.DataFrame | None:
    """The DFT rows' power figures: n pairs (and dropped), SD of the paired differences, detectable difference;
    None when no DFT row is paired."""
    if statistics is None or statistics.empty or "metric" not in statistics or "paired_sd" not in statistics:
        return None
    rows = statistics[
        (statistics["baseline"] == baseline)
        & statistics["source"].eq("dft")
        & statistics["paired"].map(lambda v: _paired(pd.Series({"paired": v})))
        & (statistics["n_pairs"] > 0)
    ]
    if rows.empty:
        return None
    return pd.DataFrame(
        {
            "metric": [f"{lab} ({u})" for lab, u in zip(rows["label"], rows["unit"])],
            "model vs baseline": [f"{m} vs {baseline}" for m in rows["model"]],
            "pairs used": rows["n_pairs"].astype(int).to_numpy(),
            "pairs dropped (a failure on either side)": rows["n_pairs_dropped"].astype(int).to_numpy(),
            "SD of paired differences": [num(v, 3) for v in rows["paired_sd"]],
            "paired difference": [num(v, 3) for v in rows["paired_diff"]],
            "detectable difference": [
                f"{num(d, 3)} at {100 * float(p):g} % power" for d, p in zip(rows["detectable_diff"], rows["power"])
            ],
        }
    )
