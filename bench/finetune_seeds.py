"""FED-GRPO over several seeds and settings: how much of an effect is the method, how much is the seed?

For every (setting, seed) it runs ``elign finetune`` from a pretrained checkpoint (the default config, the
setting's overrides of the ``finetune`` section and ``seed``), samples the aligned model with the default
run's sampling seed (so every aligned model sees the same noise: only FED-GRPO's seed differs) and scores
the samples with ``elign evaluate``. It prints one row per run against the pretrained model's metrics:
MLFF force RMS (mean, Welch p), molecule and atom stability, validity, uniqueness, and each run's FED-GRPO wall time,
then the mean and spread over seeds for each setting. Runs go ``--jobs`` at a time, one thread each.

    .venv/bin/python bench/finetune_seeds.py --pretrained results/models/qm9/pretrained.pt \\
        --pretrained-metrics results/metrics/qm9/pretrained.parquet --seeds 0 1 2 \\
        [--setting lr=4e-5 --setting shared_prefix_steps=800] [--molecules 128] [--jobs 2] [--paired]

A setting is comma-separated ``key=value`` overrides of ``finetune`` (numbers as JSON, other values as YAML), e.g.
``lr=4e-5,update_epochs=1``; none means the default config.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED_ANI = REPO.parent / "shared" / "mlff" / "torchani"
sys.path.insert(0, str(REPO))

from elign.metrics.evaluate import summarize  # noqa: E402
from elign.stats.inference import drop_failed, welch_test  # noqa: E402
from elign.stats.paired import paired_differences, paired_t_test  # noqa: E402

SUMMARY_KEYS = {  # short column name -> key of the evaluate stage's summary
    "n": "num_molecules",
    "force_rms": "force_rms_ev_per_ang_mean",
    "mol_stable": "molecule_stability",
    "atom_stable": "atom_stability",
    "valid": "validity",
    "unique_of_valid": "uniqueness",
}


def parse_setting(text: str) -> dict:
    """``lr=4e-5,update_epochs=1`` -> {"lr": 4e-05, "update_epochs": 1} (numbers as JSON, anything else as YAML)."""
    out = {}
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--setting {text!r}: expected key=value[,key=value...]")
        try:
            out[key.strip()] = json.loads(value)  # numbers as JSON: YAML 1.1 reads 6e-5 as a string
        except json.JSONDecodeError:
            out[key.strip()] = yaml.safe_load(value)
    return out


def elign(*args: str) -> None:
    """Run the CLI with one thread; stop with its stderr when it fails."""
    exe = Path(sys.executable).with_name("elign")
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if SHARED_ANI.is_dir():  # as the Makefile: offline ANI weights where this workplace keeps them
        env.setdefault("TORCHANI_DATA_DIR", str(SHARED_ANI))
    proc = subprocess.run([str(exe), *args, "--threads", "1"], cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"elign {args[0]} failed:\n{proc.stderr[-3000:]}")


def run_one(args, label: str, overrides: dict, seed: int) -> dict:
    work = args.work / f"{label.replace('=', '-').replace(',', '_') or 'default'}" / f"seed{seed}"
    work.mkdir(parents=True, exist_ok=True)
    base = ["--config", "config/config.yaml"]
    aligned, metrics = work / "aligned.pt", work / "metrics.parquet"
    finetune_s = math.nan  # an aligned model left by an earlier run is reused: no time of its own
    if not aligned.exists():
        t0 = time.perf_counter()
        cfg = {"seed": seed, "finetune": overrides}
        elign(
            "finetune",
            *base,
            "--config-json",
            json.dumps(cfg),
            "--model",
            str(args.pretrained),
            "--stats",
            str(args.stats),
            "--out",
            str(aligned),
            "--no-progress",
        )
        finetune_s = time.perf_counter() - t0
    if not metrics.exists():
        sample_and_score(args, aligned, work)
    row = summary_row(pd.read_parquet(metrics), args.baseline, args.same_noise)
    row.update(setting=label or "default", seed=seed, finetune_wall_s=round(finetune_s, 1))
    print(json.dumps(row), flush=True)
    return row


def sample_and_score(args, model: Path, work: Path, name: str = "aligned") -> Path:
    """Sample ``args.molecules`` molecules of ``model`` with the bench's sampling seed and score them (the MLFF,
    stability, validity): ``work``/metrics.parquet. Every model sampled here sees the same noise, molecule by
    molecule."""
    base = ["--config", "config/config.yaml"]
    samples, metrics = work / "samples.parquet", work / "metrics.parquet"
    sample_cfg = {"seed": args.sample_seed, "sample": {"num_molecules": args.molecules}}
    elign(
        "sample",
        *base,
        "--config-json",
        json.dumps(sample_cfg),
        "--model",
        str(model),
        "--stats",
        str(args.stats),
        "--out",
        str(samples),
        "--no-progress",
    )
    eval_cfg = {"seed": args.sample_seed, "evaluate": {"relax": {"enabled": args.relax}}}
    elign(
        "evaluate",
        *base,
        "--config-json",
        json.dumps(eval_cfg),
        "--input",
        str(samples),
        "--name",
        name,
        "--train",
        str(args.train),
        "--out",
        str(metrics),
        "--summary",
        str(work / "summary.json"),
    )
    return metrics


def summary_row(frame: pd.DataFrame, baseline: pd.DataFrame | None, same_noise: pd.DataFrame | None = None) -> dict:
    """The evaluate stage's summary of a metrics table (:func:`elign.metrics.evaluate.summarize`), short names,
    the Welch p of its MLFF force RMS against the baseline's and, given the pretrained model's samples of the
    same noise (``same_noise``), the paired difference of force RMS and molecule stability with paired t p."""
    summary = summarize(frame, "aligned")
    row = {short: summary[key] for short, key in SUMMARY_KEYS.items()}
    if baseline is not None:
        rms, base = drop_failed(frame["force_rms_ev_per_ang"]), drop_failed(baseline["force_rms_ev_per_ang"])
        row["force_rms_p"] = welch_test(base.values, rms.values).p_value
    if same_noise is not None:
        for short, column in (("force_rms", "force_rms_ev_per_ang"), ("mol_stable", "molecule_stable")):
            d = paired_differences(same_noise[column].astype(float), frame[column].astype(float))
            row[f"{short}_paired_diff"] = float(d.mean())
            row[f"{short}_paired_p"] = paired_t_test(d).p_value
    return row


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pretrained", type=Path, required=True)
    ap.add_argument("--pretrained-metrics", type=Path, help="per-molecule metrics of the pretrained samples")
    ap.add_argument("--stats", type=Path, default=REPO / "results/data/qm9/stats.json")
    ap.add_argument("--train", type=Path, default=REPO / "results/data/qm9/train.parquet")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--setting", action="append", default=None, help="finetune overrides, e.g. lr=4e-5")
    ap.add_argument("--molecules", type=int, default=128, help="samples per aligned model")
    ap.add_argument("--sample-seed", type=int, default=0, help="master seed of sampling and evaluation")
    ap.add_argument("--relax", action="store_true", help="also the MLFF relaxation (slower)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--work", type=Path, default=REPO / "results/bench/finetune_seeds")
    ap.add_argument(
        "--paired",
        action="store_true",
        help="also sample the pretrained model with the bench's noise (once, kept in WORK/pretrained-<n>) and give "
        "paired differences and p-values (elign.stats.paired)",
    )
    args = ap.parse_args(argv)
    args.baseline = pd.read_parquet(args.pretrained_metrics) if args.pretrained_metrics else None
    args.same_noise = None
    if args.paired:
        work = args.work / f"pretrained-{args.molecules}-seed{args.sample_seed}"
        work.mkdir(parents=True, exist_ok=True)
        metrics = work / "metrics.parquet"
        if not metrics.exists():
            sample_and_score(args, args.pretrained, work, "pretrained")
        args.same_noise = pd.read_parquet(metrics)
        print(json.dumps({"setting": "pretrained, same noise", **summary_row(args.same_noise, None)}), flush=True)
    settings = args.setting or [""]
    if args.baseline is not None:
        print(json.dumps({"setting": "pretrained", **summary_row(args.baseline, None)}), flush=True)
    jobs = [(s, parse_setting(s), seed) for s in settings for seed in args.seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(lambda j: run_one(args, *j), jobs))
    table = pd.DataFrame(rows)
    cols = ["force_rms", "mol_stable", "atom_stable", "valid", "unique_of_valid"]
    cols += [c for c in ("force_rms_paired_diff", "mol_stable_paired_diff") if c in table]
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    spread = table.groupby("setting")[cols].agg(["mean", "std", "min", "max"])
    print(spread.T.to_string(float_format=lambda v: f"{v:.4g}"))


if __name__ == "__main__":
    main()
