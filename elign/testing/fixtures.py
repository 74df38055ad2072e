"""Shared test fixtures of the model tests: a tiny float64 EDM model and random orthogonal matrices.

e3nn ships equivariance helpers too (``e3nn.o3.rand_matrix``, ``e3nn.util.test.assert_equivariant``), but
they draw from torch's global RNG and know no node mask; these are seeded and masked, so a test's
matrices are the same on every run and in any test order.
"""

from __future__ import annotations

import torch

from elign.diffusion.en_diffusion import EnVariationalDiffusion
from elign.diffusion.factory import build_model
from elign.model.presets import make_model_config


def random_orthogonal(det_sign: int, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A random 3×3 orthogonal matrix with determinant det_sign (rotation or rotation-reflection)."""
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=dtype))
    q = q * torch.sign(torch.diagonal(r))[None, :]
    if torch.det(q) * det_sign < 0:
        q[:, 0] = -q[:, 0]
    assert torch.allclose(q @ q.T, torch.eye(3, dtype=dtype), atol=1e-14)
    assert round(float(torch.det(q))) == det_sign
    return q


def tiny_edm_model(
    n_layers: int, coord_weight_std: float, hidden_nf: int = 16, seed: int = 0, dtype: torch.dtype = torch.float64
) -> EnVariationalDiffusion:
    """A small_cpu EDM model (QM9 atom types) whose coordinate updates are not negligible: the last layer
    of every block's coordinate MLP is drawn from N(0, coord_weight_std²) (EDM initialises it near zero)."""
    torch.manual_seed(seed)
    model = build_model(make_model_config("small_cpu", hidden_nf=hidden_nf, n_layers=n_layers), dtype=dtype)
    for block in model.dynamics.egnn.blocks:
        torch.nn.init.normal_(block.coord_update.coord_mlp[4].weight, std=coord_weight_std)
    return model
