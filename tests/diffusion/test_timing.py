"""Interleaved sampling-time comparison (elign.diffusion.timing)."""

from __future__ import annotations

import time

import pytest
import torch

from elign.diffusion.factory import build_model
from elign.diffusion.timing import TimedModel, time_models
from elign.model.presets import make_model_config


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_model(make_model_config("small_cpu", hidden_nf=8, n_layers=1, diffusion={"timesteps": 40}))


def _slow_hook(delay_s: float):
    def hook(state):
        time.sleep(delay_s)
        return None

    return hook


def test_rows_extrapolate_to_the_full_chain_and_baseline_ratio_is_one(tiny):
    models = {"a": TimedModel(tiny), "b": TimedModel(tiny)}
    out = time_models(models, [3, 5, 4], steps=4, reps=3)
    for name in ("a", "b"):
        row = out["models"][name]
        assert len(row["reps_s"]) == 3 and row["steps_timed"] == 4 and row["diffusion_steps"] == 40
        assert row["seconds_per_molecule"] == pytest.approx(row["seconds_per_step"] * 40 / 3)
    assert out["ratio_vs_a"]["a"] == 1.0
    lo, hi = out["ratio_spread"]["b"]
    assert lo <= out["ratio_vs_a"]["b"] <= hi


def test_a_slower_model_gets_a_larger_ratio(tiny):
    """A hook that sleeps 20 ms per step must show up as a ratio well above 1 (and the baseline stays 1)."""
    models = {"plain": TimedModel(tiny), "slow": TimedModel(tiny, _slow_hook(0.02))}
    out = time_models(models, [4, 4], steps=5, reps=2)
    assert out["ratio_vs_plain"]["slow"] > 1.5
    assert out["models"]["slow"]["seconds_per_step"] >= 0.02


def test_a_windowed_hook_mixes_hooked_and_plain_steps(tiny, monkeypatch):
    """hook_fraction f: per step f*hooked + (1-f)*plain, paired ratio f*r + (1 - f) (fixed fake times)."""
    import elign.diffusion.timing as timing

    monkeypatch.setattr(timing, "_one_rep", lambda timed, sizes, steps, seed: 5.0 if timed.hook else 1.0)
    models = {"plain": TimedModel(tiny), "guided": TimedModel(tiny, _slow_hook(0.0), hook_fraction=0.2)}
    out = time_models(models, [3], steps=10, reps=3)
    assert out["ratio_vs_plain"]["guided"] == pytest.approx(0.2 * 5 + 0.8)
    assert out["models"]["guided"]["seconds_per_step"] == pytest.approx((0.2 * 5 + 0.8 * 1) / 10)
    assert out["models"]["guided"]["hook_fraction"] == 0.2
    with pytest.raises(ValueError, match="hook_fraction"):
        time_models(
            {"plain": TimedModel(tiny), "g": TimedModel(tiny, _slow_hook(0.0), hook_fraction=2.0)}, [3], steps=1, reps=1
        )


def test_order_rotates_so_no_model_always_runs_first(tiny, monkeypatch):
    order = []
    import elign.diffusion.timing as timing

    def fake(timed, sizes, steps, seed):
        order.append(id(timed))
        return 1.0

    monkeypatch.setattr(timing, "_one_rep", fake)
    models = {n: TimedModel(tiny) for n in ("x", "y", "z")}
    time_models(models, [3], steps=2, reps=3)
    ids = {id(m): n for n, m in models.items()}
    rounds = [[ids[i] for i in order[3 + 3 * r : 6 + 3 * r]] for r in range(3)]  # after 3 warm-ups
    assert [r[0] for r in rounds] == ["x", "y", "z"]
    assert all(sorted(r) == ["x", "y", "z"] for r in rounds)


def test_bad_arguments_are_errors(tiny):
    with pytest.raises(ValueError, match="no models"):
        time_models({}, [3], 1, 1)
    with pytest.raises(ValueError, match="reps"):
        time_models({"a": TimedModel(tiny)}, [3], 1, 0)
    with pytest.raises(ValueError, match="baseline"):
        time_models({"a": TimedModel(tiny)}, [3], 1, 1, baseline="b")
