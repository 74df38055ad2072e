"""EDM's training loss, the variational bound, the reverse step and the final decode."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from elign.diffusion import geometry as geo
from elign.diffusion.factory import build_model
from elign.diffusion.sampler import sample_batch
from elign.model.presets import make_model_config
from elign.testing.fixtures import tiny_edm_model

DT = torch.float64


@pytest.fixture(scope="module")
def model():
    return tiny_edm_model(n_layers=2, coord_weight_std=0.3, dtype=DT)


def _molecules(seed=0):
    """Two small molecules in data units (Å, one-hot over H C N O F, charges = Z), padded to 5."""
    types = torch.tensor([[1, 0, 0, 0, -1], [1, 2, 3, 0, 0]])  # -1 = padding
    mask = (types >= 0).to(DT)[..., None]
    one_hot = F.one_hot(types.clamp(min=0), 5).to(DT) * mask
    charges = torch.tensor([1.0, 6.0, 7.0, 8.0, 9.0], dtype=DT)[types.clamp(min=0)][..., None] * mask
    x = torch.randn(2, 5, 3, dtype=DT, generator=torch.Generator().manual_seed(seed)) * mask
    return geo.remove_mean_with_mask(x, mask), one_hot, charges, mask


def test_l2_training_loss_equals_manual_computation(model):
    model.train()
    x, one_hot, charges, mask = _molecules()
    t_int = torch.tensor([700, 3])
    loss, info = model.loss_terms(x, one_hot, charges, mask, t_int=t_int, generator=torch.Generator().manual_seed(5))
    # Replay: same generator state -> same ε (t is given, so no randint is drawn).
    xn, hc, hi, _ = model.normalize(x, one_hot, charges, mask)
    eps = model.sample_combined_position_feature_noise(2, 5, mask, torch.Generator().manual_seed(5), DT)
    t = t_int.reshape(2, 1).to(DT) / model.T
    gamma_t = model.gamma(t).reshape(2, 1, 1)
    xh = torch.cat([xn, hc, hi], dim=2)
    z_t = torch.sqrt(torch.sigmoid(-gamma_t)) * xh + torch.sqrt(torch.sigmoid(gamma_t)) * eps
    eps_hat = model.phi(z_t, t, mask)
    manual = 0.5 * ((eps - eps_hat) ** 2).sum(dim=(1, 2)) / ((3 + 6) * 5)
    kl_prior = model.kl_prior(xh, mask)
    assert torch.allclose(loss, manual + kl_prior, rtol=1e-12, atol=0)
    assert kl_prior.abs().max() < 1e-3  # q(z_T | x) is close to the prior
    assert info["t"].tolist() == [700, 3]
    loss.mean().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    model.zero_grad(set_to_none=True)


def test_t_zero_uses_the_decoder_likelihood(model):
    model.train()
    x, one_hot, charges, mask = _molecules(1)
    loss, info = model.loss_terms(
        x, one_hot, charges, mask, t_int=torch.tensor([0, 0]), generator=torch.Generator().manual_seed(3)
    )
    assert torch.allclose(loss, info["kl_prior"] + info["loss_0"], rtol=1e-12)
    # Replay the noise: L_0 = ½‖ε_x − ε̂_x‖²/((3 + F)·N) − log p(h | z_0), and at σ_0² = 1e-5 the discrete
    # features are recovered almost surely, so −log p(h | z_0) ≈ 0.
    xn, hc, hi, _ = model.normalize(x, one_hot, charges, mask)
    eps = model.sample_combined_position_feature_noise(2, 5, mask, torch.Generator().manual_seed(3), DT)
    zero = torch.zeros(2, 1, dtype=DT)
    gamma_0 = model.gamma(zero).reshape(2, 1, 1)
    z_0 = torch.sqrt(torch.sigmoid(-gamma_0)) * torch.cat([xn, hc, hi], 2) + torch.sqrt(torch.sigmoid(gamma_0)) * eps
    with torch.no_grad():
        eps_hat = model.phi(z_0, zero, mask)
    x_term = 0.5 * ((eps - eps_hat)[..., :3] ** 2).sum(dim=(1, 2)) / ((3 + 6) * 5)
    assert torch.allclose(info["loss_0"].detach(), x_term, rtol=1e-6, atol=1e-6)


def test_eval_bound_is_finite_and_includes_constants(model):
    model.eval()
    x, one_hot, charges, mask = _molecules(2)
    with torch.no_grad():
        nll, info = model.loss_terms(x, one_hot, charges, mask, generator=torch.Generator().manual_seed(1))
    assert torch.isfinite(nll).all() and (info["t"] >= 1).all()
    const = -model.log_constants_p_x_given_z0(x, mask)
    dof = torch.tensor([3 * 3, 4 * 3], dtype=DT)  # (n − 1)·3 for n = 4, 5
    gamma_0 = float(model.schedule.gamma[0])
    assert torch.allclose(const, dof * (0.5 * gamma_0 + 0.5 * math.log(2 * math.pi)), rtol=1e-12)


def test_reverse_step_is_centred_and_consistent(model):
    model.eval()
    x, one_hot, charges, mask = _molecules(3)
    z_t = model.sample_combined_position_feature_noise(2, 5, mask, torch.Generator().manual_seed(4), DT)
    t = torch.full((2, 1), 0.3, dtype=DT)
    s = t - 1 / model.T
    with torch.no_grad():
        mu, sigma = model.p_zs_given_zt(s, t, z_t, mask)
        eps = model.phi(z_t, t, mask)
        mu2, sigma2 = model.posterior_from_eps(z_t, eps, s, t)
        z_s = model.sample_p_zs_given_zt(s, t, z_t, mask, generator=torch.Generator().manual_seed(6))
    assert torch.equal(mu, mu2) and torch.equal(sigma, sigma2)
    assert geo.max_centre_of_mass(mu[..., :3], mask) < 1e-14
    assert geo.max_centre_of_mass(z_s[..., :3], mask) < 1e-14
    assert (z_s * (1 - mask)).abs().max() == 0
    # σ² of p(z_s | z_t) equals σ²_{t|s} σ²_s / σ²_t in closed form.
    g_s, g_t = model.gamma(s), model.gamma(t)
    s2_s, s2_t = torch.sigmoid(g_s), torch.sigmoid(g_t)
    a2_ts = torch.sigmoid(-g_t) / torch.sigmoid(-g_s)
    assert torch.allclose(sigma.reshape(2, 1) ** 2, (1 - a2_ts) * s2_s / s2_t, rtol=1e-10)


def test_decode_recovers_types_and_charges(model):
    model.eval()
    x, one_hot, charges, mask = _molecules(4)
    xn, hc, hi, _ = model.normalize(x, one_hot, charges, mask)
    zero = torch.zeros(2, 1, dtype=DT)
    alpha_0 = model.alpha(model.gamma(zero), xn)
    z0 = alpha_0 * torch.cat([xn, hc, hi], dim=2)
    with torch.no_grad():
        out = model.sample_p_xh_given_z0(z0, mask, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out.one_hot, one_hot)
    assert torch.equal(out.charges, charges)
    assert out.x.shape == (2, 5, 3) and (out.x * (1 - mask)).abs().max() == 0


def test_sample_end_to_end_short_schedule():
    torch.manual_seed(1)
    cfg = make_model_config("small_cpu", hidden_nf=8, n_layers=1, diffusion={"timesteps": 20})
    m = build_model(cfg, dtype=DT).eval()
    with torch.no_grad():
        mask, _, out, bad = sample_batch(m, [6, 3, 5], generator=torch.Generator().manual_seed(0))
    assert bad.tolist() == [-1, -1, -1] and out.x.abs().max() > 0.1
    assert geo.max_centre_of_mass(out.x, mask) < 1e-10
    assert torch.equal(out.one_hot.sum(-1, keepdim=True), mask)
    assert torch.equal(out.charges, torch.round(out.charges))


def test_too_large_normalize_factor_is_refused():
    cfg = make_model_config(
        "small_cpu", hidden_nf=8, n_layers=1, diffusion={"noise_precision": 1e-2, "normalize_factors": [1, 4, 10]}
    )
    with pytest.raises(ValueError, match="normalization value"):
        build_model(cfg)
