"""MLFF-guided sampling baseline: the exact mean shift, CoM removal, unscorable molecules, CLI wiring."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from elign.cli.main import main
from elign.diffusion.guidance import MLFFGuidance, x0_from_mean
from elign.diffusion.sampler import StepState, draw_noise, make_node_mask
from elign.io.molecules import read_molecules
from elign.rl.rollout import step_times

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "rl"))
from rl_toys import HarmonicBackend, save_tiny, tiny_model  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread_offline_ani")  # as tests/rl/conftest.py: one thread, ANI offline


@pytest.fixture(scope="module")
def tiny64():
    return tiny_model(torch.float64)


@pytest.fixture(scope="module")
def state(tiny64):
    mask = make_node_mask([5, 3], torch.device("cpu"), torch.float64)
    graph = tiny64.make_graph(mask)
    z_t = draw_noise(tiny64, mask, torch.Generator().manual_seed(0), torch.float64)
    s, t = step_times(tiny64, 8, 2, torch.float64, z_t.device)
    with torch.no_grad():
        eps = tiny64.phi(z_t, t, mask, graph=graph)
        mu, sigma = tiny64.posterior_from_eps(z_t, eps, s, t)
        x0 = tiny64.compute_x_pred(eps, z_t, tiny64.gamma(t))
    return StepState(tiny64, 8, s, t, z_t, mu, sigma, mask, graph), x0


def test_x0_recovered_from_the_mean(state):
    st, x0 = state
    assert torch.allclose(x0_from_mean(st.model, st.z_t, st.mu, st.s, st.t), x0, rtol=0, atol=1e-10)


def test_guided_mean_is_mu_plus_scale_sigma2_force(state):
    st, x0 = state
    k, scale = 0.7, 3.0
    hook = MLFFGuidance(HarmonicBackend(k, shift=(0.5, -2.0, 1.0)), scale)
    with torch.inference_mode():  # as in the sampler
        new_mu = hook(st)
    mask = st.node_mask
    force = -k * x0[..., :3] * mask  # the uniform shift c is a pure translation: its CoM is removed
    expected = st.mu.clone()
    expected[..., :3] += scale * st.sigma**2 * force
    assert torch.allclose(new_mu, expected, rtol=0, atol=1e-12)
    assert torch.equal(new_mu[..., 3:], st.mu[..., 3:])
    assert torch.allclose((new_mu - st.mu)[..., :3].sum(dim=1), torch.zeros(2, 3, dtype=torch.float64), atol=1e-12)
    assert hook.steps == 1 and hook.unscored == 0 and hook.seconds > 0


def test_unscorable_molecules_get_no_guidance_and_are_counted(state):
    st, _ = state
    hook = MLFFGuidance(HarmonicBackend(0.7, fail_above=4), 5.0)  # the 5-atom molecule fails
    new_mu = hook(st)
    assert torch.equal(new_mu[0], st.mu[0]) and not torch.equal(new_mu[1], st.mu[1])
    assert hook.unscored == 1
    assert torch.equal(MLFFGuidance(HarmonicBackend(0.7), 0.0)(st), st.mu)


def test_trust_region_caps_every_atom_at_c_sigma_and_keeps_direction(state):
    st, _ = state
    c = 0.5
    free = MLFFGuidance(HarmonicBackend(1e4), 1.0)  # forces of ~10^4 eV/Å: far beyond the cap
    capped = MLFFGuidance(HarmonicBackend(1e4), 1.0, max_step_sigma=c)
    d_free = (free(st) - st.mu)[..., :3]
    d_cap = (capped(st) - st.mu)[..., :3]
    largest = d_cap.norm(dim=2).amax(dim=1)
    assert torch.allclose(largest, c * st.sigma.reshape(-1), rtol=1e-12, atol=0)  # the largest atom sits on the cap
    assert (d_free.norm(dim=2).amax(dim=1) > 10 * largest).all()
    ratio = d_cap.norm(dim=(1, 2)) / d_free.norm(dim=(1, 2))  # one factor per molecule: same direction
    assert torch.allclose(d_cap, d_free * ratio[:, None, None], rtol=0, atol=1e-14)
    assert torch.allclose(d_cap.sum(dim=1), torch.zeros(2, 3, dtype=torch.float64), atol=1e-12)
    assert capped.clipped == 2 and capped.summary()["guidance_clipped_molecule_steps"] == 2


def test_trust_region_leaves_small_shifts_alone(state):
    st, _ = state
    free, capped = MLFFGuidance(HarmonicBackend(1e-3), 1.0), MLFFGuidance(HarmonicBackend(1e-3), 1.0, 1.0)
    assert torch.equal(capped(st), free(st)) and capped.clipped == 0
    with pytest.raises(ValueError, match="max_step_sigma"):
        MLFFGuidance(HarmonicBackend(1.0), 1.0, max_step_sigma=0.0)


def test_window_guides_only_steps_with_t_at_most_max_t(state):
    st, _ = state
    t = float(st.t.max())
    outside = MLFFGuidance(HarmonicBackend(0.7), 3.0, max_t=t * 0.99)
    assert outside(st) is None and outside.steps == 0  # the sampler keeps the model's own mean
    inside = MLFFGuidance(HarmonicBackend(0.7), 3.0, max_t=min(1.0, t * 1.01))
    assert torch.equal(inside(st), MLFFGuidance(HarmonicBackend(0.7), 3.0)(st)) and inside.steps == 1
    edge = MLFFGuidance(HarmonicBackend(0.7), 3.0, max_t=st.t_int / st.model.T)
    assert edge(replace(st, t=st.t + 1e-7)) is not None  # a float32 t can round above t_int / T: the index decides
    with pytest.raises(ValueError, match="max_t"):
        MLFFGuidance(HarmonicBackend(0.7), 3.0, max_t=0.0)


def test_active_fraction_counts_the_steps_in_the_window():
    hook = lambda max_t: MLFFGuidance(HarmonicBackend(0.7), 1.0, max_t=max_t)
    assert hook(None).active_fraction(1000) == 1.0
    assert hook(0.2).active_fraction(1000) == pytest.approx(0.2)  # t = 1/1000 ... 200/1000
    assert hook(0.2).active_fraction(12) == pytest.approx(2 / 12)  # t = 1/12, 2/12 (3/12 = 0.25 is outside)


def test_sample_cli_guidance(tmp_path, monkeypatch):
    model = save_tiny(tmp_path / "m.pt", dtype=torch.float32, timesteps=12)
    cfg = {"sample": {"num_molecules": 3, "batch_size": 3, "sizes": 4, "guidance_mlff": {"device": "cpu"}}}

    def run(name, *extra, max_t=None):
        cfg["sample"]["guidance_max_t"] = max_t
        assert (
            main(
                [
                    "sample",
                    "--config-json",
                    json.dumps(cfg),
                    "--model",
                    str(model),
                    "--out",
                    str(tmp_path / f"{name}.parquet"),
                    "--no-progress",
                    *extra,
                ]
            )
            == 0
        )
        return (
            read_molecules(tmp_path / f"{name}.parquet").positions_ang,
            json.loads((tmp_path / f"{name}.summary.json").read_text()),
        )

    plain, s_plain = run("plain")
    zero, s_zero = run("zero", "--guidance", "mlff", "--guidance-scale", "0")  # ANI-2x from the config
    assert s_zero["guidance_mlff"]["backend"] == "ani2x" and s_zero["guidance_steps"] == 12
    _, s_window = run("window", "--guidance", "mlff", "--guidance-scale", "0", max_t=0.2)
    assert s_window["guidance_steps"] == 2 and s_window["guidance_max_t"] == 0.2  # t = 2/12, 1/12 of 12 steps
    # a random tiny model spreads its atoms beyond ANI's cutoff (zero forces): steer with a toy field
    monkeypatch.setattr("elign.mlff.registry.backend_from_config", lambda cfg: HarmonicBackend(0.5))
    guided, s_guided = run("guided", "--guidance", "mlff", "--guidance-scale", "1.5")
    assert s_plain["guidance"] == "none" and s_plain["guidance_seconds"] == 0.0
    assert np.array_equal(zero, plain)  # scale 0: the hook changes nothing, the noise stream is the same
    assert not np.allclose(guided, plain)
    assert s_guided["guidance"] == "mlff" and s_guided["guidance_scale"] == 1.5
    assert s_guided["guidance_steps"] == 12 and 0 < s_guided["guidance_seconds"] <= s_guided["sample_seconds"]
    assert s_guided["guidance_mlff"]["backend"] == "harmonic"
    assert np.abs(guided).max() < np.abs(plain).max()  # the harmonic pull keeps the atoms nearer the origin
