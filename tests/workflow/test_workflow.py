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

TREE = ("Snakefile", "workflow", "config", "envs", "models")  # models/: the shipped backbone of the default run


def _snakemake(cwd: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    shared = Path(__file__).resolve().parents[2].parent / "shared/mlff"
    env.setdefault("TORCHANI_DATA_DIR", str(shared / "torchani"))
    env.setdefault("ELIGN_AIMNET2_MODEL", str(shared / "aimnet2/aimnet2_wb97m-d3_ens.jpt"))  # geom_smoke's MLFF
    return subprocess.run(
        [str(Path(sys.executable).parent / "snakemake"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture()
def fresh(tmp_path, repo_root) -> Path:
    """The workflow files alone, as in a fresh clone (no results/, no .snakemake/)."""
    for name in TREE:
        src = repo_root / name
        if src.is_dir():  # what a clone holds: not the ignored in-training evaluation snapshots
            shutil.copytree(src, tmp_path / name, ignore=shutil.ignore_patterns("*.evals"))
        else:
            shutil.copy(src, tmp_path / name)
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


def _planned_jobs(dry_run_stdout: str) -> set[tuple[str, str]]:
    """(rule, wildcards) of every job a dry run plans, e.g. ("sample", "dataset=qm9_smoke, model=aligned")."""
    jobs, rule = set(), None
    for line in dry_run_stdout.splitlines():
        line = line.strip()
        if line.startswith(("rule ", "localrule ")) and line.endswith(":"):
            rule = line.split()[1].rstrip(":")
            jobs.add((rule, ""))
        elif line.startswith("wildcards:") and rule is not None:
            jobs.discard((rule, ""))
            jobs.add((rule, line.removeprefix("wildcards:").strip()))
            rule = None
    return jobs


def _check_smoke_outputs(root: Path) -> None:
    import pandas as pd

    out = root / "results/data/qm9_smoke"
    sizes = {s: len(read_molecules(out / f"{s}.parquet")) for s in ("train", "valid", "test")}
    assert sizes == {"train": 256, "valid": 64, "test": 64}
    assert json.loads((out / "stats.json").read_text())["split_sizes"] == sizes
    assert "split sizes" in (root / "logs/prepare/qm9_smoke.log").read_text()
    assert (root / "benchmarks/prepare/qm9_smoke.tsv").exists()
    # pretrain -> finetune: the aligned checkpoint and one history row per FED-GRPO iteration
    history = pd.read_parquet(root / "results/models/qm9_smoke/finetune_history.parquet")
    assert history["iteration"].tolist() == [1, 2]
    samples = root / "results/samples/qm9_smoke"
    for model, n in (("pretrained", 8), ("aligned", 8), ("guided", 4)):
        assert len(read_molecules(samples / f"{model}.parquet")) == n
        assert (samples / f"{model}.sdf").read_text().count("$$$$") == n
        assert (samples / f"{model}.xyz").stat().st_size > 0
    assert json.loads((samples / "guided.summary.json").read_text())["guidance"].startswith("mlff")
    summary = pd.read_csv(root / "results/metrics/qm9_smoke/summary.csv")
    assert summary["model"].tolist() == ["reference", "pretrained", "aligned", "guided"]
    assert summary["num_molecules"].tolist() == [16, 8, 8, 4]
    assert summary.loc[0, "molecule_stability"] > 0.8  # real QM9 molecules
    timing = json.loads((root / "results/timing/qm9_smoke/sampling.json").read_text())
    assert set(timing["ratio_vs_pretrained"]) == {"pretrained", "aligned", "guided"}
    assert timing["ratio_vs_pretrained"]["pretrained"] == 1.0
    dft = {}
    for model in ("pretrained", "aligned", "guided"):  # 2 molecules per model, each a row with a status
        dft[model] = pd.read_parquet(root / f"results/dft/qm9_smoke/{model}.parquet")
        assert len(dft[model]) == 2 and dft[model]["status"].notna().all()
    selection = pd.read_parquet(root / "results/dft/qm9_smoke/selection.parquet")
    # paired: the mol_ids chosen from pretrained's sample, for pretrained and for aligned (same noise)
    assert dft["pretrained"]["mol_id"].tolist() == dft["aligned"]["mol_id"].tolist() == selection["mol_id"].tolist()
    first = dft["pretrained"].iloc[0]  # dft.relax_molecules: 1 in the smoke config
    assert first["relax_status"] != "skipped" or "single point failed" in first["relax_reason"]
    assert (dft["pretrained"]["relax_status"].iloc[1:] == "skipped").all()
    stats = pd.read_csv(root / "results/report/qm9_smoke/statistics.csv")
    assert {"aligned", "guided"} <= set(stats["model"])
    rows = stats.set_index(["metric", "model"])
    assert bool(rows.loc[("dft_converged", "aligned"), "paired"])  # DFT rows of the same mol_ids: paired
    assert not bool(rows.loc[("dft_converged", "guided"), "paired"])  # other noise: unpaired
    html = (root / "results/report/qm9_smoke/index.html").read_text()
    assert "<table" in html and "data:image/png;base64" in html


def test_smoke_run_end_to_end_and_reruns(fresh):
    args = ("--cores", "2", "--configfile", "config/experiments/smoke.yaml")
    proc = _snakemake(fresh, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _check_smoke_outputs(fresh)
    # Snakemake's own HTML report of the run (tables and figures flagged with report()).
    html = _snakemake(fresh, *args, "--report", "report.html")
    assert html.returncode == 0, html.stdout + html.stderr
    assert (fresh / "report.html").stat().st_size > 10_000
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
    # A changed FED-GRPO key reruns exactly finetune and what follows from the aligned model.
    (fresh / "ft.yaml").write_text("finetune:\n  lr: 3.0e-5\n")
    ft = _snakemake(fresh, *args, "ft.yaml", "-n")
    assert ft.returncode == 0, ft.stdout + ft.stderr
    planned = _planned_jobs(ft.stdout)
    rules = {rule for rule, _ in planned}
    assert rules == {  # not dft_select: the DFT molecules are chosen from pretrained's sample
        "finetune",
        "sample",
        "evaluate",
        "time_sampling",
        "dft",
        "dft_gather",
        "summarize_metrics",
        "statistics",
        "report",
        "all",
    }, rules
    assert {w for r, w in planned if r in ("sample", "dft_gather")} == {"dataset=qm9_smoke, model=aligned"}
    assert {w for r, w in planned if r == "evaluate"} == {"dataset=qm9_smoke, name=aligned"}
    # --forcerun finetune: the same set, without a config change.
    forced_ft = _planned_jobs(_snakemake(fresh, *args, "-n", "--forcerun", "finetune").stdout)
    assert forced_ft == planned
    # A lost DFT shard (and so no gathered table): only that shard is recomputed, the finished ones are reused.
    (fresh / "results/dft/qm9_smoke/pretrained/shard_1.parquet").unlink()
    (fresh / "results/dft/qm9_smoke/pretrained.parquet").unlink()
    shard = _planned_jobs(_snakemake(fresh, *args, "-n").stdout)
    assert {w for r, w in shard if r == "dft"} == {"dataset=qm9_smoke, model=pretrained, shard=1"}
    assert {w for r, w in shard if r == "dft_gather"} == {"dataset=qm9_smoke, model=pretrained"}
    _smoke_finetune_with_xtb_reward(fresh, args)


def _smoke_finetune_with_xtb_reward(root: Path, args: tuple[str, ...]) -> None:
    """FED-GRPO with the GFN2-xTB reward (config/experiments/reward_xtb.yaml) through Snakemake: only finetune
    reruns, on the smoke run's pretrained model. Its 4-step model scatters atoms, whose SCF does not converge at
    tblite's 300 K: the smoke run smears at 3000 K so that rewards (and an update) come out."""
    import pandas as pd

    from elign.diffusion.checkpoint import load_checkpoint

    (root / "xtb_smoke.yaml").write_text("finetune:\n  mlff: {electronic_temperature_k: 3000.0, workers: 1}\n")
    target = "results/models/qm9_smoke/aligned.pt"
    xtb_args = (*args, "config/experiments/reward_xtb.yaml", "xtb_smoke.yaml")
    planned = _planned_jobs(_snakemake(root, target, *xtb_args, "-n").stdout)
    assert {rule for rule, _ in planned} == {"finetune"}, planned
    proc = _snakemake(root, target, *xtb_args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    aligned = load_checkpoint(root / target)
    assert aligned["extra"]["config"]["finetune"]["mlff"]["backend"] == "gfn2-xtb"
    history = pd.read_parquet(root / "results/models/qm9_smoke/finetune_history.parquet")
    assert history["iteration"].tolist() == [1, 2]
    assert (history["mlff_failures"] < history["num_rollouts"]).all()  # GFN2-xTB scored final molecules
    assert history["force_rms_mean_ev_per_ang"].notna().all() and (history["trained_pairs"] > 0).any()


def test_pretrain_launches_torchrun_with_the_jobs_gpus(fresh):
    """pretrain.gpus > 1 is the job's gpu resource (Slurm --gpus) and one torchrun process per GPU."""
    (fresh / "gpus.yaml").write_text(
        "pretrain:\n  source: {kind: train}\n  gpus: 4\n  device: cuda\nfinetune:\n  source: {kind: train}\n"
    )
    proc = _snakemake(
        fresh,
        "results/models/qm9/pretrained.pt",
        "-n",
        "-p",
        "--cores",
        "1",
        "--configfile",
        "config/config.yaml",
        "gpus.yaml",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "torchrun --standalone --nproc_per_node 4 -m elign.cli.main pretrain" in proc.stdout
    assert "gpu=4" in proc.stdout
    single = _snakemake(fresh, "-n", "-p", "--cores", "1", "results/models/qm9/pretrained.pt")
    assert "torchrun" not in single.stdout and "elign pretrain --config-json" in single.stdout


def test_guided_dft_molecules_are_passed_only_for_the_guided_model(fresh):
    """dft.guided_molecules reaches the guided model's DFT shards as --molecules and no other model's."""
    (fresh / "few.yaml").write_text("dft:\n  guided_molecules: 3\n  shards: 3\n")  # no shard without a molecule
    targets = [f"results/dft/qm9/{m}/shard_0.parquet" for m in ("pretrained", "guided")]
    proc = _snakemake(fresh, *targets, "-n", "-p", "--cores", "1", "--configfile", "config/config.yaml", "few.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    commands = [line for line in proc.stdout.splitlines() if "elign dft --" in line]
    guided = [c for c in commands if "guided.parquet" in c]
    others = [c for c in commands if "pretrained.parquet" in c]
    assert guided and others
    assert all("--molecules 3 " in c for c in guided)
    assert not any("--molecules" in c for c in others)


def test_geom_smoke_run_end_to_end(fresh, repo_root):
    """GEOM-Drugs through every stage on the msgpack fixture (config/experiments/geom_smoke.yaml); the report
    has GEOM rows and a converged DFT single point (the tiny fixture-trained backbone samples molecule-like
    geometries). ~2-3.5 min on two busy cores."""
    import pandas as pd

    shutil.copytree(repo_root / "tests/fixtures/geom", fresh / "tests/fixtures/geom")
    proc = _snakemake(fresh, "--cores", "2", "--configfile", "config/experiments/geom_smoke.yaml")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    stats = json.loads((fresh / "results/data/geom_smoke/stats.json").read_text())
    assert "split sizes" in (fresh / "logs/prepare/geom_smoke.log").read_text() and stats
    summary = pd.read_csv(fresh / "results/metrics/geom_smoke/summary.csv")
    assert summary["model"].tolist() == ["reference", "pretrained", "aligned", "guided"]
    reference = summary.iloc[0]
    assert reference["validity"] == 1.0 and reference["mlff_ok_fraction"] == 1.0  # real conformers, AIMNet2
    guided = read_molecules(fresh / "results/samples/geom_smoke/guided.parquet")
    assert "guidance_status" in guided.columns
    models = ("pretrained", "aligned", "guided")
    dft = {m: pd.read_parquet(fresh / f"results/dft/geom_smoke/{m}.parquet") for m in models}
    converged = {m: int((t["status"] == "ok").sum()) for m, t in dft.items()}
    assert sum(converged.values()) >= 1, {m: t[["status", "reason"]].to_dict("records") for m, t in dft.items()}
    ok = pd.concat([t[t["status"] == "ok"] for t in dft.values()])
    assert ok["energy_ha"].notna().all() and (ok["num_atoms"] <= 26).all()  # dft.max_atoms
    html = (fresh / "results/report/geom_smoke/index.html").read_text()
    assert "geom_smoke" in html and "reference" in html
