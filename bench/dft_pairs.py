"""Plan the number of paired DFT molecules: the pair correlation, the SD of paired differences, and power.

Reads the DFT results of the baseline and of a model computed on the same mol_ids (``elign dft --selection``;
partial ``.partial.jsonl`` checkpoints of a running shard are read too), matches them by mol_id, and prints per
quantity (DFT force RMS, formation energy per atom): the number of pairs with both sides converged, each side's
SD, the Pearson correlation of the pairs with its Fisher-z 95 % interval, the SD of the paired differences, and
the smallest difference the two-sided paired t test detects at 80 % power (alpha 0.05) for each ``--pairs``
count (:func:`elign.stats.power.detectable_difference`), at the measured SD and at the SD the interval's ends of
r give (with the measured per-side SDs). Also the seconds per molecule (mean, median) of each side.

    .venv/bin/python bench/dft_pairs.py --baseline /tmp/pairexp/pretrained_dft.parquet \\
        --model /tmp/pairexp/aligned_dft.parquet --pairs 22 32 36 40 48
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

QUANTITIES = (("force_rms_ev_per_ang", "DFT force RMS (eV/Å)"), ("formation_energy_per_atom_ev", "DFT Ef/atom (eV)"))


def read_rows(path: str) -> pd.DataFrame:
    """A DFT results Parquet, or the JSON lines of a running shard's checkpoint (header line skipped)."""
    if path.endswith(".jsonl"):
        lines = Path(path).read_text().splitlines()[1:]
        rows = []
        for line in lines:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break
        return pd.DataFrame(rows)
    from elign.dft.results import read_results

    return read_results(path)[0]


def fisher_interval(r: float, n: int) -> tuple[float, float]:
    if n < 4 or not math.isfinite(r) or abs(r) >= 1:
        return math.nan, math.nan
    z, se = math.atanh(r), 1 / math.sqrt(n - 3)
    return math.tanh(z - 1.96 * se), math.tanh(z + 1.96 * se)


def report(base: pd.DataFrame, model: pd.DataFrame, pairs: list[int]) -> None:
    from elign.stats.power import detectable_difference, paired_sd

    both = base.merge(model, on="mol_id", suffixes=("_b", "_m"))
    ok = both[(both["status_b"] == "ok") & (both["status_m"] == "ok")]
    print(f"{len(both)} common mol_ids, {len(ok)} with both sides converged")
    for side in ("b", "m"):
        s, c = both[f"seconds_{side}"].dropna(), both[f"cycles_{side}"].dropna()
        print(
            f"  {side}: seconds per molecule mean {s.mean():.1f}, median {s.median():.1f}; SCF cycles mean "
            f"{c.mean():.1f}, max {c.max():.0f}; n {len(s)}"
        )
    for col, label in QUANTITIES:
        a, b = ok[f"{col}_b"].to_numpy(float), ok[f"{col}_m"].to_numpy(float)
        keep = np.isfinite(a) & np.isfinite(b)
        a, b = a[keep], b[keep]
        n = len(a)
        if n < 3:
            print(f"{label}: {n} pairs, too few")
            continue
        r = float(np.corrcoef(a, b)[0, 1])
        lo, hi = fisher_interval(r, n)
        d = b - a
        sd_a, sd_b, sd_d = float(a.std(ddof=1)), float(b.std(ddof=1)), float(d.std(ddof=1))
        print(
            f"{label}: {n} pairs; mean {a.mean():.3f} -> {b.mean():.3f}; SD {sd_a:.3f} / {sd_b:.3f}; "
            f"r {r:.3f} [{lo:.3f}, {hi:.3f}]; SD of differences {sd_d:.3f} (mean {d.mean():+.3f})"
        )
        for k in pairs:
            at = [paired_sd(sd_a, sd_b, x) for x in (r, lo, hi)]
            mdes = ", ".join(f"{detectable_difference(s, k):.3f}" for s in (sd_d, *at[1:]))
            print(f"  {k} pairs: detectable at 80 % power (measured SD; r at the interval's low, high end): {mdes}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", required=True, help="DFT results (or .partial.jsonl) of the baseline")
    p.add_argument("--model", required=True, help="DFT results (or .partial.jsonl) of the model, same mol_ids")
    p.add_argument("--pairs", type=int, nargs="+", default=[22, 32, 36, 40, 48])
    args = p.parse_args()
    report(read_rows(args.baseline), read_rows(args.model), args.pairs)


if __name__ == "__main__":
    main()
