"""docs/extending.md works: each example on the page registers through the public API, the config accepts its
name, and the pipeline function uses it (evaluate_table, prepare, the FED-GRPO rewards and advantages)."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from elign import registries
from elign.config import ConfigError, json_schema, validate_config
from elign.data.prepare import prepare
from elign.io.molecules import read_molecules
from elign.io.table import MoleculeTable
from elign.metrics.evaluate import evaluate_table, summarize, summary_columns
from elign.mlff.registry import backend_from_config

HERE = Path(__file__).resolve().parent
DOC = HERE.parent / "docs" / "extending.md"
sys.path.insert(0, str(HERE / "rl"))


def doc_examples() -> dict[str, str]:
    """{kind: code} of the blocks marked ``<!-- example: kind -->`` in docs/extending.md."""
    found = re.findall(r"<!-- example: (\w+) -->\s*```python\n(.*?)```", DOC.read_text(), re.S)
    return dict(found)


@pytest.fixture
def example():
    """Run one example of the page as a module; every name it registered is unregistered afterwards."""
    before = {r.kind: set(r.names()) for r in registries.ALL}

    def load(kind: str) -> types.ModuleType:
        module = types.ModuleType(f"extending_example_{kind}")
        exec(compile(doc_examples()[kind], f"docs/extending.md:{kind}", "exec"), module.__dict__)
        return module

    yield load
    for registry in registries.ALL:
        for name in set(registry.names()) - before[registry.kind]:
            registry.unregister(name)


def test_the_page_has_the_four_examples():
    assert set(doc_examples()) == {"mlff", "source", "metric", "reward"}


def test_a_name_is_valid_once_registered_and_the_schema_file_keeps_the_builtins(example):
    with pytest.raises(ConfigError, match="unknown MLFF backend 'pair-spring'.*'ani2x'"):
        validate_config({"evaluate": {"mlff": {"backend": "pair-spring"}}})
    example("mlff")
    assert validate_config({"evaluate": {"mlff": {"backend": "pair-spring"}}}).evaluate.mlff.backend == "pair-spring"
    enum = json_schema()["$defs"]["MLFFConfig"]["properties"]["backend"]["enum"]
    assert enum == registries.MLFF_BACKENDS.builtin_names() and "pair-spring" not in enum


# ------------------------------------------------------------------------------------------ MLFF backend
def test_mlff_example_is_a_force_field_the_evaluation_uses(example):
    module = example("mlff")
    cfg = validate_config({"evaluate": {"mlff": {"backend": "pair-spring", "dtype": "float64", "device": "cpu"}}})
    backend = backend_from_config(cfg.evaluate.mlff)
    assert isinstance(backend, module.PairSpring) and backend.dtype == torch.float64
    rng = np.random.default_rng(0)
    z, x = np.array([[6, 1, 1, 8]]), rng.normal(scale=1.2, size=(1, 4, 3))
    result = backend.evaluate(z, x)
    h, numeric = 1e-5, np.zeros((4, 3))
    for i in range(4):  # F = −dE/dx by central differences
        for d in range(3):
            step = np.zeros_like(x)
            step[0, i, d] = h
            numeric[i, d] = -(backend.evaluate(z, x + step).energy_ev[0] - backend.evaluate(z, x - step).energy_ev[0])
    assert np.allclose(result.forces_ev_per_ang[0], numeric / (2 * h), atol=1e-6)
    # the evaluate stage's table: a diatomic 1.0 Å apart has |F| = k |r − r0| = 2 · 0.5 on both atoms
    table = MoleculeTable([0, 1], [2, 2], [6, 8, 6, 17], [[0, 0, 0], [0, 0, 1.0], [0, 0, 0], [0, 0, 1.0]], [None] * 2)
    frame = evaluate_table(table, backend, None)
    assert frame["force_rms_ev_per_ang"][0] == pytest.approx(1.0) and frame["energy_ev"][0] == pytest.approx(0.25)
    assert frame["mlff_status"].tolist() == ["ok", "unknown_element"]  # Cl is not among its elements


# ------------------------------------------------------------------------------------------- data source
def test_source_example_runs_through_the_data_stage(example, tmp_path):
    example("source")
    cfg = validate_config({"seed": 4, "data": {"source": "diatomics", "dataset": "diatomics"}})
    stats = prepare(cfg, tmp_path)
    assert stats["source"] == "diatomics" and stats["split_sizes"] == {"train": 2, "valid": 1, "test": 1}
    molecules = {
        s: read_molecules(tmp_path / f"{s}.parquet").smiles.tolist() for s in ("train", "valid", "test")
    }  # the names, in the smiles column
    assert sorted(sum(molecules.values(), [])) == ["CO", "H2", "N2", "O2"]
    again = tmp_path / "again"
    prepare(cfg, again)
    assert read_molecules(again / "train.parquet").smiles.tolist() == molecules["train"]  # the seed fixes the split


# ------------------------------------------------------------------------------------------------ metric
def test_metric_example_adds_columns_and_a_summary(example):
    example("metric")
    cfg = validate_config({"evaluate": {"metrics": ["gyration"]}})
    x = [[0, 0, 0], [0, 0, 2.0], [0, 0, 0], [3, 0, 0], [0, 4, 0], [0, 0, 0], [0, 0, 1]]
    status = np.array(["ok", "ok", "failed"], dtype=object)
    table = MoleculeTable([0, 1, 2], [2, 3, 2], [1, 1, 6, 1, 1, 8, 1], x, [None] * 3, {"status": status})
    frame = evaluate_table(table, None, None, metrics=cfg.evaluate.metrics)
    expected = np.sqrt(((np.array(x[2:5]) - np.array(x[2:5]).mean(0)) ** 2).sum(1).mean())
    assert frame["radius_of_gyration_ang"][0] == pytest.approx(1.0)  # two atoms 2 Å apart
    assert frame["radius_of_gyration_ang"][1] == pytest.approx(expected)
    assert np.isnan(frame["radius_of_gyration_ang"][2]) and frame["gyration_status"].tolist()[2] == "sample_failed"
    row = summarize(frame, "x")
    assert row["radius_of_gyration_ang_mean"] == pytest.approx((1.0 + expected) / 2)
    assert summary_columns(row)[-1] == "radius_of_gyration_ang_mean"
    with pytest.raises(ConfigError, match="unknown metric 'rings'"):
        validate_config({"evaluate": {"metrics": ["rings"]}})


# ------------------------------------------------------------------------------------------------ reward
def test_reward_example_is_a_channel_of_the_advantage(example):
    from rl_toys import CH5, METHANE, HarmonicBackend, fake_rollouts, molecule_batch

    from elign.rl.advantages import mix_advantages
    from elign.rl.rewards import compute_rewards, reward_channels

    example("reward")
    over = {"weight_force": 0.0, "weight_energy": 0.0, "extra_rewards": [{"name": "stable", "weight": 0.5}]}
    fc = validate_config({"finetune": over}).finetune
    numbers, x = molecule_batch(METHANE, CH5, CH5, METHANE)
    ro = fake_rollouts(numbers, x, [0, 0, 0, 0])
    trained = np.zeros((4, 1), dtype=int)
    rw = compute_rewards(ro, trained, HarmonicBackend(), energy_every=1, extra=[s.name for s in fc.extra_rewards])
    assert rw.channels["stable"].values.tolist() == [1.0, 0.0, 0.0, 1.0]
    adv = mix_advantages(reward_channels(rw, fc), np.zeros(4, int), 1, clip=5.0)
    z = 0.5 * (np.array([1, 0, 0, 1]) - 0.5) / np.std([1, 0, 0, 1], ddof=1)
    assert np.allclose(adv.advantage[:, 0], z) and adv.in_loss.all()  # the stable molecules are preferred


def test_the_trainer_mixes_the_configured_rewards(example, tmp_path, monkeypatch, one_thread_offline_ani):
    from rl_toys import HarmonicBackend, save_tiny

    from elign.rl import trainer

    example("reward")
    seen = []
    original = trainer.mix_advantages

    def spy(channels, *args, **kwargs):
        seen.append({c.name: (c.weight, c.normalize, np.array(c.values)) for c in channels})
        return original(channels, *args, **kwargs)

    monkeypatch.setattr(trainer, "mix_advantages", spy)
    run = {"iterations": 1, "prompts_per_iteration": 1, "rollouts_per_prompt": 2, "sizes": [4]}
    run |= {"shared_prefix_steps": 16, "train_steps_per_rollout": 2, "device": "cpu"}
    run |= {"extra_rewards": [{"name": "stable", "weight": 0.3, "normalize": "center"}]}
    model = save_tiny(tmp_path / "tiny.pt")
    trainer.finetune(
        validate_config({"finetune": run}), model, tmp_path / "a.pt", None, backend=HarmonicBackend(), progress=False
    )
    (channels,) = seen
    assert list(channels) == ["force", "energy", "stable"] and channels["stable"][:2] == (0.3, "center")
    assert set(channels["stable"][2][np.isfinite(channels["stable"][2])]) <= {0.0, 1.0}
