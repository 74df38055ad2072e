"""``elign pretrain`` end to end on a tiny prepared dataset, and its error messages."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from elign.cli.main import main
from elign.diffusion.checkpoint import load_checkpoint, load_model
from elign.io.molecules import read_molecules, write_molecules

TINY = {
    "source": {"kind": "train"},
    "preset": "small_cpu",
    "architecture": {"n_layers": 1, "hidden_nf": 16},
    "device": "cpu",
    "batch_size": 16,
    "max_steps": 3,
    "checkpoint_every": 2,
    "log_every": 2,
}


@pytest.fixture(scope="module")
def data_dir(tiny_qm9_dir, tmp_path_factory):
    """A prepared-data folder written with write_molecules (64 QM9 molecules in train.parquet)."""
    out = tmp_path_factory.mktemp("prepared")
    write_molecules(out / "train.parquet", read_molecules(tiny_qm9_dir / "train.parquet"), {"stage": "test"})
    return out


def _pretrain(data_dir, out, pretrain=None, *extra):
    # a backbone trained here cannot be compared with the shipped aligned model (config_rules): FED-GRPO trains too
    cfg = json.dumps({"seed": 1, "pretrain": {**TINY, **(pretrain or {})}, "finetune": {"source": {"kind": "train"}}})
    return main(
        ["pretrain", "--config-json", cfg, "--data-dir", str(data_dir), "--out", str(out), "--no-progress", *extra]
    )


def test_pretrain_end_to_end(data_dir, tmp_path, repo_root):
    out = tmp_path / "models" / "pretrained.pt"
    assert _pretrain(data_dir, out, None, "--config", str(repo_root / "config/config.yaml")) == 0
    history = pq.read_table(tmp_path / "models" / "history.parquet").to_pandas()  # default: beside --out
    assert history["step"].tolist() == [2, 3]
    assert sorted(p.name for p in out.parent.iterdir()) == ["backbone.json", "history.parquet", "pretrained.pt"]
    assert json.loads((out.parent / "backbone.json").read_text())["kind"] == "train"
    ckpt = load_checkpoint(out)
    assert ckpt["extra"]["step"] == 3 and ckpt["extra"]["seed"] == 1 and ckpt["ema_state_dict"] is not None
    assert ckpt["model_config"]["atom_decoder"] == ["H", "C", "N", "O", "F"]
    model = load_model(out)
    assert model.dynamics.config.hidden_nf == 16
    # same command again: already at max_steps, nothing to train, same weights
    before = ckpt["state_dict"]
    assert (
        _pretrain(
            data_dir,
            out,
            None,
            "--config",
            str(repo_root / "config/config.yaml"),
            "--history",
            str(tmp_path / "h.parquet"),
        )
        == 0
    )
    after = load_checkpoint(out)["state_dict"]
    assert all((before[k] == after[k]).all() for k in before)
    assert pq.read_table(tmp_path / "h.parquet").num_rows == 2


@pytest.mark.parametrize(
    "pretrain, message",
    [
        ({"batch_size": 0}, "pretrain.batch_size: Input should be greater than or equal to 1"),
        ({"learning_rate": 1e-3}, "pretrain.learning_rate: unknown key"),
        ({"batch_size": 128}, "pretrain.batch_size=128 exceeds the 64 training molecules"),
        ({"atom_decoder": ["H", "C", "N", "F"]}, "element O (Z=8) is not in the atom decoder"),
    ],
)
def test_bad_config_is_one_clear_message(data_dir, tmp_path, capsys, pretrain, message):
    assert _pretrain(data_dir, tmp_path / "m.pt", pretrain) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "m.pt").exists()


def test_missing_training_split(tmp_path, capsys):
    assert _pretrain(tmp_path / "nowhere", tmp_path / "m.pt") == 2
    assert "training split not found" in capsys.readouterr().err


def test_pretrain_listed_in_help(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "pretrain" in capsys.readouterr().out
