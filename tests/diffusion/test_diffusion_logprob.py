"""Per-step Gaussian log-probability of the reverse process on the zero-CoM subspace."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Normal

from elign.diffusion.factory import build_model
from elign.diffusion.gaussian import kl_equal_sigma, reverse_step_log_prob
from elign.model.presets import make_model_config

DT = torch.float64


def subspace_basis(n: int) -> torch.Tensor:
    """(n, n − 1) orthonormal basis of {v ∈ R^n : Σ v = 0}, from a QR factorisation."""
    a = torch.cat(
        [torch.ones(n, 1, dtype=DT), torch.randn(n, n - 1, dtype=DT, generator=torch.Generator().manual_seed(n))], dim=1
    )
    q, _ = torch.linalg.qr(a)
    return q[:, 1:]


def closed_form_log_prob(z_s, mu, sigma, sizes):
    """Sum of independent 1-D normal log-densities over subspace coordinates of x and over h."""
    out = []
    for b, n in enumerate(sizes):
        d = z_s[b, :n] - mu[b, :n]
        coords_x = subspace_basis(n).T @ d[:, :3]  # (n − 1, 3) coordinates in the subspace
        dist = Normal(torch.zeros((), dtype=DT), sigma[b].reshape(()))
        out.append(dist.log_prob(coords_x).sum() + dist.log_prob(d[:, 3:]).sum())
    return torch.stack(out)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(make_model_config("small_cpu", hidden_nf=16, n_layers=2), dtype=DT).eval()


def _batch(sizes, n_slots, model, seed):
    mask = torch.zeros(len(sizes), n_slots, 1, dtype=DT)
    for b, n in enumerate(sizes):
        mask[b, :n] = 1
    g = torch.Generator().manual_seed(seed)
    z = model.sample_combined_position_feature_noise(len(sizes), n_slots, mask, g, DT)
    return z, mask


def test_sampled_step_log_prob_matches_closed_form(model):
    sizes = [6, 2, 9]
    z_t, mask = _batch(sizes, 9, model, seed=1)
    t = torch.full((3, 1), 0.5, dtype=DT)
    with torch.no_grad():
        mu, sigma = model.p_zs_given_zt(t - 1 / model.T, t, z_t, mask)
        z_s = model.sample_from_step(mu, sigma, mask, generator=torch.Generator().manual_seed(2))
    ours = model.reverse_step_log_prob(z_s, mu, sigma, mask)
    ref = closed_form_log_prob(z_s, mu, sigma, sizes)
    assert ours.shape == (3,)
    assert ((ours - ref).abs() / ref.abs()).max() < 1e-10


def test_log_prob_uses_subspace_dimension():
    """At z_s = μ the density is −d·(log σ + ½ log 2π) with d = (n − 1)·3 + n·F."""
    mask = torch.zeros(2, 5, 1, dtype=DT)
    mask[0, :5], mask[1, :2] = 1, 1
    mu = torch.zeros(2, 5, 3 + 6, dtype=DT)
    sigma = torch.tensor([0.3, 2.0], dtype=DT).reshape(2, 1, 1)
    lp = reverse_step_log_prob(mu, mu, sigma, mask)
    d = torch.tensor([4 * 3 + 5 * 6, 1 * 3 + 2 * 6], dtype=DT)
    expected = -d * (torch.log(sigma.reshape(2)) + 0.5 * torch.log(torch.tensor(2 * torch.pi, dtype=DT)))
    assert torch.allclose(lp, expected, rtol=1e-14, atol=0)


def test_padding_does_not_change_log_prob(model):
    z, mask = _batch([4], 4, model, seed=3)
    mu, _ = _batch([4], 4, model, seed=4)
    big_z, big_mu = torch.zeros(1, 7, 9, dtype=DT), torch.zeros(1, 7, 9, dtype=DT)
    big_mask = torch.zeros(1, 7, 1, dtype=DT)
    big_z[:, :4], big_mu[:, :4], big_mask[:, :4] = z, mu, 1
    big_z[:, 4:] = 123.0  # garbage in padded slots
    assert torch.allclose(
        reverse_step_log_prob(big_z, big_mu, 0.7, big_mask), reverse_step_log_prob(z, mu, 0.7, mask), rtol=1e-14
    )


def test_kl_equal_sigma_is_expected_log_ratio(model):
    """KL(N(a, σ²) ‖ N(b, σ²)) = E_{z~N(a)}[log p_a(z) − log p_b(z)]; exact for the mean-difference term."""
    a, mask = _batch([5], 5, model, seed=5)
    b, _ = _batch([5], 5, model, seed=6)
    sigma = torch.tensor([0.4], dtype=DT)
    kl = kl_equal_sigma(a, b, sigma, mask)
    # log p_a(a) − log p_b(a) = ‖a − b‖²/(2σ²) exactly (the quadratic form in z averages to it).
    diff = reverse_step_log_prob(a, a, sigma, mask) - reverse_step_log_prob(a, b, sigma, mask)
    assert torch.allclose(kl, diff, rtol=1e-12)
