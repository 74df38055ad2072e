"""Zero-CoM helpers and noise on padded batches."""

from __future__ import annotations

import pytest
import torch

from elign.diffusion import geometry as geo

DT = torch.float64


def _mask(sizes, n_slots):
    m = torch.zeros(len(sizes), n_slots, 1, dtype=DT)
    for b, n in enumerate(sizes):
        m[b, :n] = 1
    return m


def test_zero_com_noise_is_centred_and_masked():
    mask = _mask([5, 1, 3, 8], 8)
    g = torch.Generator().manual_seed(0)
    x = geo.sample_center_gravity_zero_gaussian_with_mask((4, 8, 3), mask, generator=g)
    assert x.dtype == DT
    assert (x * (1 - mask)).abs().max() == 0
    assert geo.max_centre_of_mass(x, mask) < 1e-15
    assert x[1].abs().max() == 0  # a single atom has no free position
    geo.assert_mean_zero_with_mask(x, mask)


def test_zero_com_noise_has_projected_covariance():
    """Per coordinate, Var(x_i) = (n − 1)/n and Cov(x_i, x_j) = −1/n: the projected standard Gaussian."""
    n, samples = 4, 40000
    mask = _mask([n] * samples, n)
    x = geo.sample_center_gravity_zero_gaussian_with_mask(
        (samples, n, 3), mask, generator=torch.Generator().manual_seed(1)
    )
    flat = x.permute(0, 2, 1).reshape(-1, n)  # one row per molecule and axis
    cov = flat.T @ flat / flat.shape[0]
    expected = torch.eye(n, dtype=DT) - 1.0 / n
    assert (cov - expected).abs().max() < 0.02


def test_feature_noise_is_masked():
    mask = _mask([2, 4], 4)
    h = geo.sample_gaussian_with_mask((2, 4, 6), mask, generator=torch.Generator().manual_seed(2))
    assert (h * (1 - mask)).abs().max() == 0 and h[1].abs().min() > 0


def test_remove_mean_with_mask():
    mask = _mask([3, 2], 3)
    x = torch.arange(18, dtype=DT).reshape(2, 3, 3) * mask
    centred = geo.remove_mean_with_mask(x, mask)
    assert geo.max_centre_of_mass(centred, mask) < 1e-14
    assert (centred * (1 - mask)).abs().max() == 0
    assert torch.allclose(centred[1, 0], torch.tensor([-1.5, -1.5, -1.5], dtype=DT))
    with pytest.raises(AssertionError, match="padded slots"):
        geo.remove_mean_with_mask(x + 1.0, mask)


def test_asserts_catch_bad_inputs():
    mask = _mask([3], 4)
    x = torch.randn(1, 4, 3, dtype=DT) * mask
    with pytest.raises(AssertionError, match="centre of mass"):
        geo.assert_mean_zero_with_mask(x + 5 * mask, mask)
    with pytest.raises(AssertionError, match="padded slots"):
        geo.assert_correctly_masked(x + 1.0, mask)
    assert geo.num_atoms(mask).tolist() == [3.0]
