"""``elign evaluate`` / ``elign summarize`` end to end on QM9 molecules: the random reference subset, relaxation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from elign.cli.main import main
from elign.io.molecules import read_molecules
from elign.metrics.evaluate import random_subset

pytestmark = pytest.mark.usefixtures("one_thread_offline_ani")  # tests/conftest.py


def _evaluate(data_dir, out_dir, name: str, config: dict, *extra: str) -> tuple[pd.DataFrame, dict]:
    split = str(data_dir / "train.parquet")
    args = [
        "evaluate",
        "--config-json",
        json.dumps(config),
        "--input",
        split,
        "--name",
        name,
        "--train",
        split,
        "--out",
        str(out_dir / f"{name}.parquet"),
        "--summary",
        str(out_dir / f"{name}.summary.json"),
        *extra,
    ]
    assert main(args) == 0
    return pd.read_parquet(out_dir / f"{name}.parquet"), json.loads((out_dir / f"{name}.summary.json").read_text())


def test_reference_subset_is_random_and_seeded(tiny_qm9_dir, tmp_path):
    mol_ids = read_molecules(tiny_qm9_dir / "train.parquet").mol_id
    cfg = {"seed": 3, "evaluate": {"relax": {"enabled": False}}}
    frame, summary = _evaluate(tiny_qm9_dir, tmp_path, "a", cfg, "--max-molecules", "10")
    want = mol_ids[random_subset(len(mol_ids), 10, 3 + 4000)]
    np.testing.assert_array_equal(frame["mol_id"], want)
    assert not np.array_equal(want, mol_ids[:10])  # not the head of the file
    assert summary["subset"] == {"molecules": 10, "of": len(mol_ids), "seed": 4003}
    again, _ = _evaluate(tiny_qm9_dir, tmp_path, "b", cfg, "--max-molecules", "10")
    np.testing.assert_array_equal(again["mol_id"], frame["mol_id"])
    cfg["evaluate"]["reference_seed_offset"] = 17
    other, _ = _evaluate(tiny_qm9_dir, tmp_path, "c", cfg, "--max-molecules", "10")
    assert not np.array_equal(other["mol_id"], frame["mol_id"])
    assert "relax_status" not in frame.columns and "relax_num_scored" not in summary


def test_evaluate_relaxes_and_summarize_reports_it(tiny_qm9_dir, tmp_path):
    cfg = {"seed": 0, "evaluate": {"mlff": {"dtype": "float64"}, "relax": {"max_steps": 200}}}
    frame, summary = _evaluate(tiny_qm9_dir, tmp_path, "reference", cfg, "--max-molecules", "6")
    assert (frame["relax_status"] == "ok").all() and frame["relax_converged"].all()
    # QM9 minima (B3LYP) are close to ANI-2x minima: well under 3 kcal/mol each (tests/mlff/test_relax.py)
    assert frame["relaxation_energy_kcal_mol"].between(-0.01, 3.0).all()
    assert summary["relax_num_scored"] == 6 and summary["relax_seconds"] > 0
    assert summary["relaxation_energy_kcal_mol_median"] == pytest.approx(frame["relaxation_energy_kcal_mol"].median())
    csv, md = tmp_path / "summary.csv", tmp_path / "summary.md"
    assert (
        main(
            [
                "summarize",
                "--summaries",
                str(tmp_path / "reference.summary.json"),
                "--csv",
                str(csv),
                "--markdown",
                str(md),
            ]
        )
        == 0
    )
    table = pd.read_csv(csv)
    assert table.loc[0, "relax_num_scored"] == 6
    assert table.loc[0, "relax_heavy_rmsd_ang_mean"] == pytest.approx(summary["relax_heavy_rmsd_ang_mean"])
