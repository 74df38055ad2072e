"""Benchmark MLFF scoring: batched ``elign.mlff`` evaluation vs a per-molecule ASE-calculator loop.

Same backend (ANI-2x, torchani 2.9), same molecules (the first QM9 molecules from qm9pack), same dtype and
thread count, in one process. Two per-molecule baselines, as scoring code usually looks:

* ``ase``: torchani's own ASE calculator (``model.ase()``), one ``ase.Atoms`` per molecule,
  ``atoms.get_potential_energy()`` then ``atoms.get_forces()`` (ASE runs the model once per property).
* ``loop``: the lean hand-written loop: per molecule, build the input tensors, one forward pass, forces by
  autograd, convert Hartree to eV (one model call per molecule, nothing wasted).

Energies and forces of all three are compared (the ASE calculator uses ASE's Hartree constant, rescaled
here to ours) and the molecules-per-second of each are printed with the speed-ups.

Beside them, in the same interleaved rounds: GFN2-xTB (``gfn2-xtb``, tblite) on the same molecules through
``elign.mlff``, with ``--xtb-workers`` worker processes of one thread each (default: ``--threads``, the same
CPU budget as ANI), and its molecules/s as a ratio to batched ANI-2x. ``--pick random`` draws the molecules
at random from all of QM9 (18 atoms on average) instead of taking the first ones (small molecules).

    .venv/bin/python bench/mlff.py [--molecules 256] [--pick first|random] [--threads 1] [--xtb-workers N]
                                   [--dtype float32] [--repeats 3]

Needs the ANI-2x weights: torchani downloads them, or set TORCHANI_DATA_DIR (default here: ../shared/mlff/torchani
when it exists).
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

SHARED_TORCHANI = Path(__file__).resolve().parents[1].parent / "shared" / "mlff" / "torchani"


def load_molecules(count: int, pick: str = "first", seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``count`` QM9 molecules, the first or random ones (``seed``): atomic numbers (N,), positions (N, 3) Å."""
    from elign.config import DataConfig
    from elign.data.errors import ErrorPolicy
    from elign.data.qm9pack import load_qm9pack

    table = load_qm9pack(DataConfig(), ErrorPolicy(), 0).table
    rows = (
        np.arange(count)
        if pick == "first"
        else np.sort(np.random.default_rng(seed).choice(len(table.num_atoms), count, replace=False))
    )
    table = table.take(rows)
    bounds = np.concatenate([[0], np.cumsum(table.num_atoms)])
    z = [table.atomic_numbers[a:b].astype(np.int64) for a, b in zip(bounds[:-1], bounds[1:])]
    x = [table.positions_ang[a:b].astype(np.float64) for a, b in zip(bounds[:-1], bounds[1:])]
    return z, x


def ase_loop(model, zs, xs) -> tuple[np.ndarray, list[np.ndarray]]:
    """Per-molecule ASE calculator: energy (eV) and forces (eV/Å) as ASE returns them."""
    import ase
    import ase.units

    from elign.mlff import HARTREE_TO_EV

    calc = model.ase()
    energies, forces = [], []
    for z, x in zip(zs, xs):
        atoms = ase.Atoms(numbers=z, positions=x)
        atoms.calc = calc
        energies.append(atoms.get_potential_energy())
        forces.append(atoms.get_forces())
    rescale = HARTREE_TO_EV / ase.units.Hartree  # ASE's CODATA 2014 Hartree -> our CODATA 2018
    return np.array(energies) * rescale, [f * rescale for f in forces]


def tensor_loop(model, zs, xs, dtype) -> tuple[np.ndarray, list[np.ndarray]]:
    """Per-molecule hand loop: build input, one forward + backward, convert units."""
    from elign.mlff import HARTREE_TO_EV

    energies, forces = [], []
    for z, x in zip(zs, xs):
        species = torch.as_tensor(z).unsqueeze(0)
        coords = torch.as_tensor(x, dtype=dtype).unsqueeze(0).requires_grad_(True)
        energy_ha = model((species, coords)).energies
        (grad,) = torch.autograd.grad(energy_ha.sum(), coords)
        energies.append(float(energy_ha.detach()) * HARTREE_TO_EV)
        forces.append((-grad[0] * HARTREE_TO_EV).double().numpy())
    return np.array(energies), forces


def interleaved_best(functions: dict, repeats: int) -> tuple[dict, dict]:
    """Run each function once per round, ``repeats`` rounds, alternating (so that load drift on a shared
    machine hits all of them alike); returns ({name: best wall seconds}, {name: last result})."""
    best = {name: float("inf") for name in functions}
    results = {}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            results[name] = function()
            best[name] = min(best[name], time.perf_counter() - start)
    return best, results


def max_force_diff(batched: np.ndarray, per_molecule: list[np.ndarray]) -> float:
    return max(float(np.abs(batched[i, : len(f)] - f).max()) for i, f in enumerate(per_molecule))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--molecules", type=int, default=256)
    ap.add_argument("--pick", choices=("first", "random"), default="first", help="first QM9 molecules or random ones")
    ap.add_argument("--xtb-workers", type=int, default=None, help="gfn2-xtb worker processes (default: --threads)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (same for all paths)")
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if "TORCHANI_DATA_DIR" not in os.environ and SHARED_TORCHANI.is_dir():
        os.environ["TORCHANI_DATA_DIR"] = str(SHARED_TORCHANI)
    torch.set_num_threads(args.threads)

    from elign.mlff import get_backend, pad_molecules

    zs, xs = load_molecules(args.molecules, args.pick)
    z_pad, x_pad = pad_molecules(zs, xs)
    backend = get_backend("ani2x", dtype=args.dtype, batch_size=args.batch_size)
    dtype = backend.dtype
    xtb = get_backend("gfn2-xtb", workers=args.xtb_workers or args.threads, batch_size=args.batch_size)
    print(
        f"{len(zs)} QM9 molecules ({args.pick}; {int(sum(map(len, zs)))} atoms, {np.mean([len(z) for z in zs]):.1f} "
        f"on average, up to {z_pad.shape[1]}), ANI-2x ensemble, {args.dtype}, {args.threads} thread(s), batch_size "
        f"{args.batch_size}; GFN2-xTB {xtb.pool.workers} worker(s) x 1 thread; best of {args.repeats} "
        "interleaved rounds"
    )

    backend.evaluate(z_pad[:8], x_pad[:8])  # warm-up
    xtb.evaluate(z_pad[:8], x_pad[:8])  # starts the workers, computes the isolated atoms
    with torch.enable_grad():
        times, results = interleaved_best(
            {
                "batched": lambda: backend.evaluate(z_pad, x_pad),
                "ase": lambda: ase_loop(backend.model, zs, xs),
                "loop": lambda: tensor_loop(backend.model, zs, xs, dtype),
                "gfn2-xtb": lambda: xtb.evaluate(z_pad, x_pad),
            },
            args.repeats,
        )
    xtb.close()
    result = results["batched"]
    assert result.ok.all(), f"unexpected statuses: {set(result.status)}"
    (e_ase, f_ase), (e_loop, f_loop) = results["ase"], results["loop"]
    t_batched, t_ase, t_loop = times["batched"], times["ase"], times["loop"]

    for label, energies, forces in (("ase", e_ase, f_ase), ("loop", e_loop, f_loop)):
        de = float(np.abs(result.energy_ev - energies).max())
        df = max_force_diff(result.forces_ev_per_ang, forces)
        print(f"agreement batched vs {label}: max |dE| {de:.2e} eV, max |dF| {df:.2e} eV/Å")
        tol_e, tol_f = (1e-6, 1e-6) if args.dtype == "float64" else (5e-3, 5e-3)
        assert de < tol_e and df < tol_f, f"batched and {label} disagree"

    n = len(zs)
    print(f"batched (elign.mlff):           {n / t_batched:9.1f} molecules/s  ({t_batched:.3f} s)")
    print(
        f"per-molecule ASE calculator:    {n / t_ase:9.1f} molecules/s  ({t_ase:.3f} s)"
        f"  -> batched is {t_ase / t_batched:.1f}x faster"
    )
    print(
        f"per-molecule tensor loop:       {n / t_loop:9.1f} molecules/s  ({t_loop:.3f} s)"
        f"  -> batched is {t_loop / t_batched:.1f}x faster"
    )
    t_xtb, xtb_result = times["gfn2-xtb"], results["gfn2-xtb"]
    print(
        f"GFN2-xTB (tblite, {xtb.pool.workers} worker(s)):  {n / t_xtb:9.1f} molecules/s  ({t_xtb:.3f} s)"
        f"  = {t_batched / t_xtb:.2f}x batched ANI-2x's rate; {int(xtb_result.ok.sum())}/{n} scored"
        f" (statuses {dict(Counter(xtb_result.status.tolist()))})"
    )


if __name__ == "__main__":
    main()
