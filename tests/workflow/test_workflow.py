"""The Snakemake workflow: lint, dry run from a fresh copy, config errors, a tiny end-to-end run, reruns."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from elign.io.molecules import read_molecules

TREE = ("Snakefile", "workflow", "config", "envs")


def _snakemake(cwd: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    env.setdefault("TORCHANI_DATA_DIR", str(Path(__file__).resolve().parents[2].parent / "shared/mlff/torchani"))
    return subprocess.run([str(Path(sys.executable).parent / "snakemake"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture()
def fresh(tmp_path, repo_root) -> Path:
    """The workflow files alone, as in a fresh clone (no results/, no .snakemake/)."""
    for name in TREE:
        src = repo_root / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    return tmp_path


def test_lint_is_clean(repo_root):
    proc = _snakemake(repo_root, "--lint")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations" in proc.stdout + proc.stderr


def test_dry_run_from_fresh_copy(fresh):
    proc = _snakemake(fresh, "-n", "--cores", "1")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    assert "prepare_data" in out and "results/data/qm9/train.parquet" in out


def test_bad_config_stops_with_key_path(fresh):
    (fresh / "bad.yaml").write_text("data:\n  sorce: qm9pack\n")
    proc = _snakemake(fresh, "-n", "--cores", "1", "--configfile", "bad.yaml")
    assert proc.returncode != 0
    assert "data.sorce: unknown key" in proc.stdout + proc.stderr


def test_smoke_run_end_to_end_and_reruns(fresh):
    args = ("--cores", "2", "--configfile", "config/experiments/smoke.yaml")
    proc = _snakemake(fresh, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = fresh / "results/data/qm9_smoke"
    sizes = {s: len(read_molecules(out / f"{s}.parquet")) for s in ("train", "valid", "test")}
    assert sizes == {"train": 256, "valid": 64, "test": 64}
    assert json.loads((out / "stats.json").read_text())["split_sizes"] == sizes
    assert "split sizes" in (fresh / "logs/prepare/qm9_smoke.log").read_text()
    assert (fresh / "benchmarks/prepare/qm9_smoke.tsv").exists()
    # prepare -> pretrain -> sample -> evaluate -> summary, all through Snakemake
    samples = fresh / "results/samples/qm9_smoke"
    assert len(read_molecules(samples / "pretrained.parquet")) == 8
    assert (samples / "pretrained.sdf").read_text().count("$$$$") == 8
    assert (samples / "pretrained.xyz").stat().st_size > 0
    import pandas as pd
    summary = pd.read_csv(fresh / "results/metrics/qm9_smoke/summary.csv")
    assert summary["model"].tolist() == ["reference", "pretrained"]
    assert summary.loc[0, "num_molecules"] == 16 and summary.loc[1, "num_molecules"] == 8
    assert summary.loc[0, "molecule_stability"] > 0.8  # real QM9 molecules
    # Up to date: nothing reruns.
    again = _snakemake(fresh, *args, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr
    # A changed data key reruns the stage (params change detection); --forcerun reruns it on request.
    (fresh / "more.yaml").write_text("data:\n  subset:\n    test: 32\n")
    changed = _snakemake(fresh, *args, "more.yaml", "-n")  # --configfile takes several files
    assert "Params have changed since last execution" in changed.stdout
    assert "wildcards: dataset=qm9_smoke" in changed.stdout
    forced = _snakemake(fresh, *args, "-n", "--forcerun", "prepare_data")
    assert "prepare_data" in forced.stdout
