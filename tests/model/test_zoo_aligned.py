"""Shipped aligned models: ship-aligned writes weights + card with a paired comparison to the backbone it was
aligned from; `elign models` lists it; finetune.source: shipped turns it into a run's aligned model."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from elign.cli.main import main
from elign.config import AlignedSource, validate_config
from elign.diffusion.checkpoint import load_checkpoint
from elign.io.provenance import file_sha256
from elign.metrics.evaluate import summarize, valid_and_unique_flags
from elign.model.zoo import ShippedModelError, find_shipped
from elign.report.aligned_card import paired_comparison
from elign.rl.aligned_source import materialize_aligned
from elign.rl.trainer import FinetuneTrainer, finetune
from elign.stages.ship_aligned import AlignedShipRequest, ship_aligned
from elign.training.backbone import materialize_pretrained

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "rl"))
from rl_toys import HarmonicBackend  # noqa: E402
from test_zoo import data_dir, shipped  # noqa: E402, F401  (the tiny data folder and shipped backbone)

pytestmark = pytest.mark.usefixtures("one_torch_thread")
RUN = {
    "iterations": 2,
    "prompts_per_iteration": 1,
    "rollouts_per_prompt": 2,
    "sizes": [5],
    "shared_prefix_steps": 14,
    "train_steps_per_rollout": 2,
    "eval_every": 1,
    "eval_molecules": 3,
    "device": "cpu",
}


@pytest.fixture(scope="module")
def aligned(shipped, data_dir, tmp_path_factory):  # noqa: F811
    work = tmp_path_factory.mktemp("aligned")
    backbone = find_shipped("tiny", shipped)
    out = work / "aligned.pt"
    finetune(validate_config({"finetune": RUN}), backbone.weights, out, None, backend=HarmonicBackend(), progress=False)
    segments = work / "segments.jsonl"
    rows = [("zzz", [0, 1], 143), ("abc", [1, 2], 0), ("zzz", [2, 2], 0)]  # the card lists code in the order it ran
    segments.write_text(
        "".join(
            json.dumps(
                {"code_sha": sha, "cpu": "x", "threads": 1, "iterations": it, "wall_seconds": 3.0, "exit_status": rc}
            )
            + "\n"
            for sha, it, rc in rows
        )
    )
    req = AlignedShipRequest(
        out,
        "tiny-elign",
        "tiny",
        shipped,
        data_dir,
        num_molecules=6,
        seed=5,
        batch_size=3,
        relax_steps=5,
        segments=segments,
    )
    card = ship_aligned(req, HarmonicBackend())
    return work, card


def test_the_card_holds_the_paired_comparison(aligned, shipped):  # noqa: F811
    _, card = aligned
    assert card["kind"] == "aligned" and card["backbone"]["sha256"] == find_shipped("tiny", shipped).sha256
    paired = card["metrics"]["paired"]
    assert paired["force_rms_ev_per_ang"]["n_pairs"] == 6 and card["training"]["iterations"] == 2
    assert [s["code_sha"] for s in card["training"]["segments"]] == ["zzz", "abc", "zzz"]
    assert card["training"]["code_shas"] == ["zzz", "abc"] and card["training"]["wall_seconds"] == 9.0
    folder = shipped / "tiny-elign"
    assert card["weights"]["sha256"] == file_sha256(folder / "weights.pt")
    assert {"card.md", "curves.png", "finetune_history.parquet"} <= {p.name for p in folder.iterdir()}
    text = (folder / "card.md").read_text()
    assert "Sampling time (6 molecules each, batch 3" in text and "aligned / backbone ×" in text
    assert "Paired comparison" in text and "| 0 → 1 | 0.00 | exit 143 |" in text and "code: zzz, abc" in text


def test_the_card_lists_the_runs_evaluations_after_the_backbones_own(aligned, shipped, tmp_path):  # noqa: F811
    """Iteration 0 is the trainer's own evaluation of the weights it starts from (same noise, same sizes)."""
    _, card = aligned
    rows = card["training"]["evaluations"]
    assert [(r["iteration"], r["model"]) for r in rows] == [(0, "backbone"), (1, "aligned"), (2, "aligned")]
    trainer = FinetuneTrainer(
        validate_config({"finetune": RUN}),
        find_shipped("tiny", shipped).weights,
        tmp_path / "a.pt",
        backend=HarmonicBackend(),
        progress=False,
    )
    start = trainer.evaluate()  # no iteration run: the starting weights
    for key in ("eval_molecule_stability", "eval_validity", "eval_force_rms_mean_ev_per_ang"):
        assert rows[0][key] == start[key], key
    assert "## Fresh samples during training (3 molecules" in (shipped / "tiny-elign" / "card.md").read_text()


def test_paired_comparison_of_a_model_with_itself_is_zero():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "num_atoms": [5, 6, 7, 8],
            "force_rms_ev_per_ang": rng.random(4),
            "relaxation_energy_kcal_mol": rng.random(4),
            "molecule_stable": [True, False, True, True],
            "atom_stable_fraction": [1.0, 0.8, 1.0, 1.0],
            "valid": [True, True, False, True],
            "valid_and_unique": [True, False, False, True],
        }
    )
    same = paired_comparison({"backbone": frame, "aligned": frame.copy()}, seed=0, n_resamples=200)
    assert all(v["paired_diff"] == 0 and v["paired_p"] == 1.0 for v in same.values())
    moved = frame.copy()
    moved["force_rms_ev_per_ang"] -= 0.1
    out = paired_comparison({"backbone": frame, "aligned": moved}, seed=0, n_resamples=200)["force_rms_ev_per_ang"]
    assert out["paired_diff"] == pytest.approx(-0.1) and out["paired_ci_high"] == pytest.approx(-0.1)
    with pytest.raises(ValueError, match="not paired"):
        paired_comparison({"backbone": frame, "aligned": frame.iloc[::-1].reset_index(drop=True)}, seed=0)


def test_a_run_starts_from_the_shipped_aligned_model(aligned, shipped, tmp_path, capsys):  # noqa: F811
    outs = [tmp_path / "pretrained.pt", tmp_path / "history.parquet", tmp_path / "backbone.json"]
    from elign.config import PretrainedSource

    materialize_pretrained(PretrainedSource(kind="shipped", name="tiny", models_dir=str(shipped)), *outs)
    src = AlignedSource(kind="shipped", name="tiny-elign", models_dir=str(shipped))
    info = materialize_aligned(src, outs[0], tmp_path / "aligned.pt", tmp_path / "fh.parquet")
    shipped_weights = load_checkpoint(shipped / "tiny-elign" / "weights.pt")["state_dict"]
    got = load_checkpoint(tmp_path / "aligned.pt")["ema_state_dict"]
    assert info["backbone"]["name"] == "tiny" and all(torch.equal(got[k], shipped_weights[k]) for k in got)
    assert main(["models", "--models-dir", str(shipped)]) == 0
    listing = capsys.readouterr().out
    assert "| tiny-elign | tiny | 2 |" in listing


def test_shipping_from_another_backbone_is_refused(aligned, shipped, data_dir, tmp_path):  # noqa: F811
    work, _ = aligned
    from rl_toys import save_tiny

    other = save_tiny(tmp_path / "other.pt", dtype=torch.float32)
    out = tmp_path / "a.pt"
    finetune(
        validate_config({"finetune": {**RUN, "iterations": 1}}),
        other,
        out,
        None,
        backend=HarmonicBackend(),
        progress=False,
    )
    with pytest.raises(ShippedModelError, match="not from the shipped backbone"):
        ship_aligned(AlignedShipRequest(out, "x", "tiny", shipped, data_dir, num_molecules=2), HarmonicBackend())


def test_the_finetune_stage_records_what_aligned_is(aligned, shipped, tmp_path):  # noqa: F811
    """aligned.json (the report's opening sentence): a shipped model with its card's summary, training and
    paired comparison; FED-GRPO trained here with the settings that shape it."""
    from elign.stages.finetune import FinetuneRequest, aligned_record, run_finetune

    outs = [tmp_path / "pretrained.pt", tmp_path / "history.parquet", tmp_path / "backbone.json"]
    from elign.config import PretrainedSource

    materialize_pretrained(PretrainedSource(kind="shipped", name="tiny", models_dir=str(shipped)), *outs)
    sources = {
        "pretrain": {"source": {"kind": "shipped", "name": "tiny", "models_dir": str(shipped)}},
        "finetune": {"source": {"kind": "shipped", "name": "tiny-elign", "models_dir": str(shipped)}},
    }
    run_finetune(validate_config(sources), FinetuneRequest(str(outs[0]), str(tmp_path / "aligned.pt")))
    record = json.loads((tmp_path / "aligned.json").read_text())
    card = json.loads((shipped / "tiny-elign" / "card.json").read_text())
    assert (
        record["kind"] == "shipped" and record["name"] == "tiny-elign" and record["sha256"] == card["weights"]["sha256"]
    )
    assert record["card"]["path"] == str(shipped / "tiny-elign" / "card.md")
    assert record["card"]["comparison"]["paired"] == card["metrics"]["paired"]
    assert record["card"]["training"]["iterations"] == 2
    for key in ("optimizer_steps", "train_seconds", "wall_seconds"):  # the report's "N h of training (M h wall)"
        assert record["card"]["training"][key] == card["training"][key] is not None, key
    trained = aligned_record(validate_config({"finetune": RUN}), None)
    assert trained["kind"] == "train" and trained["settings"]["shared_prefix_steps"] == 14
    assert trained["settings"]["iterations"] == 2 and trained["mlff"] == "ani2x"


def test_the_per_molecule_uniqueness_flags_average_to_the_sets_valid_and_unique():
    """An invalid molecule never counts and never hides a later valid one with its SMILES; a repeat counts once."""
    frame = pd.DataFrame(
        {
            "smiles": ["C", "CO", "C", None, "CC", "CO", "CC", "N"],
            "valid": [True, False, True, False, True, True, True, True],
            "novel": [True] * 8,
            "num_atoms": [5] * 8,
            "num_stable_atoms": [5] * 8,
            "molecule_stable": [True] * 8,
            "sample_status": ["ok"] * 8,
        }
    )
    flags = valid_and_unique_flags(frame)
    assert flags.tolist() == [True, False, False, False, True, True, False, True]
    assert flags.mean() == summarize(frame, "x")["valid_and_unique"] == 4 / 8
