"""A time-gated model (EnVariationalDiffusion.set_time_gate): the frozen prefix network for t > gate, the main one
below; per-row selection in a mixed batch; E(3) equivariance; the model config and checkpoint round trip."""

from __future__ import annotations

import copy

import pytest
import torch

from elign.diffusion import geometry as geo
from elign.diffusion.checkpoint import load_model, save_checkpoint
from elign.diffusion.factory import build_model, model_config_of
from elign.model.presets import make_model_config
from elign.training.optim import EMA

GATE = 0.3


def _config():
    return make_model_config("small_cpu", n_layers=1, hidden_nf=16, diffusion={"timesteps": 20})


def _gated(seed=0):
    """(gated model, reference): the reference is a copy of the model before its main network was perturbed."""
    torch.manual_seed(seed)
    model = build_model(_config(), dtype=torch.float64).eval()
    reference = copy.deepcopy(model)
    model.set_time_gate(copy.deepcopy(reference.dynamics), GATE)
    with torch.no_grad():
        for p in model.dynamics.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model, reference


def _batch(b=3, n=5, seed=1):
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(b, n, 1, dtype=torch.float64)
    mask[0, 3:] = 0
    x = geo.remove_mean_with_mask(torch.randn(b, n, 3, generator=g, dtype=torch.float64) * mask, mask)
    h = torch.randn(b, n, 6, generator=g, dtype=torch.float64) * mask  # 5 atom types + charge
    return torch.cat([x, h], dim=-1), mask


def test_the_prefix_network_runs_above_the_gate_and_the_main_one_below():
    model, reference = _gated()
    z, mask = _batch()
    for t_value, expect_reference in ((0.9, True), (GATE + 0.01, True), (GATE, False), (0.05, False)):
        t = torch.full((3, 1), t_value, dtype=torch.float64)
        same = torch.equal(model.phi(z, t, mask), reference.phi(z, t, mask))
        assert same == expect_reference, t_value
    t = torch.tensor([[0.9], [0.1], [0.5]], dtype=torch.float64)  # one batch, both kinds of row
    mixed = model.phi(z, t, mask)
    for i, net in ((0, reference), (1, model), (2, reference)):
        alone = net.phi(z[i : i + 1], t[i : i + 1], mask[i : i + 1])
        assert torch.allclose(mixed[i : i + 1], alone, atol=1e-12), i


def test_a_gated_model_is_equivariant_on_both_sides_of_the_gate():
    model, _ = _gated()
    z, mask = _batch()
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(5)))
    shift = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    moved = torch.cat([(z[..., :3] @ q.T + shift) * mask, z[..., 3:]], dim=-1)
    moved[..., :3] = geo.remove_mean_with_mask(moved[..., :3], mask)  # the model lives on zero-CoM positions
    for t_value in (0.8, 0.1):
        t = torch.full((3, 1), t_value, dtype=torch.float64)
        out, out_moved = model.phi(z, t, mask), model.phi(moved, t, mask)
        assert torch.allclose(out_moved[..., :3], out[..., :3] @ q.T, atol=1e-9), t_value
        assert torch.allclose(out_moved[..., 3:], out[..., 3:], atol=1e-9), t_value


def test_the_gate_round_trips_through_the_model_config_and_a_checkpoint(tmp_path):
    model, _ = _gated()
    config = model_config_of(model)
    assert config["time_gate"] == {"t_above": GATE} and "time_gate" not in model_config_of(build_model(_config()))
    save_checkpoint(tmp_path / "g.pt", config, model.state_dict())
    loaded = load_model(tmp_path / "g.pt")
    z, mask = _batch()
    for t_value in (0.9, 0.1):
        t = torch.full((3, 1), t_value, dtype=torch.float64)
        assert torch.equal(loaded.phi(z, t, mask), model.phi(z, t, mask))
    with pytest.raises(ValueError, match="time_gate"):
        build_model({**config, "time_gate": {"t": 0.5}})
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        build_model(_config()).set_time_gate(copy.deepcopy(model.dynamics).float(), 1.0)


def test_the_prefix_network_is_frozen_and_an_ema_leaves_it_bit_identical():
    model, reference = _gated()
    assert not any(p.requires_grad for p in model.prefix_dynamics.parameters())
    ema = EMA(model, 0.9)
    with torch.no_grad():
        for p in model.dynamics.parameters():
            p.add_(1.0)
    ema.update(model)
    state = ema.state_dict(model)
    for key, value in reference.dynamics.state_dict().items():
        assert torch.equal(state[f"prefix_dynamics.{key}"], value), key
    assert not torch.equal(state["dynamics.egnn.embedding.weight"], model.dynamics.egnn.embedding.weight)
