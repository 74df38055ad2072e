"""Rewards by name: the same FED-GRPO as before the registry, the reward contract, the channels, the config.

The golden runs (tests/rl/fedgrpo_golden.py) were recorded with the code of c405080, where force and energy
were two hard-wired channels; the registry must reproduce them bit for bit (advantages, in-loss masks, the
history and the final weights). They were recorded on x86-64 CPU with torch's float64 kernels and one thread:
another CPU family or BLAS could round the tiny model's matrix products differently.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from fedgrpo_golden import CASES, run_case
from rl_toys import HarmonicBackend, fake_rollouts

from elign.config import ConfigError, load_config, validate_config
from elign.registries import REWARDS
from elign.rl.advantages import Channel, compute_advantages, mix_advantages
from elign.rl.reward_registry import RewardValues, register_reward, score_reward
from elign.rl.rewards import RewardBatch, compute_rewards, reward_channels
from elign.rl.trainer_state import check_resume_compatible, trajectory_config

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "fixtures" / "fedgrpo_golden.npz"
PAPER_RUN = REPO / "models" / "qm9-small-elign" / "training"


@pytest.fixture(scope="module")
def golden():
    return np.load(GOLDEN)


@pytest.mark.parametrize("case", list(CASES))
def test_fedgrpo_is_bit_identical_to_the_two_channel_code(case, golden, tmp_path):
    record = run_case(case, tmp_path)
    expected = {k.split("/", 1)[1]: golden[k] for k in golden.files if k.startswith(f"{case}/")}
    assert set(record) == set(expected)
    for key, value in record.items():
        assert np.array_equal(value, expected[key], equal_nan=value.dtype.kind == "f"), key


def test_the_paper_run_checkpoint_matches_its_config():
    """The paper run (aligned.pt, finished) began before ``finetune.extra_rewards`` existed; its config must
    still match the config it ran with (segment.sh: config.yaml + qm9_paper.yaml + cpu.yaml)."""
    path = PAPER_RUN / "aligned.pt"
    extra = torch.load(path, map_location="cpu", weights_only=False)["extra"]
    config = load_config(
        REPO / "config" / "config.yaml", REPO / "config" / "experiments" / "qm9_paper.yaml", PAPER_RUN / "cpu.yaml"
    ).model_dump(mode="json")
    check_resume_compatible(extra, config, extra["input"], extra["size_histogram"], path)  # no ConfigError
    # the checkpoint as written before the added keys existed (iterations 1-24 of the run were): still resumes
    before = {k: v for k, v in extra["config"]["finetune"].items() if k not in ("extra_rewards", "max_batch_edges")}
    older = {**extra, "config": {**extra["config"], "finetune": before}}
    assert config["finetune"]["extra_rewards"] == []
    check_resume_compatible(older, config, extra["input"], extra["size_histogram"], path)
    changed = {**config, "finetune": {**config["finetune"], "extra_rewards": [{"name": "x", "weight": 1.0}]}}
    with pytest.raises(ConfigError, match="extra_rewards"):
        check_resume_compatible(extra, changed, extra["input"], extra["size_histogram"], path)


def test_a_checkpoint_without_extra_rewards_reads_as_the_default():
    old = {"finetune": {"lr": 1.0}}
    assert trajectory_config(old) == trajectory_config({"finetune": {"lr": 1.0, "extra_rewards": []}})
    assert trajectory_config(old) != trajectory_config({"finetune": {"lr": 1.0, "extra_rewards": [{"name": "a"}]}})


# ------------------------------------------------------------------------------------------- contract
@pytest.fixture
def toy_rewards():
    """Rewards registered for one test, unregistered after it."""
    names = []

    def add(name, fn):
        register_reward(name)(fn)
        names.append(name)

    yield add
    for name in names:
        REWARDS.unregister(name)


def _batch(n_rollouts=4, steps=3):
    x = np.random.default_rng(0).normal(size=(n_rollouts, 3, 3))
    ro = fake_rollouts(np.array([[6, 1, 1]] * n_rollouts), x, [0] * n_rollouts)
    return RewardBatch(ro, np.zeros((n_rollouts, steps), dtype=int), HarmonicBackend())


def test_a_reward_must_say_why_a_rollout_has_no_value(toy_rewards):
    toy_rewards("toy_silent", lambda b: RewardValues(np.array([1.0, np.nan, 2.0, 3.0])))
    toy_rewards("toy_both", lambda b: RewardValues(np.ones(4), np.array(["ok", "bad", "ok", "ok"], dtype=object)))
    toy_rewards("toy_shape", lambda b: RewardValues(np.ones(5)))
    fine = RewardValues([1.0, np.nan, 2, 3], ["ok", "no_atoms", "ok", "ok"], ["", "x", "", ""])
    toy_rewards("toy_fine", lambda b: fine)
    batch = _batch()
    with pytest.raises(ValueError, match="no value for rollout 1 but its status is ok"):
        score_reward("toy_silent", batch)
    with pytest.raises(ValueError, match="gives rollout 1 a value but its status is 'bad'"):
        score_reward("toy_both", batch)
    with pytest.raises(ValueError, match=r"shape \(5,\)"):
        score_reward("toy_shape", batch)
    assert score_reward("toy_fine", batch).status.tolist() == ["ok", "no_atoms", "ok", "ok"]
    with pytest.raises(KeyError, match="unknown reward 'toy_nothing'; registered: .*force"):
        score_reward("toy_nothing", batch)


def test_builtin_names_cannot_be_taken_and_duplicates_are_refused(toy_rewards):
    with pytest.raises(ValueError, match="already registered"):
        register_reward("force")(lambda b: RewardValues(np.zeros(4)))
    toy_rewards("toy_once", lambda b: RewardValues(np.zeros(4)))
    with pytest.raises(ValueError, match="already registered"):
        register_reward("toy_once")(lambda b: RewardValues(np.ones(4)))


def test_force_and_energy_channels_carry_statuses():
    """The force channel's status adds the stability gate to the MLFF's; values exactly where status is ok."""
    batch = _batch()
    rw = compute_rewards(batch.rollouts, batch.trained, HarmonicBackend(unknown=(1,)), energy_every=1)
    force, energy = rw.channels["force"], rw.channels["energy"]
    assert force.status.tolist() == ["unknown_element"] * 4 and np.isnan(force.values).all()
    assert np.isnan(energy.values).all() and energy.status.tolist() == rw.status.tolist()
    rw = compute_rewards(batch.rollouts, batch.trained, HarmonicBackend(), energy_every=1)
    assert (rw.channels["force"].status == "ok").all() and np.isfinite(rw.force_reward).all()


# ------------------------------------------------------------------------------------------- channels
GROUP = np.array([0, 0, 0, 1, 1, 1])


def test_two_channels_through_mix_equal_compute_advantages():
    rng = np.random.default_rng(1)
    force, energy = rng.normal(size=6), rng.normal(size=(6, 4))
    energy[2, 1] = np.nan
    old = compute_advantages(force, energy, GROUP, weight_force=1.0, weight_energy=0.3, clip=1.5)
    new = mix_advantages([Channel("force", force, 1.0), Channel("energy", energy, 0.3)], GROUP, 4, clip=1.5)
    assert np.array_equal(old.advantage, new.advantage) and np.array_equal(old.in_loss, new.in_loss)
    assert old.counts == new.counts


def test_an_extra_channel_is_normalized_on_its_own_and_weighted():
    rng = np.random.default_rng(2)
    force, bonus = rng.normal(size=6), np.array([1.0, 0.0, 1.0, 5.0, np.nan, 7.0])
    base = mix_advantages([Channel("force", force, 1.0)], GROUP, 2, clip=10)
    for mode, expect in {
        "center": np.array([1 / 3, -2 / 3, 1 / 3, -1.0, 0.0, 1.0]),
        "none": np.array([1.0, 0.0, 1.0, 5.0, 0.0, 7.0]),
        "zscore": np.array([1 / 3, -2 / 3, 1 / 3, -1.0, 0.0, 1.0]) / np.array([0.57735027] * 3 + [np.sqrt(2)] * 3),
    }.items():
        adv = mix_advantages([Channel("force", force, 1.0), Channel("bonus", bonus, 0.5, mode)], GROUP, 2, clip=10)
        assert np.allclose(adv.channels["bonus"], expect, atol=1e-7), mode
        assert np.allclose(adv.advantage, base.advantage + 0.5 * expect[:, None], atol=1e-7), mode
        assert adv.counts["bonus_signal"] == 5 and adv.channels["force"] is not None
    lone = mix_advantages([Channel("bonus", bonus[:2], 1.0, "center")], np.array([0, 1]), 3, clip=10)
    assert lone.counts["degenerate_bonus_groups"] == 2 and (lone.advantage == 0).all()  # one member per group
    assert lone.advantage.shape == (2, 3) and lone.in_loss.all()


def test_a_zero_weight_channel_adds_no_loss_term():
    force = np.array([np.nan, 1.0, 2.0, 3.0, np.nan, 1.0])
    bonus = np.arange(6.0)
    adv = mix_advantages([Channel("force", force, 1.0), Channel("bonus", bonus, 0.0)], GROUP, 2, clip=5)
    assert adv.in_loss[:, 0].tolist() == [False, True, True, True, False, True]
    adv = mix_advantages([Channel("force", force, 1.0), Channel("bonus", bonus, 0.1)], GROUP, 2, clip=5)
    assert adv.in_loss.all()


def test_extra_rewards_config_and_channels(toy_rewards):
    toy_rewards("toy_count", lambda b: RewardValues(b.numbers.astype(bool).sum(1).astype(float)))
    fc = validate_config(
        {"finetune": {"extra_rewards": [{"name": "toy_count", "weight": 0.2, "normalize": "none"}]}}
    ).finetune
    batch = _batch()
    rw = compute_rewards(batch.rollouts, batch.trained, HarmonicBackend(), energy_every=1, extra=["toy_count"])
    channels = reward_channels(rw, fc)
    assert [c.name for c in channels] == ["force", "energy", "toy_count"]
    assert channels[2].weight == 0.2 and channels[2].normalize == "none" and (channels[2].values == 3).all()
    for bad, message in (
        ([{"name": "energy"}], "weight_energy"),
        ([{"name": "toy_none"}], "unknown reward 'toy_none'"),
        ([{"name": "toy_count"}, {"name": "toy_count"}], "once"),
        ([{"name": "toy_count", "normalize": "rank"}], "normalize"),
    ):
        with pytest.raises(ConfigError, match=message):
            validate_config({"finetune": {"extra_rewards": bad}})
