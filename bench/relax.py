"""Benchmark the evaluate stage's relaxation (``elign.mlff.relax``, FIRE with the evaluation MLFF).

Three things, in one process, same backend, dtype and thread count:

* **batched vs one by one**: the same molecules relaxed as one batch and one molecule at a time (the same
  FIRE), seconds per molecule of each and the ratio; the relaxation energies of the two must agree;
* **cost at the step cap**: seconds per molecule, steps taken and converged fraction at ``--max-steps``;
* **what it measures**: relaxation energy (kcal/mol) and heavy-atom RMSD (Å) quantiles.

Molecules: a seeded random subset of a data split (``--input results/data/qm9/test.parquet``, QM9 minima at
B3LYP), or samples (``--input results/samples/qm9/pretrained.parquet``). ``--jitter-ang s`` adds Gaussian
noise of that std to every coordinate (a stand-in for samples off their minimum).

    .venv/bin/python bench/relax.py [--input results/data/qm9/test.parquet] [--molecules 64] [--max-steps 100]
        [--threads 1] [--dtype float32] [--jitter-ang 0] [--one-by-one 16]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

SHARED_TORCHANI = Path(__file__).resolve().parents[1].parent / "shared" / "mlff" / "torchani"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", default="results/data/qm9/test.parquet")
    p.add_argument("--molecules", type=int, default=64)
    p.add_argument("--max-steps", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--backend", default="ani2x")
    p.add_argument("--jitter-ang", type=float, default=0.0)
    p.add_argument("--one-by-one", type=int, default=16, help="how many of them also relax one at a time (0: skip)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if SHARED_TORCHANI.exists():
        os.environ.setdefault("TORCHANI_DATA_DIR", str(SHARED_TORCHANI))
    torch.set_num_threads(args.threads)

    from elign.io.molecules import read_molecules
    from elign.metrics.relaxation import heavy_atom_rmsd
    from elign.mlff import get_backend, pad_molecules
    from elign.mlff.relax import FireSettings, relax

    table = read_molecules(args.input)
    rows = np.sort(np.random.default_rng(args.seed).choice(len(table), min(args.molecules, len(table)), False))
    o = table.offsets
    rng = np.random.default_rng(args.seed + 1)
    zs = [table.atomic_numbers[o[i] : o[i + 1]].astype(np.int64) for i in rows]
    xs = [table.positions_ang[o[i] : o[i + 1]].astype(np.float64) for i in rows]
    xs = [x + rng.normal(0, args.jitter_ang, x.shape) if args.jitter_ang else x for x in xs]
    z, x = pad_molecules(zs, xs)
    backend = get_backend(args.backend, device="cpu", dtype=args.dtype)
    settings = FireSettings(max_steps=args.max_steps)
    backend.evaluate(z[:2], x[:2])  # warm-up

    t0 = time.perf_counter()
    res = relax(backend, z, x, settings)
    batched_s = time.perf_counter() - t0
    ok = res.status == "ok"
    e = res.relaxation_energy_kcal_mol[ok]
    rmsd = np.array([heavy_atom_rmsd(zs[j], xs[j], res.positions_ang[j, : len(zs[j])]) for j in np.flatnonzero(ok)])
    q = [0.1, 0.5, 0.9]
    print(
        f"{args.input}: {len(rows)} molecules ({np.mean([len(v) for v in zs]):.1f} atoms on average), "
        f"{args.backend} {args.dtype}, {args.threads} thread(s), max_steps {args.max_steps}, jitter {args.jitter_ang} Å"
    )
    print(
        f"batched: {batched_s / len(rows):.4f} s/molecule; steps mean {res.steps[ok].mean():.1f} "
        f"(quantiles {np.quantile(res.steps[ok], q)}); converged {res.converged[ok].mean():.3f}; "
        f"failed {int((~ok).sum())}"
    )
    print(f"relaxation energy kcal/mol: mean {e.mean():.3f}, quantiles 10/50/90 % {np.round(np.quantile(e, q), 3)}")
    print(
        f"heavy-atom RMSD Å: mean {np.nanmean(rmsd):.4f}, quantiles 10/50/90 % {np.round(np.nanquantile(rmsd, q), 4)}"
    )
    k = min(args.one_by_one, len(rows))
    if k:
        t0 = time.perf_counter()
        single = [relax(backend, z[j : j + 1], x[j : j + 1], settings) for j in range(k)]
        single_s = time.perf_counter() - t0
        diff = max(
            abs(s.relaxation_energy_kcal_mol[0] - res.relaxation_energy_kcal_mol[j]) for j, s in enumerate(single)
        )
        batched_k = batched_s / len(rows)
        print(
            f"one by one ({k} molecules): {single_s / k:.4f} s/molecule; batched is {single_s / k / batched_k:.1f}x "
            f"faster per molecule; max |relaxation energy difference| {diff:.2e} kcal/mol"
        )


if __name__ == "__main__":
    main()
