"""gpu4pyscf against PySCF on the CPU: the DFT stage's CUDA path on a few QM9 molecules, in one process.

For each molecule (QM9 geometries; a radical made by removing one H checks the UKS path) and each basis
convention, :func:`elign.dft.pyscf_runner.single_point` runs with ``device: cpu`` and ``device: cuda`` at
the same level (default: the DFT stage's, B3LYP(Gaussian) / 6-31G(2df,p), density fitting, grid 3,
conv_tol 1e-9). Reported per case: both energies and their difference (the aim: |ΔE| < 1e-6 Ha), the
largest force difference (eV/Å), E − (U0 − ZPVE) against QM9's own properties, SCF cycles and seconds
(SCF + analytic gradient; the first GPU case also pays CUDA's start-up, so it is run twice). The
isolated-atom references (H, C, N, O: UKS) are compared the same way.

Measured on an H100 (gpu4pyscf 1.9.0, PySCF 2.14.0, CPU = 16 threads of the same machine), 2026-11-26:
the Gaussian convention with density fitting agrees to 1e-12..6e-10 Ha on NH3, H2O, H2CO but only to
7.3e-6 Ha (12 atoms) and 5.8e-5 Ha (17-18 atoms, RKS and UKS); forces to <= 5.4e-4 eV/Å. Without density
fitting the same 12-atom molecule agrees to 5.9e-11 Ha, and with spherical functions and density fitting
to 4.0e-11 Ha. The cause is the Cartesian auxiliary basis (PySCF builds the auxiliary molecule with the
orbital basis's ``cart``): its Coulomb metric is near singular (12 atoms: 49 eigenvalues below 1e-7, the
smallest 5.7e-13), so both devices' Cholesky-based fits amplify their round-off to ~1e-5 Ha. The AO
screening cutoff is not involved (1e-10 and 1e-15 give the same energies to 1e-12 Ha).

Molecules come from qm9pack here, or from a JSON file written by ``--export`` (for a machine without
qm9pack, e.g. a GPU box):

    .venv/bin/python bench/dft_gpu.py --export .gpu/molecules.json            # where qm9pack is installed
    python3 bench/dft_gpu.py --molecules-json .gpu/molecules.json --threads 16 --json out.json   # on the GPU
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

DEFAULT_IDS = [2, 3, 6, 182, 22060]  # NH3, H2O, H2CO, ON=C1CNC1 (12 atoms), CC(CNC(N)=O)=NO (18 atoms)
ATOM_SPINS = {1: 1, 6: 2, 7: 3, 8: 2}  # ground-state 2S of H, C, N, O (as elign.dft.atoms uses)


def qm9_records(mol_ids: list[int]) -> list[dict]:
    """QM9 records (Z, positions in Å, U0 − ZPVE in Ha) read from qm9pack."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from dft import load_molecules

    return [
        {
            "mol_id": int(r.mol_id),
            "smiles": r.smiles,
            "atomic_numbers": r.atomic_numbers.tolist(),
            "positions_ang": r.positions_ang.astype(float).tolist(),
            "u0_minus_zpve_ha": float(r.props["u0_ha"] - r.props["zpve_ha"]),
        }
        for r in load_molecules(mol_ids)
    ]


def export(path: Path, mol_ids: list[int]) -> None:
    """Write :func:`qm9_records` to ``path`` (for a machine without qm9pack)."""
    records = qm9_records(mol_ids)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records))
    print(f"wrote {len(records)} molecules to {path}")


def cases(records: list[dict]) -> list[dict]:
    """The molecules plus one radical: the largest molecule without its last H (odd electron count: UKS)."""
    out = [dict(r, name=f"{r['mol_id']} {r['smiles']}") for r in records]
    big = max(records, key=lambda r: len(r["atomic_numbers"]))
    z = list(big["atomic_numbers"])
    drop = len(z) - 1 - z[::-1].index(1)
    out.append(
        {
            "name": f"{big['mol_id']} minus H{drop} (radical)",
            "u0_minus_zpve_ha": None,
            "atomic_numbers": z[:drop] + z[drop + 1 :],
            "positions_ang": big["positions_ang"][:drop] + big["positions_ang"][drop + 1 :],
        }
    )
    return out


def timed_point(z: np.ndarray, x: np.ndarray, level) -> dict:
    from elign.dft import pyscf_runner as pr

    t0 = time.perf_counter()
    row = pr.single_point(z, x, level)
    row["seconds"] = time.perf_counter() - t0
    return row


def compare(case: dict, cpu, gpu, repeat_gpu: bool, cutoffs: list[float]) -> dict:
    """CPU and GPU single points of one case; differences and timings (a row, never raises).

    The GPU runs once per AO screening cutoff in ``cutoffs`` (gpu4pyscf's ``numint.AO_THRESHOLD``; None
    keeps its own): the first is the row's ``cuda``, the others ``cuda_<cutoff>``.
    """
    from gpu4pyscf.dft import numint as gpu_numint

    default_cutoff = gpu_numint.AO_THRESHOLD
    z = np.asarray(case["atomic_numbers"])
    x = np.asarray(case["positions_ang"], dtype=np.float64)
    out = {
        "case": case["name"],
        "atoms": len(z),
        "convention": cpu.basis_convention,
        "ao_cutoff": cutoffs[0] if cutoffs[0] is not None else default_cutoff,
    }
    rows = {"cpu": timed_point(z, x, cpu)}
    for i, cutoff in enumerate(cutoffs):
        gpu_numint.AO_THRESHOLD = default_cutoff if cutoff is None else cutoff  # read when grids are screened
        rows["cuda" if i == 0 else f"cuda_{cutoff:g}"] = timed_point(z, x, gpu)
        if i == 0 and repeat_gpu:
            rows["cuda_warm"] = timed_point(z, x, gpu)
    gpu_numint.AO_THRESHOLD = default_cutoff
    for key, row in rows.items():
        out.update(
            {
                f"{key}_status": row["status"],
                f"{key}_reason": row["reason"],
                f"{key}_s": row["seconds"],
                f"{key}_cycles": row["cycles"],
                f"{key}_energy_ha": row["energy_ha"],
            }
        )
        if (
            key not in ("cpu", "cuda", "cuda_warm")
            and row["energy_ha"] is not None
            and rows["cpu"]["energy_ha"] is not None
        ):
            out[f"{key}_delta_e_ha"] = row["energy_ha"] - rows["cpu"]["energy_ha"]
    out["method"], out["num_basis"] = rows["cpu"]["method"], rows["cpu"]["num_basis"]
    if rows["cpu"]["status"] == "ok" and rows["cuda"]["status"] == "ok":
        out["delta_e_ha"] = rows["cuda"]["energy_ha"] - rows["cpu"]["energy_ha"]
        df = np.asarray(rows["cuda"]["forces_ev_per_ang"]) - np.asarray(rows["cpu"]["forces_ev_per_ang"])
        out["max_delta_f_ev_per_ang"] = float(np.abs(df).max())
        out["force_rms_ev_per_ang"] = rows["cuda"]["force_rms_ev_per_ang"]
        out["speedup"] = rows["cpu"]["seconds"] / rows["cuda"]["seconds"]
        if case.get("u0_minus_zpve_ha") is not None:
            out["e_minus_u0_zpve_mha"] = (rows["cuda"]["energy_ha"] - case["u0_minus_zpve_ha"]) * 1e3
    return out


def compare_atoms(cpu, gpu) -> list[dict]:
    from elign.dft import pyscf_runner as pr

    out = []
    for z, spin in ATOM_SPINS.items():
        t0 = time.perf_counter()
        a = pr.atom_energy(z, spin, cpu)
        t1 = time.perf_counter()
        b = pr.atom_energy(z, spin, gpu)
        t2 = time.perf_counter()
        row = {
            "atom": z,
            "cpu_status": a["status"],
            "cuda_status": b["status"],
            "cuda_reason": b["reason"],
            "cpu_s": t1 - t0,
            "cuda_s": t2 - t1,
        }
        if a["status"] == "ok" and b["status"] == "ok":
            row["delta_e_ha"] = b["energy_ha"] - a["energy_ha"]
        out.append(row)
    return out


def print_row(r: dict) -> None:
    de = r.get("delta_e_ha")
    print(
        f"{r['case']:34s} {r['convention']:8s} {r['atoms']:3d} {r.get('method') or '':3s} "
        f"cpu {r['cpu_status']:>6s} {r['cpu_s']:7.1f}s ({r['cpu_cycles']} cyc)  "
        f"gpu {r['cuda_status']:>6s} {r['cuda_s']:7.1f}s"
        + (f" warm {r['cuda_warm_s']:.1f}s" if "cuda_warm_s" in r else "")
        + (
            f"  dE {de:+.2e} Ha  max dF {r['max_delta_f_ev_per_ang']:.1e} eV/A  x{r['speedup']:.1f}"
            if de is not None
            else f"  [{r['cuda_reason']}]"
        )
        + (f"  E-(U0-ZPVE) {r['e_minus_u0_zpve_mha']:+.2f} mHa" if "e_minus_u0_zpve_mha" in r else "")
        + "".join(
            f"  [{k[:-11]}: dE {v:+.2e} Ha, {r[k[:-11] + '_s']:.1f}s]"
            for k, v in r.items()
            if k.startswith("cuda_") and k.endswith("_delta_e_ha") and v is not None
        ),
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--export", type=Path, help="write the molecules (from qm9pack) to this JSON and stop")
    ap.add_argument("--molecules", type=int, nargs="+", default=DEFAULT_IDS, help="QM9 indices")
    ap.add_argument("--molecules-json", type=Path, help="molecules written by --export (instead of qm9pack)")
    ap.add_argument(
        "--conventions",
        nargs="+",
        default=["gaussian", "pyscf"],
        help="basis conventions to compare (gaussian: QM9's Cartesian d; pyscf: spherical)",
    )
    ap.add_argument("--basis", default="6-31g(2df,p)")
    ap.add_argument("--threads", type=int, default=None, help="PySCF CPU threads (default: all)")
    ap.add_argument(
        "--ao-cutoffs",
        type=float,
        nargs="+",
        default=None,
        help="also run the GPU with these AO screening cutoffs (gpu4pyscf numint.AO_THRESHOLD, 1e-10 "
        "in gpu4pyscf 1.9; PySCF's CPU eval_gto uses 1e-15); the first is the row's",
    )
    ap.add_argument("--cases", type=int, nargs="+", default=None, help="only these case indices (0-based)")
    ap.add_argument("--skip-atoms", action="store_true")
    ap.add_argument("--json", type=Path, help="write the rows here (rewritten after every case)")
    args = ap.parse_args()
    if args.export:
        return export(args.export, args.molecules)

    from pyscf import lib

    from elign.dft.level import DftLevel
    from elign.dft.pyscf_runner import check_cuda

    if args.threads:
        lib.num_threads(args.threads)
    check_cuda()
    records = json.loads(args.molecules_json.read_text()) if args.molecules_json else qm9_records(args.molecules)
    cutoffs = args.ao_cutoffs or [None]
    report: dict = {"threads": lib.num_threads(), "ao_cutoffs": cutoffs, "rows": [], "atoms": []}
    for convention in args.conventions:
        cpu = DftLevel(basis=args.basis, basis_convention=convention)
        gpu = replace(cpu, device="cuda")
        for i, case in enumerate(cases(records)):
            if args.cases is not None and i not in args.cases:
                continue
            first = i == min(args.cases or [0]) and convention == args.conventions[0]
            report["rows"].append(compare(case, cpu, gpu, repeat_gpu=first, cutoffs=cutoffs))
            print_row(report["rows"][-1])
            if args.json:
                args.json.write_text(json.dumps(report, indent=1))
        if convention == args.conventions[0] and not args.skip_atoms:
            report["atoms"] = compare_atoms(cpu, gpu)
            for a in report["atoms"]:
                print(
                    f"atom Z={a['atom']}: cpu {a['cpu_status']} {a['cpu_s']:.1f}s gpu {a['cuda_status']} "
                    f"{a['cuda_s']:.1f}s dE {a.get('delta_e_ha', float('nan')):+.2e} Ha {a['cuda_reason'] or ''}",
                    flush=True,
                )
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    ok = [r for r in report["rows"] if r.get("delta_e_ha") is not None]
    worst = max((abs(r["delta_e_ha"]) for r in ok), default=float("nan"))
    print(
        f"{len(ok)}/{len(report['rows'])} cases compared; largest |dE| {worst:.2e} Ha "
        f"({'within' if worst < 1e-6 else 'NOT within'} 1e-6 Ha)"
    )


if __name__ == "__main__":
    main()
