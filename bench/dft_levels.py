"""Choose the default run's DFT level by measurement: converged fraction and cost per molecule.

For each level (``functional/basis``, the DFT stage's conventions: Gaussian's 6-31G family, density fitting),
each PySCF grid level of ``--grids`` and each molecule of the input tables,
:func:`elign.dft.pyscf_runner.single_point` runs in this process with the SCF caps given (no wall-clock limit
here: the point is to see what the caps alone bound). Reported per level and input: molecules, converged
fraction, SCF cycles (median, max), wall and CPU seconds per molecule (median, max, and the total), the basis
size, and for every grid after the first the largest energy and force-component difference to the first
grid on the same molecules. A table of generated samples (``elign sample``) is what the default run's DFT
sees; a QM9 split (minima) shows the level's floor.

    .venv/bin/python bench/dft_levels.py --input results/samples/qm9/pretrained.parquet \\
        --metrics results/metrics/qm9/pretrained.parquet --num 12 --levels "b3lypg/6-31g(2df,p)" "b3lypg/6-31g(d)"
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import numpy as np


def pick(path: str, metrics: str | None, num: int, seed: int):
    """``num`` molecules of ``path`` at random (seeded), valid ones only when ``metrics`` is given."""
    import pandas as pd

    from elign.dft.select import eligible_mask
    from elign.io.molecules import read_molecules

    table = read_molecules(path)
    ok = eligible_mask(table, pd.read_parquet(metrics) if metrics else None, valid_only=bool(metrics))
    rows = np.flatnonzero(ok)
    chosen = np.sort(np.random.default_rng(seed).choice(rows, size=min(num, rows.size), replace=False))
    return [table.molecule(int(i)) for i in chosen]


def run_level(molecules, level) -> dict:
    from elign.dft.pyscf_runner import single_point

    rows = []
    for rec in molecules:
        wall, cpu = time.perf_counter(), time.process_time()
        row = single_point(rec.atomic_numbers, rec.positions_ang.astype(np.float64), level)
        rows.append(
            {
                "atoms": len(rec.atomic_numbers),
                "status": row["status"],
                "cycles": row["cycles"],
                "num_basis": row["num_basis"],
                "wall_s": time.perf_counter() - wall,
                "cpu_s": time.process_time() - cpu,
                "energy_ev": row["energy_ev"],
                "forces_ev_per_ang": row["forces_ev_per_ang"],
            }
        )
    return summarize(rows)


def summarize(rows: list[dict]) -> dict:
    wall, cpu = np.array([r["wall_s"] for r in rows]), np.array([r["cpu_s"] for r in rows])
    cycles = np.array([r["cycles"] for r in rows if r["cycles"] is not None and r["cycles"] >= 0])
    return {
        "molecules": len(rows),
        "converged": sum(r["status"] == "ok" for r in rows),
        "statuses": sorted({r["status"] for r in rows}),
        "cycles_median": float(np.median(cycles)) if cycles.size else None,
        "cycles_max": int(cycles.max()) if cycles.size else None,
        "wall_s_median": float(np.median(wall)),
        "wall_s_max": float(wall.max()),
        "wall_s_total": float(wall.sum()),
        "cpu_s_median": float(np.median(cpu)),
        "cpu_s_max": float(cpu.max()),
        "cpu_s_total": float(cpu.sum()),
        "num_basis_median": float(np.median([r["num_basis"] or 0 for r in rows])),
        "rows": rows,
    }


def grid_error(res: dict, reference: dict) -> str:
    """Largest |energy| (meV) and |force component| (eV/Å) difference to the reference grid, same molecules."""
    de, df = [], []
    for a, b in zip(res["rows"], reference["rows"]):
        if a["status"] == b["status"] == "ok":
            de.append(abs(a["energy_ev"] - b["energy_ev"]) * 1e3)
            df.append(float(np.abs(np.asarray(a["forces_ev_per_ang"]) - np.asarray(b["forces_ev_per_ang"])).max()))
    if not de:
        return "; no molecule converged on both grids"
    return f"; vs the first grid on {len(de)} molecules: max |dE| {max(de):.3f} meV, max |dF| {max(df):.2e} eV/A"


def report(name: str, res: dict, reference: dict | None) -> None:
    print(
        f"{name}: {res['converged']}/{res['molecules']} converged {res['statuses']}, cycles "
        f"median {res['cycles_median']} max {res['cycles_max']}, wall s/mol median "
        f"{res['wall_s_median']:.1f} max {res['wall_s_max']:.1f} total {res['wall_s_total']:.0f}, cpu "
        f"s/mol median {res['cpu_s_median']:.1f} total {res['cpu_s_total']:.0f}, basis "
        f"{res['num_basis_median']:.0f}" + (grid_error(res, reference) if reference else ""),
        flush=True,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", nargs="+", required=True, help="molecule Parquet files (samples or a QM9 split)")
    p.add_argument(
        "--metrics",
        nargs="*",
        default=None,
        help="the evaluate stage's metrics Parquet of each input (valid molecules only); omit for all",
    )
    p.add_argument("--num", type=int, default=8, help="molecules per input")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--levels", nargs="+", default=["b3lypg/6-31g(2df,p)", "b3lypg/6-31g(d)"])
    p.add_argument("--max-cycles", type=int, default=40)
    p.add_argument("--newton-cycles", type=int, default=10)
    p.add_argument("--conv-tol", type=float, default=1e-9)
    p.add_argument("--grids", type=int, nargs="+", default=[3], help="PySCF grid levels (the first is the reference)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help="write every row here")
    args = p.parse_args()

    from pyscf import lib

    from elign.dft.level import DftLevel

    lib.num_threads(args.threads)
    metrics = args.metrics or [None] * len(args.input)
    if len(metrics) != len(args.input):
        raise SystemExit("--metrics needs one file per --input")
    results = {}
    for path, met in zip(args.input, metrics):
        molecules = pick(path, met, args.num, args.seed)
        for spec in args.levels:
            functional, basis = spec.split("/", 1)
            reference = None  # the first grid's results: the others are compared with it
            for grid in args.grids:
                level = replace(
                    DftLevel(functional=functional, basis=basis),
                    grid_level=grid,
                    conv_tol=args.conv_tol,
                    max_cycles=args.max_cycles,
                    newton_cycles=args.newton_cycles,
                )
                res = run_level(molecules, level)
                results[f"{path} @ {spec} grid {grid}"] = res
                report(f"{path} @ {spec} grid {grid}", res, reference)
                if reference is None:
                    reference = res
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
