"""E(3) equivariance, zero-CoM output and padding independence of the EDM dynamics (float64)."""

from __future__ import annotations

import pytest
import torch

from elign.model.graph import build_graph
from elign.testing.fixtures import random_orthogonal, tiny_edm_model

DT = torch.float64
TOL = 1e-11


@pytest.fixture(scope="module")
def dynamics():
    return tiny_edm_model(n_layers=3, coord_weight_std=0.5, dtype=DT).dynamics.eval()


def _batch(sizes, n_slots, seed=1, garbage=False):
    g = torch.Generator().manual_seed(seed)
    xh = torch.randn(len(sizes), n_slots, 9, generator=g, dtype=DT)
    node_mask = torch.zeros(len(sizes), n_slots, 1, dtype=DT)
    for b, n in enumerate(sizes):
        node_mask[b, :n] = 1
    if not garbage:
        xh = xh * node_mask
    return xh, node_mask


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("det_sign,seed", [(1, 11), (1, 12), (-1, 13), (-1, 14)])
def test_rotation_reflection_translation_equivariance(dynamics, det_sign, seed):
    xh, node_mask = _batch([6, 3, 8], n_slots=8)
    q = random_orthogonal(det_sign, seed)
    shift = torch.tensor([[[1.5, -2.0, 0.7]], [[-3.0, 0.1, 4.0]], [[0.0, 0.0, -1.0]]], dtype=DT)
    xh_g = xh.clone()
    xh_g[..., :3] = (xh[..., :3] @ q.T + shift) * node_mask
    t = torch.tensor([[0.2], [0.5], [0.9]], dtype=DT)
    with torch.no_grad():
        out = dynamics(t, xh, node_mask)
        out_g = dynamics(t, xh_g, node_mask)
    assert out[..., :3].abs().max() > 1e-3
    assert _rel(out_g[..., :3], out[..., :3] @ q.T) < TOL  # velocity rotates / reflects
    assert _rel(out_g[..., 3:], out[..., 3:]) < TOL  # features invariant


def test_velocity_has_zero_centre_of_mass(dynamics):
    xh, node_mask = _batch([4, 7, 2], n_slots=7)
    xh[..., :3] += 3.0 * node_mask  # off-centre input: the output must still be centred
    with torch.no_grad():
        out = dynamics(0.3, xh, node_mask)
    com = out[..., :3].sum(1) / node_mask.sum(1)
    assert com.abs().max() < 1e-13
    assert out[..., :3].abs().max() > 1e-3
    assert (out * (1 - node_mask)).abs().max() == 0  # padded slots are zero


def test_padding_and_garbage_do_not_change_real_atoms(dynamics):
    xh, node_mask = _batch([5, 3], n_slots=5, seed=4)
    big = torch.randn(2, 9, 9, dtype=DT, generator=torch.Generator().manual_seed(9)) * 100  # garbage
    big[:, :5] = torch.where(node_mask.bool(), xh, big[:, :5])
    big_mask = torch.zeros(2, 9, 1, dtype=DT)
    big_mask[:, :5] = node_mask
    with torch.no_grad():
        out = dynamics(0.6, xh, node_mask)
        out_big = dynamics(0.6, big, big_mask)
        alone = dynamics(0.6, xh[1:, :3], node_mask[1:, :3])  # molecule 1 alone, unpadded
    assert _rel(out_big[:, :5] * node_mask, out) < 1e-14
    assert out_big[:, 5:].abs().max() == 0
    assert _rel(alone[0], out[1, :3]) < 1e-14


def test_non_contiguous_real_atoms(dynamics):
    """Real atoms need not be packed at the front: permuting slots permutes the output."""
    xh, node_mask = _batch([4], n_slots=4, seed=6)
    perm = torch.tensor([2, 5, 0, 4])  # slots of the 4 real atoms in a 6-slot layout
    spread = torch.zeros(1, 6, 9, dtype=DT)
    spread_mask = torch.zeros(1, 6, 1, dtype=DT)
    spread[0, perm], spread_mask[0, perm] = xh[0], 1.0
    with torch.no_grad():
        out = dynamics(0.4, xh, node_mask)
        out_s = dynamics(0.4, spread, spread_mask, graph=build_graph(spread_mask))
    assert _rel(out_s[0, perm], out[0]) < 1e-13


def test_nan_velocity_is_reset_with_warning(dynamics):
    xh, node_mask = _batch([3], n_slots=3)
    xh[0, 0, 0] = float("nan")
    with pytest.warns(RuntimeWarning, match="NaN"), torch.no_grad():
        out = dynamics(0.5, xh, node_mask)
    assert torch.equal(out[..., :3], torch.zeros_like(out[..., :3]))
