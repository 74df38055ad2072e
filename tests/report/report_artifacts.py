"""Small synthetic pipeline artifacts for the report tests, written with the stages' own writers.

Samples: a few RDKit-embedded molecules (valid by EDM's bond rule) plus one scrambled geometry (invalid);
metrics: the evaluate stage's columns (stability and chemistry computed for real, MLFF columns synthetic);
DFT: the DFT schema; histories: the pretrain and FED-GRPO history writers; timing: the time_sampling JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

SMILES = ("CCO", "CC(=O)O", "CCN", "CC(C)O", "OCC=O", "CNC=O", "CC#N", "COC")
MODELS = ("pretrained", "aligned", "guided")


def _embedded(smiles: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    assert AllChem.EmbedMolecule(mol, randomSeed=seed) == 0
    AllChem.MMFFOptimizeMolecule(mol)
    z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()])
    return z, mol.GetConformer().GetPositions()


def sample_table(seed: int = 0):
    """The samples table of one model: len(SMILES) embedded molecules + 1 scrambled (invalid) one."""
    from elign.io.table import MoleculeTable

    rng = np.random.default_rng(seed)
    zs, xs = zip(*(_embedded(s, seed + i) for i, s in enumerate(SMILES)))
    zs, xs = list(zs), list(xs)
    zs.append(np.array([6, 6, 8, 1]))
    xs.append(rng.normal(scale=0.4, size=(4, 3)))  # atoms on top of each other: not a valid molecule
    n = len(zs)
    cols = {
        "status": np.array(["ok"] * n, dtype=object),
        "reason": np.array([""] * n, dtype=object),
        "sample_seconds": np.full(n, 0.01),
        "batch": np.zeros(n, dtype=np.int64),
    }
    return MoleculeTable(
        np.arange(n),
        [len(z) for z in zs],
        np.concatenate(zs),
        np.concatenate(xs),
        np.array([None] * n, dtype=object),
        cols,
    )


def metrics_frame(table, shift_ev_per_ang: float, seed: int, mlff_failed: int = 1) -> pd.DataFrame:
    """The evaluate stage's per-molecule frame (real stability/chemistry, synthetic MLFF and relaxation numbers)."""
    from elign.metrics.evaluate import evaluate_table

    rng = np.random.default_rng(seed)
    frame = evaluate_table(table, None, set())
    n = len(frame)
    frame["mlff_status"] = ["ok"] * (n - mlff_failed) + ["nan"] * mlff_failed
    frame["mlff_reason"] = ""
    ok = frame["mlff_status"] == "ok"
    frame["energy_ev"] = np.where(ok, rng.normal(-4000, 50, n), np.nan)
    frame["formation_energy_per_atom_ev"] = np.where(ok, rng.normal(-3.0, 0.2, n), np.nan)
    frame["force_rms_ev_per_ang"] = np.where(ok, np.abs(rng.normal(1.0 + shift_ev_per_ang, 0.2, n)), np.nan)
    frame["force_max_ev_per_ang"] = frame["force_rms_ev_per_ang"] * 2
    frame["relax_status"] = frame["mlff_status"]
    frame["relax_reason"] = ""
    frame["relaxation_energy_kcal_mol"] = np.where(ok, 300 * frame["force_rms_ev_per_ang"], np.nan)
    frame["relax_heavy_rmsd_ang"] = np.where(ok, 0.2 * frame["force_rms_ev_per_ang"], np.nan)
    frame["relax_steps"] = np.where(ok, 60, 0)
    frame["relax_converged"] = ok.to_numpy()
    frame["relax_fmax_ev_per_ang"] = np.where(ok, 0.04, np.nan)
    frame["relaxed_energy_ev"] = frame["energy_ev"] - frame["relaxation_energy_kcal_mol"] / 23.06
    return frame


def dft_rows(table, shift_ev_per_ang: float, seed: int, all_failed: bool = False) -> list[dict]:
    """Rows of the DFT artifact for the first 6 molecules; the last one (or all) failed to converge."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(6):
        rec = table.molecule(i)
        ok = not all_failed and i < 5
        rows.append(
            {
                "selection_index": i,
                "target_num_atoms": len(rec.atomic_numbers),
                "mol_id": rec.mol_id,
                "num_atoms": len(rec.atomic_numbers),
                "atomic_numbers": rec.atomic_numbers,
                "positions_ang": rec.positions_ang,
                "status": "ok" if ok else "scf_not_converged",
                "reason": "" if ok else "SCF did not converge in 100 cycles",
                "method": "RKS",
                "spin": 0,
                "s2": None,
                "scf_converged": ok,
                "cycles": 12,
                "num_basis": 40,
                "energy_ha": -150.0 if ok else np.nan,
                "energy_ev": -4081.7 if ok else np.nan,
                "formation_energy_per_atom_ev": rng.normal(-2.5, 0.1) if ok else np.nan,
                "forces_ev_per_ang": rng.normal(size=(len(rec.atomic_numbers), 3)) if ok else None,
                "force_rms_ev_per_ang": abs(rng.normal(0.5 + shift_ev_per_ang, 0.1)) if ok else np.nan,
                "force_max_ev_per_ang": 1.0 if ok else np.nan,
                "seconds": 3.0,
            }
        )
    return rows


def write_histories(root: Path) -> tuple[Path, Path]:
    from elign.rl import trainer_state
    from elign.training import pretrain_state as train_state

    steps = np.arange(1, 51)
    pre = {
        "step": steps.tolist(),
        "epoch": (steps // 10).tolist(),
        "loss": (1.0 / np.sqrt(steps)).tolist(),
        "grad_norm": [1.0] * 50,
        "clipped": [False] * 50,
        "lr": [1e-4] * 50,
        "seconds": (steps * 0.1).tolist(),
    }
    train_state.write_history(root / "history.parquet", pre)
    iters = 5
    fin = {c: [0.0] * iters for c in trainer_state.HISTORY_COLUMNS}
    for c, t in trainer_state.HISTORY_TYPES.items():
        if str(t) == "int64":
            fin[c] = [0] * iters
    fin["iteration"] = list(range(1, iters + 1))
    fin["force_rms_mean_ev_per_ang"] = [1.0, 0.9, 0.8, 0.75, 0.7]
    fin["force_reward_mean"] = [-v for v in fin["force_rms_mean_ev_per_ang"]]
    fin["loss"] = [0.1, 0.05, 0.02, 0.01, 0.0]
    trainer_state.write_history(root / "finetune_history.parquet", fin)
    return root / "history.parquet", root / "finetune_history.parquet"


def timing_json(path: Path) -> Path:
    entry = {
        "seconds_per_molecule": 0.02,
        "seconds_per_step": 0.001,
        "reps_s": [0.19, 0.2, 0.21],
        "molecules": 10,
        "steps_timed": 20,
        "diffusion_steps": 1000,
    }
    data = {
        "models": {
            "pretrained": entry,
            "aligned": {**entry, "seconds_per_molecule": 0.021},
            "guided": {**entry, "seconds_per_molecule": 0.06, "reps_s": [0.6, 0.6, 0.61]},
        },
        "ratio_vs_pretrained": {"aligned": 1.05, "guided": 3.0},
        "device": "cpu",
        "threads": 1,
    }
    path.write_text(json.dumps(data))
    return path


DFT_LEVEL = {
    "functional": "b3lypg",
    "basis": "6-31g(d)",
    "basis_convention": "gaussian",
    "density_fit": True,
    "grid_level": 3,
    "conv_tol": 1e-9,
    "max_cycles": 40,
    "newton_cycles": 10,
    "charge": 0,
    "device": "cpu",
}


def write_artifacts(root: Path, guided_dft_all_failed: bool = True) -> dict:
    """Every report input under ``root``; returns the paths by kind (dicts by name, like the CLI)."""
    from elign.dft.results import write_results
    from elign.io.molecules import write_molecules

    out = {"metrics": {}, "dft": {}, "samples": {}, "sample_summaries": {}}
    ref = sample_table(seed=100)
    out["metrics"]["reference"] = root / "reference.parquet"
    metrics_frame(ref, 0.0, 100, mlff_failed=0).to_parquet(out["metrics"]["reference"], index=False)
    for k, model in enumerate(MODELS):
        table = sample_table(seed=k)
        shift = {"pretrained": 0.0, "aligned": -0.5, "guided": -0.3}[model]
        out["samples"][model] = root / f"{model}.samples.parquet"
        write_molecules(out["samples"][model], table)
        out["metrics"][model] = root / f"{model}.parquet"
        metrics_frame(table, shift, k).to_parquet(out["metrics"][model], index=False)
        out["dft"][model] = root / f"{model}.dft.parquet"
        write_results(
            out["dft"][model],
            dft_rows(table, shift, k, guided_dft_all_failed and model == "guided"),
            {"level": json.dumps(DFT_LEVEL, sort_keys=True)},  # as elign dft writes it
        )
        out["sample_summaries"][model] = root / f"{model}.summary.json"
        out["sample_summaries"][model].write_text(json.dumps({"num_molecules": len(table), "sample_seconds": 1.0}))
    out["pretrain_history"], out["finetune_history"] = write_histories(root)
    out["timing"] = timing_json(root / "sampling.json")
    return out


def cli_args(artifacts: dict, out_dir, statistics=None) -> list[str]:
    """``elign report`` arguments naming every artifact (and the statistics CSV when given)."""
    args = []
    for flag, key in (
        ("--metrics", "metrics"),
        ("--dft", "dft"),
        ("--samples", "samples"),
        ("--sample-summary", "sample_summaries"),
    ):
        for name, path in artifacts[key].items():
            args += [flag, f"{name}={path}"]
    args += [
        "--pretrain-history",
        str(artifacts["pretrain_history"]),
        "--finetune-history",
        str(artifacts["finetune_history"]),
        "--timing",
        str(artifacts["timing"]),
    ]
    if statistics is not None:
        args += ["--statistics", str(statistics)]
    return args + ["--out-dir", str(out_dir)]
