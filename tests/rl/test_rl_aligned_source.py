"""finetune.source: a run's aligned model from a FED-GRPO checkpoint or a shipped aligned model, checked
against the run's pretrained model."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
import torch
from rl_toys import HarmonicBackend, save_tiny

from elign.cli.main import main
from elign.config import AlignedSource, ConfigError, validate_config
from elign.diffusion.checkpoint import load_checkpoint, load_model, save_checkpoint
from elign.io.provenance import file_sha256
from elign.model.zoo import CARD_FORMAT, ShippedModelError
from elign.rl.aligned_source import backbone_sha256, materialize_aligned
from elign.rl.trainer import finetune

RUN = {
    "iterations": 2,
    "prompts_per_iteration": 1,
    "rollouts_per_prompt": 2,
    "sizes": [4],
    "shared_prefix_steps": 14,
    "train_steps_per_rollout": 2,
    "ema_decay": 0.5,
    "device": "cpu",
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("aligned_source")
    pretrained = save_tiny(root / "pretrained.pt")
    cfg = validate_config({"seed": 1, "finetune": RUN})
    result = finetune(
        cfg, pretrained, root / "ft.pt", root / "ft_history.parquet", backend=HarmonicBackend(), progress=False
    )
    return root, pretrained, result.out


def _ship(root, finetuned, backbone_sha: str, kind: str = "aligned"):
    folder = root / "models" / "tiny-elign"
    folder.mkdir(parents=True, exist_ok=True)
    ckpt = load_checkpoint(finetuned)
    save_checkpoint(folder / "weights.pt", ckpt["model_config"], ckpt["ema_state_dict"], None, {"stage": "shipped"})
    card = {
        "format": CARD_FORMAT,
        "name": "tiny-elign",
        "kind": kind,
        "backbone": {"name": "tiny", "sha256": backbone_sha},
        "weights": {"file": "weights.pt", "sha256": file_sha256(folder / "weights.pt")},
        "architecture": {},
        "config": {},
        "data": {},
        "training": {},
        "metrics": {},
    }
    (folder / "card.json").write_text(json.dumps(card))
    return folder


def test_a_finetune_checkpoint_becomes_the_runs_aligned_model(run, tmp_path):
    root, pretrained, finetuned = run
    src = AlignedSource(kind="file", path=str(finetuned))
    info = materialize_aligned(src, pretrained, tmp_path / "aligned.pt", tmp_path / "h.parquet")
    assert info["backbone"]["sha256"] == file_sha256(pretrained)
    got, want = load_model(tmp_path / "aligned.pt"), load_model(finetuned)  # both: the EMA (sampling) weights
    assert all(torch.equal(a, b) for a, b in zip(got.state_dict().values(), want.state_dict().values()))
    assert pq.read_table(tmp_path / "h.parquet").column("iteration").to_pylist() == [1, 2]


def test_an_aligned_model_of_another_backbone_is_refused(run, tmp_path):
    root, _, finetuned = run
    other = save_tiny(tmp_path / "other.pt", seed=7)
    with pytest.raises(ConfigError, match="aligned from the backbone"):
        materialize_aligned(
            AlignedSource(kind="file", path=str(finetuned)), other, tmp_path / "a.pt", tmp_path / "h.pq"
        )
    assert not (tmp_path / "a.pt").exists()
    with pytest.raises(ConfigError, match="not a FED-GRPO checkpoint"):
        materialize_aligned(AlignedSource(kind="file", path=str(other)), other, tmp_path / "a.pt", tmp_path / "h.pq")
    with pytest.raises(FileNotFoundError, match="finetune.source.path"):
        materialize_aligned(
            AlignedSource(kind="file", path=str(tmp_path / "no.pt")), other, tmp_path / "a", tmp_path / "h"
        )


def test_a_shipped_aligned_model_is_checked_and_materialized(run, tmp_path):
    root, pretrained, finetuned = run
    folder = _ship(tmp_path, finetuned, backbone_sha256(pretrained))
    src = AlignedSource(kind="shipped", name="tiny-elign", models_dir=str(tmp_path / "models"))
    info = materialize_aligned(src, pretrained, tmp_path / "aligned.pt", tmp_path / "h.parquet")
    assert info["name"] == "tiny-elign" and load_checkpoint(tmp_path / "aligned.pt")["extra"]["source"] == info
    (folder / "weights.pt").write_bytes((folder / "weights.pt").read_bytes() + b"x")
    with pytest.raises(ShippedModelError, match="does not match its card"):
        materialize_aligned(src, pretrained, tmp_path / "b.pt", tmp_path / "h2.parquet")
    _ship(tmp_path, finetuned, backbone_sha256(pretrained), kind="backbone")
    with pytest.raises(ShippedModelError, match="not an aligned model"):
        materialize_aligned(src, pretrained, tmp_path / "b.pt", tmp_path / "h2.parquet")


def test_each_kind_needs_its_keys():
    with pytest.raises(ValueError, match="needs name"):
        validate_config({"finetune": {"source": {"kind": "shipped"}}})
    with pytest.raises(ValueError, match="needs path"):
        validate_config({"finetune": {"source": {"kind": "file"}}})


def test_the_cli_materializes_instead_of_training(run, tmp_path):
    root, pretrained, finetuned = run
    cfg = {"finetune": {"source": {"kind": "file", "path": str(finetuned)}}}
    out = tmp_path / "aligned.pt"
    argv = ["finetune", "--config-json", json.dumps(cfg), "--model", str(pretrained), "--out", str(out)]
    assert main(argv) == 0 and load_checkpoint(out)["extra"]["stage"] == "aligned"


def test_training_keys_from_the_split_or_a_keys_file(tiny_qm9_dir, tmp_path):
    import gzip

    from elign.stages.evaluate import reference_keys
    from elign.stages.finetune import training_keys_of

    keys = reference_keys(tiny_qm9_dir / "train.parquet", "smiles")
    assert len(keys) > 10 and training_keys_of(str(tiny_qm9_dir / "train.parquet")) == keys
    with gzip.open(tmp_path / "keys.txt.gz", "wt", encoding="utf-8") as fh:
        fh.write("\n".join(sorted(keys)) + "\n")
    assert training_keys_of(str(tmp_path / "keys.txt.gz")) == keys
