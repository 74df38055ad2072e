"""Does a second CPU thread pay for FED-GRPO at the paper's settings? One iteration, 1 thread vs N threads.

Runs ``elign finetune`` with config/config.yaml + config/experiments/qm9_paper.yaml on a CPU for one iteration
(``--prompts`` groups of 24 rollouts; no evaluation), once per thread count, back to back in this script, on
the same pretrained model and seed, and prints the iteration's time split (rollouts, rewards, update: the
history's ``*_seconds``) with each phase's speed-up over the first thread count. The machine should be
otherwise idle: a busy core shows up as no speed-up.

    .venv/bin/python bench/fedgrpo_threads.py --model models/qm9-small/weights.pt \\
        --stats results/data/qm9/stats.json --train results/data/qm9/train.parquet [--threads 1 2] [--prompts 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
SHARED_ANI = REPO.parent / "shared" / "mlff" / "torchani"
PHASES = ("rollout_seconds", "reward_seconds", "update_seconds")


def one_iteration(args, threads: int, work: Path) -> dict:
    """Wall seconds of each phase of one FED-GRPO iteration with ``threads`` torch threads."""
    exe = Path(sys.executable).with_name("elign")
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    if SHARED_ANI.is_dir():
        env.setdefault("TORCHANI_DATA_DIR", str(SHARED_ANI))
    over = {
        "finetune": {
            "iterations": 1,
            "prompts_per_iteration": args.prompts,
            "eval_every": None,
            "device": "cpu",
            "mlff": {"device": "cpu"},
        }
    }
    out, history = work / f"aligned_{threads}.pt", work / f"history_{threads}.parquet"
    cmd = [str(exe), "finetune", "--config", "config/config.yaml", "--config", "config/experiments/qm9_paper.yaml"]
    cmd += ["--config-json", json.dumps(over), "--model", str(args.model), "--stats", str(args.stats)]
    cmd += ["--train", str(args.train), "--out", str(out), "--history", str(history)]
    cmd += ["--threads", str(threads), "--no-progress"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"elign finetune failed ({threads} threads):\n{proc.stderr[-3000:]}")
    row = pd.read_parquet(history).iloc[-1]
    return {"threads": threads, "wall": time.perf_counter() - t0, **{p: float(row[p]) for p in PHASES}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/qm9-small/weights.pt"))
    parser.add_argument("--stats", type=Path, default=Path("results/data/qm9/stats.json"))
    parser.add_argument("--train", type=Path, default=Path("results/data/qm9/train.parquet"))
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--prompts", type=int, default=1, help="groups of 24 rollouts (the paper: 4)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [one_iteration(args, t, Path(tmp)) for t in args.threads]
    base = rows[0]
    print(f"one FED-GRPO iteration, qm9_paper.yaml, {args.prompts} x 24 rollouts, {args.model}")
    print(f"{'threads':>7} {'rollouts s':>11} {'rewards s':>10} {'update s':>9} {'sum s':>8} {'speed-up':>9}")
    for r in rows:
        total = sum(r[p] for p in PHASES)
        ratio = sum(base[p] for p in PHASES) / total
        parts = " ".join(f"{r[p]:>10.1f}" for p in PHASES)
        print(f"{r['threads']:>7} {parts} {total:>8.1f} {ratio:>8.2f}x")
        print("        per phase: " + ", ".join(f"{p.split('_')[0]} {base[p] / r[p]:.2f}x" for p in PHASES))


if __name__ == "__main__":
    main()
