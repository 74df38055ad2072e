"""A plain dense masked EDM network and sampling chain: a reference for tests and benchmarks only.

Not used by the pipeline. It re-implements EDM's ``EGNN_dynamics_QM9._forward`` / ``EGNN`` /
``EquivariantBlock`` / ``GCL`` / ``EquivariantUpdate`` (ehoogeboom/e3_diffusion_for_molecules,
``egnn/models.py`` and ``egnn/egnn_new.py``; Hoogeboom et al. 2022) the straightforward way, written from
EDM's description: all B·N·N edges of a padded batch including self loops and padding (edge indices built
inside every call), messages multiplied by ``edge_mask``, node states by ``node_mask``, the first layer of
each edge MLP applied to the concatenation [h_i, h_j, a_ij] per edge. It reads the weights of one of our
:class:`elign.model.dynamics.EGNNDynamics` modules, so both compute the same function with equal weights;
the tests check our sparse network against it and ``bench/sampling.py`` times our sampler against
:func:`dense_reference_sample` (autograd left on, as code that forgets ``no_grad`` would run).

Supported: EDM's published switches (condition_time, 'sum' aggregation) with or without attention and
tanh; not sin_embedding or context. Shapes: xh (B, N, 3 + F), node_mask (B, N, 1), edge_mask (B·N·N, 1).
"""

from __future__ import annotations

import torch

from elign.diffusion.en_diffusion import Decoded, EnVariationalDiffusion
from elign.model.dynamics import EGNNDynamics
from elign.model.graph import fully_connected_edge_mask

__all__ = ["dense_edm_forward", "dense_reference_sample"]


def _dense_segment_sum(data: torch.Tensor, row: torch.Tensor, n: int) -> torch.Tensor:
    out = data.new_zeros(n, data.shape[1])
    return out.scatter_add_(0, row[:, None].expand(-1, data.shape[1]), data)


def _time_column(t: torch.Tensor | float, bs: int, n: int, like: torch.Tensor) -> torch.Tensor:
    """(B·N, 1) time feature from a scalar or a per-molecule (B,) / (B, 1) t."""
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    if t.numel() == 1:
        return t.reshape(1, 1).expand(bs * n, 1)
    return t.reshape(bs, 1).repeat_interleave(n, dim=0)


def dense_edm_forward(
    dyn: EGNNDynamics, t: torch.Tensor | float, xh: torch.Tensor, node_mask: torch.Tensor, edge_mask: torch.Tensor
) -> torch.Tensor:
    """EDM's dense masked dynamics forward: ε̂ (B, N, 3 + F) = [zero-CoM velocity, h_out], zero in padding.

    t: scalar or (B,) / (B, 1) in [0, 1]; xh (B, N, 3 + F); node_mask (B, N, 1); edge_mask (B·N·N, 1).
    """
    cfg = dyn.config
    if cfg.sin_embedding or cfg.context_node_nf or not cfg.condition_time:
        raise NotImplementedError("the dense reference covers condition_time=True without sin_embedding/context")
    bs, n, _ = xh.shape
    dev = xh.device
    b_idx = torch.arange(bs, device=dev).repeat_interleave(n * n)
    i_idx = torch.arange(n, device=dev).repeat_interleave(n).repeat(bs)
    j_idx = torch.arange(n, device=dev).repeat(n * bs)
    row, col = b_idx * n + i_idx, b_idx * n + j_idx
    nm, em = node_mask.reshape(bs * n, 1), edge_mask.reshape(bs * n * n, 1)
    xh = xh.reshape(bs * n, -1).clone() * nm
    x0 = xh[:, :3].clone()
    h = torch.cat([xh[:, 3:], _time_column(t, bs, n, xh)], dim=1)
    egnn = dyn.egnn

    def c2d(x, norm_constant):
        diff = x[row] - x[col]
        radial = torch.sum(diff**2, 1, keepdim=True)
        return radial, diff / (torch.sqrt(radial + 1e-8) + norm_constant)

    dist0, _ = c2d(x0, 1.0)
    x = x0
    h = egnn.embedding(h)
    for block in egnn.blocks:
        radial, cdiff = c2d(x, block.norm_constant)
        ea = torch.cat([radial, dist0], dim=1)
        for gcl in block.gcls:
            mij = gcl.edge_mlp(torch.cat([h[row], h[col], ea], dim=1))
            msg = (mij * gcl.att_mlp(mij) if gcl.attention else mij) * em
            agg = _dense_segment_sum(msg, row, bs * n) / gcl.normalization_factor
            h = (h + gcl.node_mlp(torch.cat([h, agg], dim=1))) * nm
        cu = block.coord_update
        phi = cu.coord_mlp(torch.cat([h[row], h[col], ea], dim=1))
        trans = cdiff * (torch.tanh(phi) * cu.coords_range if cu.tanh else phi) * em
        x = (x + _dense_segment_sum(trans, row, bs * n) / cu.normalization_factor) * nm
        h = h * nm
    h = egnn.embedding_out(h) * nm
    vel = ((x - x0) * nm).reshape(bs, n, 3)
    mask3 = node_mask.reshape(bs, n, 1)
    vel = vel - (vel.sum(1, keepdim=True) / mask3.sum(1, keepdim=True)) * mask3
    return torch.cat([vel, h[:, :-1].reshape(bs, n, -1)], dim=2)


def dense_reference_sample(
    model: EnVariationalDiffusion,
    node_mask: torch.Tensor,
    generator: torch.Generator | None = None,
    n_steps: int | None = None,
) -> Decoded:
    """EDM's sampling chain with :func:`dense_edm_forward` as φ: the straightforward version.

    Autograd stays on inside each step (no ``no_grad``); z is detached between steps only so that memory
    does not grow with T. Noise is drawn with the model's own functions in EDM's order (z_T, one draw per
    step, the decode), so with an equally seeded generator it sees the same noise as
    :func:`elign.diffusion.sampler.sample_batch`. n_steps: stop after that many steps from t = T.
    Returns the decode in Å, like ``model.sample_p_xh_given_z0``.
    """
    bs, n, _ = node_mask.shape
    dtype = node_mask.dtype
    edge_mask = fully_connected_edge_mask(node_mask)  # built once per batch, as EDM's sampling script does
    z = model.sample_combined_position_feature_noise(bs, n, node_mask, generator, dtype)
    steps = model.T if n_steps is None else min(int(n_steps), model.T)
    for s_int in range(model.T - 1, model.T - 1 - steps, -1):
        s = torch.full((bs, 1), s_int / model.T, dtype=dtype, device=node_mask.device)
        t = torch.full((bs, 1), (s_int + 1) / model.T, dtype=dtype, device=node_mask.device)
        eps = dense_edm_forward(model.dynamics, t, z, node_mask, edge_mask)
        mu, sigma = model.posterior_from_eps(z, eps, s, t)
        z = model.sample_from_step(mu, sigma, node_mask, generator).detach()
    zeros = torch.zeros((bs, 1), dtype=dtype, device=node_mask.device)
    gamma_0 = model.gamma(zeros, dtype)
    eps_0 = dense_edm_forward(model.dynamics, zeros, z, node_mask, edge_mask)
    mu_x = model.compute_x_pred(eps_0, z, gamma_0)
    xh = model.sample_normal(mu_x, model.snr(-0.5 * gamma_0).unsqueeze(1), node_mask, generator)
    _, z_cat, z_int = model.split_z(z)
    x, h_cat, h_int = model.unnormalize(xh[:, :, :3], z_cat, z_int, node_mask)
    one_hot = torch.nn.functional.one_hot(torch.argmax(h_cat, dim=2), model.num_classes).to(dtype) * node_mask
    charges = torch.round(h_int) * node_mask if model.include_charges else h_int
    return Decoded(x.detach(), one_hot, charges.detach())
