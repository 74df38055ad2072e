"""Gaussian densities and divergences on EDM's mixed space: zero-CoM positions and free features.

A molecule with n real atoms and F features per atom is a point z = [x, h] with x in the
(n − 1)·3-dimensional zero-centre-of-mass subspace of R^{n·3} and h in R^{n·F}. An isotropic Gaussian
N(μ, σ²I) restricted to that space (μ_x itself centred) has the density

    log p(z) = −‖z − μ‖² / (2σ²) − d·(log σ + ½ log 2π),   d = (n − 1)·3 + n·F,

where ‖z_x − μ_x‖ may be taken in ambient coordinates because z_x − μ_x lies in the subspace and an
orthonormal basis of it preserves norms. This is EDM's treatment (``subspace_dimensionality``,
``center_gravity_zero_gaussian_log_likelihood_with_mask``; Hoogeboom et al. 2022, Sec. 3 and App. A).
Shapes: (B, N, D) with D = 3 + F, node_mask (B, N, 1), results per molecule (B,).
"""

from __future__ import annotations

import math

import torch

from elign.diffusion.geometry import sum_except_batch


def cdf_standard_gaussian(x: torch.Tensor) -> torch.Tensor:
    """Φ(x) of the standard normal."""
    return 0.5 * (1.0 + torch.erf(x / math.sqrt(2)))


def gaussian_kl(
    q_mu: torch.Tensor, q_sigma: torch.Tensor, p_mu: torch.Tensor, p_sigma: torch.Tensor, node_mask: torch.Tensor
) -> torch.Tensor:
    """KL(N(q_mu, q_sigma²) ‖ N(p_mu, p_sigma²)) summed over real atoms' features (EDM ``gaussian_KL``)."""
    kl = torch.log(p_sigma / q_sigma) + 0.5 * (q_sigma**2 + (q_mu - p_mu) ** 2) / (p_sigma**2) - 0.5
    return sum_except_batch(kl * node_mask)


def gaussian_kl_for_dimension(
    q_mu: torch.Tensor, q_sigma: torch.Tensor, p_mu: torch.Tensor, p_sigma: torch.Tensor, d: torch.Tensor
) -> torch.Tensor:
    """KL of isotropic Gaussians on a d-dimensional subspace (EDM ``gaussian_KL_for_dimension``).

    q_sigma, p_sigma, d: (B,); means (B, N, 3), zero in padded slots.
    """
    mu_norm2 = sum_except_batch((q_mu - p_mu) ** 2)
    return d * torch.log(p_sigma / q_sigma) + 0.5 * (d * q_sigma**2 + mu_norm2) / (p_sigma**2) - 0.5 * d


def reverse_step_log_prob(
    z_s: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor | float, node_mask: torch.Tensor, n_dims: int = 3
) -> torch.Tensor:
    """log N(z_s; μ, σ²I) of one reverse step p(z_s | z_t), per molecule, on EDM's space (module doc).

    Args:
        z_s, mu: (B, N, n_dims + F); the position parts must both be zero-CoM (as EDM's sampler makes
            them) so that their difference lies in the (n − 1)·n_dims subspace.
        sigma: per-molecule standard deviation, (B, 1, 1), (B, 1) or (B,), or a scalar.
        node_mask: (B, N, 1).
    Returns:
        (B,) log-density, with d = (n − 1)·n_dims + n·F degrees of freedom per molecule.
    """
    b, _, dim = z_s.shape
    sigma = torch.as_tensor(sigma, dtype=z_s.dtype, device=z_s.device)
    sigma = sigma.reshape(-1).expand(b) if sigma.numel() == 1 else sigma.reshape(b)
    n = node_mask.reshape(b, -1).sum(dim=1).to(z_s.dtype)
    dof = (n - 1) * n_dims + n * (dim - n_dims)
    r2 = sum_except_batch(((z_s - mu) * node_mask) ** 2)
    return -0.5 * r2 / sigma**2 - dof * (torch.log(sigma) + 0.5 * math.log(2 * math.pi))


def kl_equal_sigma(
    mu_a: torch.Tensor, mu_b: torch.Tensor, sigma: torch.Tensor | float, node_mask: torch.Tensor
) -> torch.Tensor:
    """KL(N(μ_a, σ²) ‖ N(μ_b, σ²)) = ‖μ_a − μ_b‖² / (2σ²) per molecule (B,); σ as in reverse_step_log_prob."""
    b = mu_a.shape[0]
    sigma = torch.as_tensor(sigma, dtype=mu_a.dtype, device=mu_a.device)
    sigma = sigma.reshape(-1).expand(b) if sigma.numel() == 1 else sigma.reshape(b)
    return 0.5 * sum_except_batch(((mu_a - mu_b) * node_mask) ** 2) / sigma**2
