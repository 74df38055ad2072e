"""Benchmark FED-GRPO's potential Ψ: MLFF energies without forces (``backend.energies``) vs with them
(``backend.evaluate``, what the reward code called before).

Ψ_t = −E_form(ẑ_{0|t}) needs energies only, at every trained step of every rollout: 96 rollouts × 300 steps =
28,800 geometries per iteration of the paper run. ``evaluate`` also runs the backward pass for the forces.
Both paths run on the same geometries (random QM9 molecules with Gaussian noise of ``--noise-ang`` on every
coordinate, like the model's predictions of the clean molecule) in one process, in interleaved rounds; the
energies must agree bit for bit (the forward pass is the same), and the geometries per second of each are
printed with the speed-up.

    .venv/bin/python bench/potentials.py [--geometries 4096] [--threads 1] [--repeats 3] [--noise-ang 0.1]

Needs the ANI-2x weights: TORCHANI_DATA_DIR (default here: ../shared/mlff/torchani when it exists).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

SHARED_TORCHANI = Path(__file__).resolve().parents[1].parent / "shared" / "mlff" / "torchani"


def geometries(count: int, noise_ang: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` padded geometries: (B, 29) atomic numbers, (B, 29, 3) Å (random QM9 molecules + noise)."""
    from elign.config import DataConfig
    from elign.data.errors import ErrorPolicy
    from elign.data.qm9pack import load_qm9pack

    table = load_qm9pack(DataConfig(), ErrorPolicy(), 0).table
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(table.num_atoms), count, replace=True)
    width = int(table.num_atoms.max())
    z = np.zeros((count, width), np.int64)
    x = np.zeros((count, width, 3))
    for k, row in enumerate(rows):
        lo, hi = table.offsets[row], table.offsets[row + 1]
        z[k, : hi - lo] = table.atomic_numbers[lo:hi]
        x[k, : hi - lo] = table.positions_ang[lo:hi] + rng.normal(0.0, noise_ang, (hi - lo, 3))
    return z, x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--geometries", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--noise-ang", type=float, default=0.1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if SHARED_TORCHANI.is_dir():
        os.environ.setdefault("TORCHANI_DATA_DIR", str(SHARED_TORCHANI))
    from elign.mlff.registry import get_backend

    backend = get_backend("ani2x", device="cpu", dtype="float32")
    z, x = geometries(args.geometries, args.noise_ang)
    backend.evaluate(z[:64], x[:64])  # warm-up
    times: dict[str, list[float]] = {"evaluate": [], "energies": []}
    results = {}
    for _ in range(args.repeats):
        for name in times:
            t0 = time.perf_counter()
            results[name] = getattr(backend, name)(z, x)
            times[name].append(time.perf_counter() - t0)
    a, b = results["evaluate"], results["energies"]
    same = np.array_equal(a.energy_ev, b.energy_ev, equal_nan=True) and np.array_equal(a.status, b.status)
    print(f"{args.geometries} geometries, {(z > 0).sum(1).mean():.1f} atoms on average, {args.threads} thread(s)")
    print(f"energies identical to evaluate's: {same}; failures: {int((~b.ok).sum())}")
    for name, seconds in times.items():
        best = min(seconds)
        print(f"  {name:9s} best of {args.repeats}: {best:7.2f} s  ({args.geometries / best:8.0f} geometries/s)")
    print(f"speed-up of energies over evaluate: {min(times['evaluate']) / min(times['energies']):.2f}x")
    if not same:
        raise SystemExit("energies differ from evaluate's")


if __name__ == "__main__":
    main()
