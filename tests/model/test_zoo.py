"""Shipped backbones: shipping writes weights + card, loading checks the sha256, and a run's
``pretrain.source`` is checked with one clear error per problem (unknown name, missing file, damaged weights,
architecture mismatch, atom types the data needs)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from elign.config import ConfigError, PretrainedSource, validate_config
from elign.diffusion.checkpoint import load_checkpoint, load_model, save_checkpoint
from elign.diffusion.sampler import sample_molecules
from elign.io.molecules import read_molecules
from elign.io.provenance import file_sha256
from elign.model.zoo import ShippedModelError, find_shipped, list_shipped, verify_weights
from elign.stages.ship import ShipRequest, ship_backbone
from elign.training.backbone import materialize_pretrained
from elign.training.pretrain import pretrain

REPO = Path(__file__).resolve().parents[2]
TINY = {
    "preset": "small_cpu",
    "architecture": {"n_layers": 1, "hidden_nf": 16},
    "diffusion_steps": 20,
    "device": "cpu",
    "batch_size": 16,
    "max_steps": 8,
    "checkpoint_every": 4,
    "log_every": 4,
    "eval_every": 4,
    "eval_molecules": 4,
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def data_dir(tiny_qm9_dir, tmp_path_factory) -> Path:
    """train = valid = the 64 tiny molecules; stats.json with their size histogram and element counts."""
    out = tmp_path_factory.mktemp("zoo_data")
    shutil.copy(tiny_qm9_dir / "train.parquet", out / "train.parquet")
    shutil.copy(tiny_qm9_dir / "train.parquet", out / "valid.parquet")
    table = read_molecules(out / "train.parquet")
    sizes = torch.bincount(torch.as_tensor(table.num_atoms)).tolist()
    from elign.elements import symbol

    counts = torch.bincount(torch.as_tensor(table.atomic_numbers.astype("int64"))).tolist()
    stats = {
        "splits": {
            "train": {
                "num_atoms_histogram": {str(n): c for n, c in enumerate(sizes) if c},
                "atom_type_counts": {symbol(z): c for z, c in enumerate(counts) if c},
            }
        }
    }
    (out / "stats.json").write_text(json.dumps(stats))
    return out


@pytest.fixture(scope="module")
def shipped(data_dir, tmp_path_factory) -> Path:
    """A tiny backbone trained for 8 steps (evaluations at 4 and 8) and shipped as models/tiny."""
    work = tmp_path_factory.mktemp("zoo")
    out = work / "train" / "pretrained.pt"
    pretrain(
        validate_config({"seed": 0, "pretrain": TINY}, whole=False),
        read_molecules(data_dir / "train.parquet"),
        out,
        None,
        progress=False,
    )
    # from the resume file, as a run still in progress is shipped (its evaluations sit in pretrained.pt.evals/)
    shutil.copy(out, out.with_name("pretrained.pt.partial"))
    ship_backbone(
        ShipRequest(
            out.with_name("pretrained.pt.partial"),
            "tiny",
            work / "models",
            data_dir,
            select="best",
            num_molecules=6,
            seed=99,
            batch_size=4,
            valid_molecules=16,
            reproduce="snakemake ...",
            summary="a test",
        )
    )
    return work / "models"


def test_ship_writes_a_complete_card(shipped):
    folder = shipped / "tiny"
    assert sorted(p.name for p in folder.iterdir()) == [
        "card.json",
        "card.md",
        "curves.png",
        "history.parquet",
        "weights.pt",
    ]
    card = json.loads((folder / "card.json").read_text())
    assert card["weights"]["sha256"] == file_sha256(folder / "weights.pt")
    assert card["weights"]["selected_step"] in (4, 8) and "molecule stability" in card["weights"]["selection"]
    assert card["metrics"]["num_molecules"] == 6 and card["metrics"]["seed"] == 99
    for key in ("atom_stability", "molecule_stability", "validity"):
        assert 0.0 <= card["metrics"][key] <= 1.0
    assert card["data"]["valid_molecules"] == 16 and card["data"]["valid_loss"] > 0
    assert card["training"]["steps"] == 8 and card["training"]["batch_size"] == 16
    assert [(s["start_step"], s["end_step"]) for s in card["training"]["segments"]] == [(0, 8)]
    assert card["config"]["pretrain"]["eval_every"] == 4
    text = (folder / "card.md").read_text()
    assert card["weights"]["sha256"] in text and "| 1 | 0–8 |" in text
    weights = load_checkpoint(folder / "weights.pt")
    assert weights["ema_state_dict"] is None
    assert all(v.dtype == torch.float32 for k, v in weights["state_dict"].items() if k != "schedule.gamma")


def test_card_json_is_strict_json():
    from elign.report.card import json_safe

    card = {"training": {"segments": [{"wall_seconds": float("nan"), "train_seconds": 1.5}]}, "x": [float("inf")]}
    assert json_safe(card) == {"training": {"segments": [{"wall_seconds": None, "train_seconds": 1.5}]}, "x": [None]}

    def refuse(constant: str):
        raise AssertionError(f"non-standard JSON constant {constant}")

    for card_file in sorted((REPO / "models").glob("*/card.json")):  # every shipped card parses strictly
        json.loads(card_file.read_text(), parse_constant=refuse)


def test_card_states_the_learning_rate_schedule():
    from elign.report.card import lr_schedule_text

    assert lr_schedule_text({"lr": 5e-4}) == "constant 0.0005"
    decay = {"start_step": 60000, "end_step": 75000, "final_lr": 2.5e-5, "shape": "cosine"}
    assert lr_schedule_text({"lr": 5e-4, "lr_decay": decay}) == (
        "0.0005 until step 60,000, then cosine decay to 2.5e-05 at step 75,000"
    )


def test_shipped_model_loads_checked_and_samples(shipped, data_dir, tmp_path):
    assert [m.name for m in list_shipped(shipped)] == ["tiny"]
    source = PretrainedSource(kind="shipped", name="tiny", models_dir=str(shipped))
    info = materialize_pretrained(
        source,
        tmp_path / "pretrained.pt",
        tmp_path / "history.parquet",
        tmp_path / "backbone.json",
        data_dir / "stats.json",
    )
    assert info["sha256"] == find_shipped("tiny", shipped).sha256
    assert json.loads((tmp_path / "backbone.json").read_text())["card"]["metrics"]["seed"] == 99
    model = load_model(tmp_path / "pretrained.pt")
    result = sample_molecules(model, [5, 7], batch_size=2, seed=3)
    assert result.table.num_atoms.tolist() == [5, 7] and len(result.table.positions_ang) == 12


def test_damaged_or_replaced_weights_are_refused(shipped, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(shipped, models)
    weights = models / "tiny" / "weights.pt"
    ckpt = load_checkpoint(weights)
    ckpt["state_dict"]["dynamics.egnn.embedding.bias"] += 1.0
    save_checkpoint(weights, ckpt["model_config"], ckpt["state_dict"], None, ckpt["extra"])
    with pytest.raises(ShippedModelError, match="does not match its card"):
        verify_weights(find_shipped("tiny", models))
    weights.unlink()
    with pytest.raises(ShippedModelError, match="weights file named by .* is missing"):
        verify_weights(find_shipped("tiny", models))


def test_source_errors_name_the_problem(shipped, data_dir, tmp_path):
    outs = (tmp_path / "p.pt", tmp_path / "h.parquet", tmp_path / "b.json")
    with pytest.raises(ShippedModelError, match=r"no shipped backbone 'nope' .*shipped: tiny"):
        materialize_pretrained(PretrainedSource(kind="shipped", name="nope", models_dir=str(shipped)), *outs)
    with pytest.raises(FileNotFoundError, match="pretrain.source.path: checkpoint .*missing.pt does not exist"):
        materialize_pretrained(PretrainedSource(kind="file", path=str(tmp_path / "missing.pt")), *outs)
    # a card whose architecture differs from the weights it names
    models = tmp_path / "models"
    shutil.copytree(shipped, models)
    card_path = models / "tiny" / "card.json"
    card = json.loads(card_path.read_text())
    card["architecture"]["model_config"]["dynamics"]["hidden_nf"] = 32
    card_path.write_text(json.dumps(card))
    with pytest.raises(ShippedModelError, match=r"architecture differs from its card \(dynamics.hidden_nf: 32 -> 16"):
        materialize_pretrained(PretrainedSource(kind="shipped", name="tiny", models_dir=str(models)), *outs)
    # data with an element the backbone has no atom type for
    stats = json.loads((data_dir / "stats.json").read_text())
    stats["splits"]["train"]["atom_type_counts"]["S"] = 3
    (tmp_path / "stats.json").write_text(json.dumps(stats))
    with pytest.raises(ConfigError, match=r"the data has \['S'\]"):
        materialize_pretrained(
            PretrainedSource(kind="shipped", name="tiny", models_dir=str(shipped)), *outs, stats=tmp_path / "stats.json"
        )
    assert not any(p.exists() for p in outs)  # every check runs before anything is written


def test_source_config_is_checked():
    with pytest.raises(ConfigError, match="kind 'shipped' needs name"):
        validate_config({"pretrain": {"source": {"kind": "shipped"}}})
    with pytest.raises(ConfigError, match="kind 'edm' needs edm_args"):
        validate_config({"pretrain": {"source": {"kind": "edm", "path": "w.npy"}}})
    # an experiment that switches the kind of the default run's source: the other kind's keys are ignored
    merged = validate_config({"pretrain": {"source": {"kind": "train", "name": "qm9-small"}}})
    assert merged.pretrain.source.kind == "train"


def test_cli_lists_and_reports_unknown_names(shipped, data_dir, tmp_path):
    listing = subprocess.run(
        [sys.executable, "-m", "elign.cli.main", "models", "--models-dir", str(shipped)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert listing.returncode == 0 and "| tiny | small_cpu |" in listing.stdout
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"pretrain:\n  source: {{kind: shipped, name: nope, models_dir: {shipped}}}\n")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "elign.cli.main",
            "pretrain",
            "--config",
            str(cfg),
            "--data-dir",
            str(data_dir),
            "--out",
            str(tmp_path / "p.pt"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert run.returncode == 2 and "Traceback" not in run.stderr
    # caught when the config is read (elign.config_resources), before any stage work
    assert "pretrain.source" in run.stderr and "'nope'" in run.stderr and "elign models" in run.stderr


@pytest.mark.parametrize("model", [m.name for m in list_shipped(REPO / "models")] or ["none shipped"])
def test_every_shipped_backbone_verifies_and_samples(model, tmp_path):
    if model == "none shipped":
        pytest.skip("no backbone in models/")
    entry = find_shipped(model, REPO / "models")
    model_obj = load_model(verify_weights(entry))
    assert entry.card["weights"]["sha256"] == file_sha256(entry.weights)
    result = sample_molecules(model_obj, [9, 12], batch_size=2, seed=0)
    assert result.table.num_atoms.tolist() == [9, 12]
    assert set(result.table.columns["status"]) <= {"ok", "bad_charge", "exploded", "nan"}


def test_default_run_uses_the_shipped_backbone_and_experiments_can_train():
    from elign.config import load_config

    default = load_config(REPO / "config/config.yaml")
    assert (default.pretrain.source.kind, default.pretrain.source.name) == ("shipped", "qm9-small")
    scratch = load_config(REPO / "config/config.yaml", REPO / "config/experiments/pretrain_from_scratch.yaml")
    assert scratch.pretrain.source.kind == "train" and scratch.pretrain.max_steps == 1200
    smoke = load_config(REPO / "config/config.yaml", REPO / "config/experiments/smoke.yaml")
    assert smoke.pretrain.source.kind == "train"
    backbone = load_config(REPO / "config/config.yaml", REPO / "config/experiments/backbone_qm9_small.yaml")
    assert backbone.pretrain.source.kind == "train" and backbone.pretrain.eval_every == 5000
