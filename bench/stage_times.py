"""Wall and CPU time of every job of a finished run, from Snakemake's ``benchmark:`` files.

    .venv/bin/python bench/stage_times.py [benchmarks/]

Prints one row per job (rule and wildcards, from the file's path) and one per stage (the rule: sums over its
jobs, e.g. the DFT shards), sorted by wall time. Jobs overlap in a run with several cores, so the stage sums
add up to more than the run's wall time; the run's own wall time is ``time make run``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd


def read_benchmarks(root: Path) -> pd.DataFrame:
    """One row per benchmark file: job (path without .tsv), stage (first folder), wall_s, cpu_s, max_rss_mb."""
    rows = []
    for path in sorted(root.rglob("*.tsv")):
        frame = pd.read_csv(path, sep="\t")
        if frame.empty:
            continue
        missing = {"s", "cpu_time", "max_rss"} - set(frame.columns)
        if missing:
            raise SystemExit(f"{path}: not a Snakemake benchmark file (no column {', '.join(sorted(missing))})")
        last = frame.iloc[-1]  # a job benchmarked with repeats keeps one line per repeat
        job = path.relative_to(root).with_suffix("")
        rows.append(
            {
                "job": str(job),
                "stage": job.parts[0],
                "wall_s": float(last["s"]),
                "cpu_s": float(last["cpu_time"]),
                "max_rss_mb": float(last["max_rss"]),
            }
        )
    if not rows:
        raise SystemExit(f"no benchmark files under {root}")
    return pd.DataFrame(rows)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path, nargs="?", default=Path("benchmarks"))
    args = ap.parse_args(argv)
    jobs = read_benchmarks(args.root)
    fmt = {"float_format": lambda v: f"{v:.1f}"}
    print(jobs.sort_values("wall_s", ascending=False).to_string(index=False, **fmt))
    stages = jobs.groupby("stage").agg(jobs=("job", "size"), wall_s=("wall_s", "sum"), cpu_s=("cpu_s", "sum"))
    print()
    print(stages.sort_values("wall_s", ascending=False).to_string(**fmt))


if __name__ == "__main__":
    main()
