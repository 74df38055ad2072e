"""Zero-centre-of-mass geometry on padded batches (EDM ``equivariant_diffusion/utils.py``).

Positions of a molecule with n real atoms live in the (n − 1)·3-dimensional linear subspace
{x : Σ_i x_i = 0}. Sampling a standard Gaussian in R^{n·3} and projecting onto that subspace gives a
standard Gaussian on the subspace (the projection is orthogonal and the Gaussian isotropic), which is how
EDM draws its position noise. Shapes: x (B, N, D), node_mask (B, N, 1) with 1 for real atoms.
"""

from __future__ import annotations

import torch


def sum_except_batch(x: torch.Tensor) -> torch.Tensor:
    """(B, ...) -> (B,)."""
    return x.reshape(x.shape[0], -1).sum(dim=-1)


def num_atoms(node_mask: torch.Tensor) -> torch.Tensor:
    """(B, N, 1) -> (B,) number of real atoms (in node_mask's dtype)."""
    return node_mask.reshape(node_mask.shape[0], -1).sum(dim=1)


def assert_correctly_masked(x: torch.Tensor, node_mask: torch.Tensor, tol: float = 1e-4) -> None:
    """Raise if x is not zero in padded slots (EDM ``assert_correctly_masked``)."""
    if x.numel() == 0:
        return
    err = (x * (1 - node_mask)).abs().max().item()
    if err >= tol:
        raise AssertionError(f"values in padded slots are not zero (max |x| = {err:.3g})")


def remove_mean_with_mask(x: torch.Tensor, node_mask: torch.Tensor, check_mask: bool = True) -> torch.Tensor:
    """Subtract each molecule's mean over real atoms; padded slots stay zero (EDM ``remove_mean_with_mask``).

    x (B, N, D) must be zero in padded slots (checked unless ``check_mask`` is False, like EDM's assert).
    """
    if check_mask:
        err = (x * (1 - node_mask)).abs().sum().item()
        if err >= 1e-5:
            raise AssertionError(f"remove_mean_with_mask: padded slots hold values (Σ|x| = {err:.3g})")
    n = node_mask.sum(dim=1, keepdim=True)
    mean = torch.sum(x, dim=1, keepdim=True) / n
    return x - mean * node_mask


def assert_mean_zero_with_mask(
    x: torch.Tensor, node_mask: torch.Tensor, rel_tol: float = 1e-2, eps: float = 1e-10
) -> None:
    """Raise unless x is masked and centred: |Σ_i x_i| / max|x| < rel_tol (EDM's test and tolerance)."""
    assert_correctly_masked(x, node_mask)
    largest = x.abs().max().item()
    error = torch.sum(x, dim=1, keepdim=True).abs().max().item()
    rel = error / (largest + eps)
    if rel >= rel_tol:
        raise AssertionError(f"centre of mass is not zero: relative error {rel:.3g}")


def max_centre_of_mass(x: torch.Tensor, node_mask: torch.Tensor) -> float:
    """Largest |mean over real atoms| of any molecule and coordinate (absolute, for tight checks)."""
    mean = torch.sum(x * node_mask, dim=1) / node_mask.sum(dim=1)
    return mean.abs().max().item()


def sample_center_gravity_zero_gaussian_with_mask(
    size: tuple[int, int, int],
    node_mask: torch.Tensor,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    check_mask: bool = True,
) -> torch.Tensor:
    """Standard Gaussian on the zero-CoM subspace of each molecule, zero in padded slots.

    size (B, N, D); returns (B, N, D) in ``dtype`` (default: node_mask's floating dtype). ``check_mask``
    False skips :func:`remove_mean_with_mask`'s host-synchronising check (the draw is masked by construction).
    """
    dtype = dtype or (node_mask.dtype if node_mask.is_floating_point() else torch.get_default_dtype())
    x = torch.randn(size, generator=generator, dtype=dtype, device=node_mask.device)
    return remove_mean_with_mask(x * node_mask, node_mask, check_mask=check_mask)


def sample_gaussian_with_mask(
    size: tuple[int, int, int],
    node_mask: torch.Tensor,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Standard Gaussian (B, N, F), zero in padded slots."""
    dtype = dtype or (node_mask.dtype if node_mask.is_floating_point() else torch.get_default_dtype())
    x = torch.randn(size, generator=generator, dtype=dtype, device=node_mask.device)
    return x * node_mask
