"""Benchmark the DFT stage's settings against PySCF's defaults on a few QM9 molecules.

Same molecules (QM9 geometries from qm9pack), same level (b3lypg / 6-31G(2df,p) as Gaussian defines it,
grid level 3, conv_tol 1e-9), same thread count, one process; each timing is SCF + analytic gradient.

* ``defaults``: PySCF's defaults, ``dft.RKS(mol, xc)``: four-centre integrals (no density fitting), minao
  initial guess, and the four-centre analytic gradient.
* ``ours``: what ``elign dft`` runs (:func:`elign.dft.pyscf_runner.make_scf`): density fitting for J and K
  (SCF and gradient), minao initial guess (``--guesses`` shows why: no other PySCF guess saved cycles).

Density fitting changes the energy by ~1e-5 Ha (the fitting error), so the two do not agree to 1e-5 Ha
exactly: both are converged to the same tolerance and the table reports the difference (energy in uHa,
largest force component in eV/Å), i.e. what the speed-up costs in accuracy. ``--guesses`` compares
initial guesses like with like (same settings, energies equal to < 1e-7 Ha, only the cycles differ).

    .venv/bin/python bench/dft.py [--molecules 6 17 182] [--threads 1] [--repeats 1] [--guesses]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def load_molecules(mol_ids: list[int]):
    """QM9 records (mol_id = QM9 index) from qm9pack's first CSV part, parsing only those rows."""
    import pandas as pd

    from elign.data.errors import ErrorPolicy
    from elign.data.qm9pack import qm9pack_data_dir, qm9pack_table

    path = qm9pack_data_dir() / "qm9_part1.csv"
    index = pd.read_csv(path, usecols=["Index"])["Index"]
    lines = set((np.flatnonzero(index.isin(mol_ids)) + 1).tolist())  # + 1: the header line
    if len(lines) != len(set(mol_ids)):
        raise SystemExit(f"not all of {mol_ids} are in {path}")
    table = qm9pack_table(pd.read_csv(path, skiprows=lambda i: i > 0 and i not in lines), ErrorPolicy())
    position = {int(m): i for i, m in enumerate(table.mol_id)}
    return [table.molecule(position[m]) for m in mol_ids]


def run_once(rec, level, density_fit: bool, init_guess: str = "minao", gradient: bool = True) -> dict:
    """Seconds (SCF + gradient), energy (Ha), forces (N, 3) eV/Å and cycles of one setting."""
    from dataclasses import replace

    from elign.constants import HA_PER_BOHR_TO_EV_PER_ANG
    from elign.dft import pyscf_runner as pr

    lv = replace(level, density_fit=density_fit)
    mol = pr.build_mole(rec.atomic_numbers, rec.positions_ang.astype(np.float64), lv, 0)
    t0 = time.perf_counter()
    mf = pr.make_scf(mol, lv, unrestricted=False, init_guess=init_guess)
    energy = mf.kernel()
    grad = mf.nuc_grad_method().kernel() if gradient else np.zeros((mol.natm, 3))
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "energy_ha": float(energy),
        "forces": -grad * HA_PER_BOHR_TO_EV_PER_ANG,
        "cycles": int(mf.cycles),
        "converged": bool(mf.converged),
        "nao": int(mol.nao),
    }


def best_of_interleaved(repeats: int, rec, level) -> tuple[dict, dict]:
    """Best of ``repeats`` for defaults and ours, run alternately (a shared machine's load hits both)."""
    base, ours = [], []
    for _ in range(max(1, repeats)):
        base.append(run_once(rec, level, density_fit=False))
        ours.append(run_once(rec, level, density_fit=True))
    fastest = lambda runs: min(runs, key=lambda r: r["seconds"])
    return fastest(base), fastest(ours)


def compare_settings(recs, level, repeats: int) -> None:
    print(
        f"{'molecule':10s} {'atoms':>5s} {'nao':>4s} {'defaults s':>10s} {'ours s':>8s} {'speed-up':>8s} "
        f"{'cyc d/o':>8s} {'dE uHa':>8s} {'max dF eV/A':>11s}"
    )
    totals = np.zeros(2)
    for rec in recs:
        base, ours = best_of_interleaved(repeats, rec, level)
        assert base["converged"] and ours["converged"]
        totals += [base["seconds"], ours["seconds"]]
        de = (ours["energy_ha"] - base["energy_ha"]) * 1e6
        df = np.abs(ours["forces"] - base["forces"]).max()
        print(
            f"{rec.smiles:10s} {len(rec.atomic_numbers):5d} {base['nao']:4d} {base['seconds']:10.2f} "
            f"{ours['seconds']:8.2f} "
            f"{base['seconds'] / ours['seconds']:7.2f}x {base['cycles']:>3d}/{ours['cycles']:<4d} "
            f"{de:8.2f} {df:11.2e}"
        )
    print(f"{'total':10s} {'':5s} {'':4s} {totals[0]:10.2f} {totals[1]:8.2f} {totals[0] / totals[1]:7.2f}x")


def compare_guesses(recs, level, guesses: list[str]) -> None:
    """SCF only (no gradient), density fitting on: cycles and seconds per initial guess."""
    print("\ninitial guesses (density fitting, SCF only; energies vs minao in Ha):")
    for rec in recs:
        ref = None
        for guess in guesses:
            try:
                r = run_once(rec, level, density_fit=True, init_guess=guess, gradient=False)
            except Exception as exc:  # some guesses do not support every basis (e.g. sap with cart=True)
                print(f"  {rec.smiles:10s} {guess:7s} failed: {type(exc).__name__}: {exc}")
                continue
            ref = r["energy_ha"] if ref is None else ref
            print(
                f"  {rec.smiles:10s} {guess:7s} {r['cycles']:3d} cycles {r['seconds']:7.2f} s "
                f"dE {r['energy_ha'] - ref:+.1e}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--molecules",
        type=int,
        nargs="+",
        default=[6, 17, 182],
        help="QM9 indices (default: formaldehyde 4 atoms, oxirane 7, ON=C1CNC1 12; "
        "22060 is a typical 18-atom QM9 molecule, ~20 min on one shared core)",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1, help="best of N per setting (run alternately)")
    parser.add_argument("--basis-convention", default="auto", choices=("auto", "gaussian", "pyscf"))
    parser.add_argument("--guesses", action="store_true", help="also compare initial guesses")
    args = parser.parse_args()

    from pyscf import lib

    from elign.dft.level import DftLevel

    lib.num_threads(args.threads)
    level = DftLevel(basis_convention=args.basis_convention)
    recs = load_molecules(args.molecules)
    print(f"level {level.describe()}; pyscf threads {lib.num_threads()}")
    compare_settings(recs, level, args.repeats)
    if args.guesses:
        compare_guesses(recs, level, ["minao", "atom", "huckel", "vsap", "1e"])


if __name__ == "__main__":
    main()
