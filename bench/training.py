"""Benchmark pretraining throughput (molecules per second) of the EDM backbone, eager vs torch.compile.

Each variant is a :class:`elign.training.pretrain.Pretrainer` on the real QM9 training split (the data stage's
``results/data/qm9/train.parquet``), trained on the same global batches (steps 0…n of the seeded data order).
After a warm-up (which includes the compilation, reported), the variants take turns: ``--rounds`` rounds of
``--steps`` optimizer steps each, eager then compiled, so a load that comes and goes on a shared machine hits
both alike; the median seconds per step over all timed steps is reported, and the ratio compiled / eager.

    .venv/bin/python bench/training.py --preset small_cpu --batch 64 --threads 1
    .venv/bin/python bench/training.py --device cuda --batch 256

Runs on older checkouts too (it compiles the EGNN itself when the config has no ``pretrain.compile``), so the
same script measures two commits back to back: ``git worktree add /tmp/old <sha>`` and run it there with
``PYTHONPATH=/tmp/old``.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from elign.config import validate_config
from elign.io.molecules import read_molecules
from elign.training.determinism import global_batch
from elign.training.pretrain import Pretrainer


def make_trainer(train, preset: str, batch: int, device: str, compiled: bool) -> tuple[Pretrainer, float]:
    """A fresh trainer (seed 0); the EGNN compiled when asked. Returns (trainer, warm-up seconds)."""
    cfg = validate_config(
        {
            "seed": 0,
            "pretrain": {
                "preset": preset,
                "batch_size": batch,
                "device": device,
                "max_steps": 10**9,
                "lr": 5e-4,
                "ema_decay": 0.999,
            },
        }
    )
    trainer = Pretrainer(cfg, train, Path(tempfile.mkdtemp()) / "m.pt", None, progress=False)
    if compiled:
        trainer.model.dynamics.egnn.compile(dynamic=True)
    t0 = time.perf_counter()
    for k in range(3):  # warm-up: first compilation and the dynamic-shape recompile
        trainer.train_step(global_batch(k, len(train), batch, 0)[2])
    return trainer, time.perf_counter() - t0


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_steps(
    trainer: Pretrainer, train, batch: int, first: int, n: int, device: str, clock=time.perf_counter
) -> list[float]:
    out = []
    for k in range(first, first + n):
        index = global_batch(k, len(train), batch, 0)[2]
        _sync(device)
        t0 = clock()
        trainer.train_step(index)
        _sync(device)
        out.append(clock() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="results/data/qm9/train.parquet")
    ap.add_argument("--preset", default="small_cpu")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per variant per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--variants", nargs="+", default=["eager", "compiled"], choices=["eager", "compiled"])
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="cpu: the process's CPU time (time.process_time), which a busy shared machine inflates far "
        "less than wall time; meaningful on the CPU only",
    )
    args = ap.parse_args()
    logging.disable(logging.INFO)
    torch.set_num_threads(args.threads)
    train = read_molecules(args.data)
    trainers, warmup, times = {}, {}, {v: [] for v in args.variants}
    for v in args.variants:
        trainers[v], warmup[v] = make_trainer(train, args.preset, args.batch, args.device, v == "compiled")
    for r in range(args.rounds):
        for v in args.variants:
            first = 100 + r * args.steps  # the same batches for every variant
            clock = time.process_time if args.clock == "cpu" else time.perf_counter
            times[v] += time_steps(trainers[v], train, args.batch, first, args.steps, args.device, clock)
    result = {
        "preset": args.preset,
        "batch": args.batch,
        "threads": args.threads,
        "device": args.device,
        "clock": args.clock,
        "torch": torch.__version__,
        "variants": {},
    }
    for v in args.variants:
        med = float(np.median(times[v]))
        result["variants"][v] = {
            "seconds_per_step": med,
            "molecules_per_s": args.batch / med,
            "warmup_seconds": warmup[v],
            "timed_steps": len(times[v]),
        }
    if {"eager", "compiled"} <= set(args.variants):
        result["ratio_compiled_vs_eager"] = (
            result["variants"]["compiled"]["molecules_per_s"] / result["variants"]["eager"]["molecules_per_s"]
        )
    print("| variant | s/step (median) | molecules/s | warm-up s |\n|---|---|---|---|")
    for v, r in result["variants"].items():
        print(f"| {v} | {r['seconds_per_step']:.4f} | {r['molecules_per_s']:.1f} | {r['warmup_seconds']:.1f} |")
    if "ratio_compiled_vs_eager" in result:
        print(
            f"compiled / eager: {result['ratio_compiled_vs_eager']:.2f}x "
            f"({args.preset}, batch {args.batch}, {args.threads} thread(s), {args.device}, {args.clock} clock)"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
