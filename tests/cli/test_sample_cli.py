"""``elign sample`` and ``elign import-edm`` end to end (tiny models, in-process)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from rdkit import Chem

from elign.cli.main import main
from elign.diffusion.checkpoint import load_model, save_checkpoint
from elign.diffusion.factory import build_model, model_config_of
from elign.io.molecules import read_molecules, read_provenance
from elign.model.presets import make_model_config

HIST = {"3": 5, "4": 3, "6": 2}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny_model")
    torch.manual_seed(0)
    model = build_model(make_model_config("small_cpu", hidden_nf=8, n_layers=1, diffusion={"timesteps": 12}))
    save_checkpoint(d / "model.pt", model_config_of(model), model.state_dict())
    (d / "stats.json").write_text(json.dumps({"splits": {"train": {"num_atoms_histogram": HIST}}}))
    return d


def _sample(tiny, out_dir, *extra, config=None):
    cfg = {"sample": {"num_molecules": 7, "batch_size": 3}, "seed": 4}
    cfg["sample"].update(config or {})
    return main(
        [
            "sample",
            "--config-json",
            json.dumps(cfg),
            "--model",
            str(tiny / "model.pt"),
            "--stats",
            str(tiny / "stats.json"),
            "--out",
            str(out_dir / "s.parquet"),
            "--no-progress",
            *extra,
        ]
    )


def test_sample_writes_parquet_sdf_xyz_and_summary(tiny, tmp_path):
    assert _sample(tiny, tmp_path, "--sdf", str(tmp_path / "s.sdf"), "--xyz", str(tmp_path / "s.xyz")) == 0
    table = read_molecules(tmp_path / "s.parquet")
    assert len(table) == 7 and set(table.num_atoms.tolist()) <= {3, 4, 6}
    for col in ("status", "reason", "sample_seconds"):
        assert col in table.columns
    assert set(table.columns["status"]) <= {"ok", "nan", "exploded", "bad_charge"}
    assert (table.columns["sample_seconds"] > 0).all()
    meta = read_provenance(tmp_path / "s.parquet")
    assert meta["seed"] == str(4 + 1000) and meta["stage"] == "sample"
    summary = json.loads((tmp_path / "s.summary.json").read_text())
    assert summary["num_molecules"] == 7 and sum(summary["status_counts"].values()) == 7
    assert summary["reverse_steps"] == 12 and summary["molecules_per_s"] > 0 and len(summary["batches"]) == 3
    mols = list(Chem.SDMolSupplier(str(tmp_path / "s.sdf"), sanitize=False, removeHs=False))
    assert [m.GetNumAtoms() for m in mols] == table.num_atoms.tolist()
    assert [m.GetProp("status") for m in mols] == table.columns["status"].tolist()
    assert (tmp_path / "s.xyz").read_text().count("mol_id=") == 7
    # the same config reproduces the samples exactly
    again = tmp_path / "again"
    assert _sample(tiny, again) == 0
    assert np.array_equal(read_molecules(again / "s.parquet").positions_ang, table.positions_ang)


def test_sample_size_errors_are_clear(tiny, tmp_path, capsys):
    assert (
        main(
            [
                "sample",
                "--config-json",
                json.dumps({"sample": {"num_molecules": 2}}),
                "--model",
                str(tiny / "model.pt"),
                "--out",
                str(tmp_path / "s.parquet"),
            ]
        )
        == 2
    )
    assert "--stats" in capsys.readouterr().err
    assert _sample(tiny, tmp_path, config={"sizes": [3, 4]}) == 2
    assert "sample.sizes" in capsys.readouterr().err and not (tmp_path / "s.parquet").exists()


def test_import_edm_then_sample(shared_dir, tmp_path):
    edm = shared_dir / "reference" / "edm"
    out = tmp_path / "edm_small.pt"
    assert (
        main(
            [
                "import-edm",
                "--args",
                str(edm / "edm_small_args.pickle"),
                "--weights",
                str(edm / "edm_small_generative_model.npy"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    model = load_model(out)
    state = torch.load(edm / "edm_small_generative_model.npy", weights_only=True)
    assert torch.equal(
        model.dynamics.egnn.blocks[1].gcls[0].edge_mlp[0].weight,
        state["dynamics.egnn.e_block_1.gcl_0.edge_mlp.0.weight"],
    )
    assert model.T == 1000 and model.atom_decoder == ["H", "C", "N", "O", "F"]
    cfg = json.dumps({"sample": {"num_molecules": 2, "batch_size": 2, "sizes": 4}})
    assert (
        main(
            ["sample", "--config-json", cfg, "--model", str(out), "--out", str(tmp_path / "s.parquet"), "--no-progress"]
        )
        == 0
    )
    table = read_molecules(tmp_path / "s.parquet")
    assert table.num_atoms.tolist() == [4, 4] and len(table.columns["status"]) == 2


def test_import_edm_mismatch_exits_2(shared_dir, tmp_path, capsys):
    edm = shared_dir / "reference" / "edm"
    args = json.loads((edm / "edm_small_args.json").read_text())
    args["config"]["n_layers"] = 3
    bad = tmp_path / "args.json"
    bad.write_text(json.dumps(args))
    out = tmp_path / "model.pt"
    code = main(
        ["import-edm", "--args", str(bad), "--weights", str(edm / "edm_small_generative_model.npy"), "--out", str(out)]
    )
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert "elign import-edm: error:" in err and "architecture mismatch" in err and "n_layers=3" in err
    assert "Traceback" not in err
    shutil.copy(edm / "edm_small_args.json", tmp_path / "ok.json")
    assert main(["import-edm", "--args", str(tmp_path / "ok.json"), "--weights", str(bad), "--out", str(out)]) == 2
    assert "not a readable EDM state dict" in capsys.readouterr().err


def test_time_sampling_cli_times_every_model_on_one_batch(tiny, tmp_path):
    cfg = {"seed": 1, "sample": {"timing": {"molecules": 3, "steps": 2, "reps": 2}}}
    out = tmp_path / "timing.json"
    assert (
        main(
            [
                "time-sampling",
                "--config-json",
                json.dumps(cfg),
                "--stats",
                str(tiny / "stats.json"),
                "--model",
                f"base={tiny / 'model.pt'}",
                "--model",
                f"copy={tiny / 'model.pt'}",
                "--out",
                str(out),
                "--threads",
                "1",
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert set(result["models"]) == {"base", "copy"} and result["baseline"] == "base"
    assert result["ratio_vs_base"]["base"] == 1.0 and result["models"]["copy"]["molecules"] == 3
    assert result["models"]["copy"]["steps_timed"] == 2 and len(result["models"]["copy"]["reps_s"]) == 2


def test_time_sampling_cli_rejects_duplicate_names(tiny, tmp_path, capsys):
    model = f"m={tiny / 'model.pt'}"
    assert (
        main(
            [
                "time-sampling",
                "--stats",
                str(tiny / "stats.json"),
                "--model",
                model,
                "--model",
                model,
                "--out",
                str(tmp_path / "t.json"),
            ]
        )
        == 2
    )
    assert "unique" in capsys.readouterr().err


class _NoForceField:
    """Stands in for an MLFF backend where guidance.delta is patched (only describe() is called)."""

    def describe(self) -> dict:
        return {"backend": "none"}


def test_guided_sampling_takes_guidance_num_molecules(tiny, tmp_path, monkeypatch):
    """sample.guidance_num_molecules sets how many molecules the guided baseline draws."""
    from elign.diffusion import guidance

    monkeypatch.setattr(
        guidance.MLFFGuidance,
        "delta",
        lambda self, state: (torch.zeros_like(state.mu), torch.ones(state.mu.shape[0], dtype=bool)),
    )
    import elign.mlff.registry as registry

    monkeypatch.setattr(registry, "backend_from_config", lambda cfg: _NoForceField())
    assert _sample(tiny, tmp_path, "--guidance", "mlff", config={"guidance_num_molecules": 2}) == 0
    assert len(read_molecules(tmp_path / "s.parquet")) == 2
    assert _sample(tiny, tmp_path / "plain", config={"guidance_num_molecules": 2}) == 0
    assert len(read_molecules(tmp_path / "plain" / "s.parquet")) == 7
