"""The statistics table for people: mean [CI] strings, counts, p-values, the paired columns and power."""

from __future__ import annotations

import math

import pandas as pd

EMPTY_COLUMNS = [
    "metric",
    "model vs baseline",
    "n used/failed",
    "baseline mean [CI]",
    "model mean [CI]",
    "difference [CI]",
    "Welch p",
    "Mann-Whitney p",
    "paired difference [CI]",
    "paired p",
    "note",
]


def _num(v, digits: int = 4) -> str:
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{digits}g}"


def _mean_ci(mean, lo, hi) -> str:
    return f"{_num(mean)} [{_num(lo)}, {_num(hi)}]"


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The statistics table formatted for people: mean [CI] strings, n used / failed, p-values."""
    if table.empty:
        return pd.DataFrame(columns=EMPTY_COLUMNS)
    conf = f"{100 * float(table['confidence'].iloc[0]):g} %"

    def col(*names):
        return zip(*(table[n] if isinstance(n, str) else n for n in names))

    return pd.DataFrame(
        {
            "metric": [f"{lab} ({u})" for lab, u in col("label", "unit")],
            "model vs baseline": [f"{m} vs {b}" for m, b in col("model", "baseline")],
            "n used/failed": [
                f"{a}/{b} vs {c}/{d}"
                for a, b, c, d in col("n_used", "n_failed", "n_used_baseline", "n_failed_baseline")
            ],
            f"baseline mean [{conf} CI]": [
                _mean_ci(*r) for r in col("mean_baseline", "ci_low_baseline", "ci_high_baseline")
            ],
            f"model mean [{conf} CI]": [_mean_ci(*r) for r in col("mean", "ci_low", "ci_high")],
            f"difference [{conf} CI]": [_mean_ci(*r) for r in col("mean_diff", "diff_ci_low", "diff_ci_high")],
            "Welch p": [_num(p, 3) for p in table["welch_p"]],
            "Mann-Whitney p": [_num(p, 3) for p in table["mannwhitney_p"]],
            f"paired difference [{conf} CI]": [
                f"{_mean_ci(d, lo, hi)}, {_pairs(n, dropped)}; SD {_num(sd, 3)}, detects {_num(dd, 3)} "
                f"at {_num(100 * pw, 3)} % power"
                if _true(paired)
                else "–"
                for paired, n, d, lo, hi, dropped, sd, dd, pw in col(
                    "paired",
                    "n_pairs",
                    "paired_diff",
                    "paired_ci_low",
                    "paired_ci_high",
                    *_opt(table, "n_pairs_dropped", "paired_sd", "detectable_diff", "power"),
                )
            ],
            "paired p": [_num(p, 3) if _true(paired) else "–" for paired, p in col("paired", "paired_p")],
            "note": table["note"].fillna(""),
        }
    )


def _true(value) -> bool:
    return bool(value) and str(value).lower() not in ("false", "nan")


def _opt(table: pd.DataFrame, *names: str) -> list:
    """Column names, or for a column an older table lacks, a column of NaN (a zip needs equal lengths)."""
    return [n if n in table else pd.Series(math.nan, index=table.index) for n in names]


def _pairs(n, dropped) -> str:
    dropped = 0 if dropped is None or (isinstance(dropped, float) and not math.isfinite(dropped)) else int(dropped)
    return f"{int(n)} pairs" + (f" ({dropped} dropped)" if dropped else "")


def method_line(table: pd.DataFrame) -> str:
    """One sentence on how the numbers of ``table`` were made (empty for an empty table)."""
    if table.empty:
        return ""
    r = table.iloc[0]
    return (
        f"Bootstrap: {int(r['n_bootstrap'])} resamples, {r['ci_method']} intervals at "
        f"{100 * float(r['confidence']):g} %; difference = model - baseline; n used/failed is model vs "
        "baseline (failed molecules excluded, never imputed); Welch and Mann-Whitney tests are two-sided. Paired "
        "(the same mol_id and sampling noise: a model sampled with the baseline's noise, molecule by molecule, and "
        "its DFT rows of the baseline's mol_ids): mean of the per-molecule differences, pairs resampled, "
        "two-sided paired t test; a pair with a failure on either side is dropped and counted; detectable = the "
        "smallest difference the paired t test finds with the stated power at alpha = 1 - confidence."
    )


def markdown_table(table: pd.DataFrame) -> str:
    """Markdown of :func:`display_table`, after :func:`method_line`."""
    head = method_line(table)
    return (head + "\n\n" if head else "") + display_table(table).to_markdown(index=False) + "\n"
