"""Sparse per-molecule message passing == EDM's dense masked message passing, with the same weights.

The dense reference (:mod:`elign.testing.dense_reference`) re-implements EDM's ``EGNN_dynamics_QM9._forward``
/ ``EGNN`` / ``EquivariantBlock`` / ``GCL`` / ``EquivariantUpdate`` (ehoogeboom/e3_diffusion_for_molecules)
literally: all B·N·N edges including self loops and padding, messages multiplied by ``edge_mask``, node
states by ``node_mask``. It reads the weights from our module.
"""

from __future__ import annotations

import pytest
import torch

from elign.diffusion.factory import build_model
from elign.model.graph import build_graph, fully_connected_edge_mask, graph_from_edge_mask
from elign.model.presets import make_model_config
from elign.testing.dense_reference import dense_edm_forward

DT = torch.float64


@pytest.fixture(scope="module")
def dynamics():
    torch.manual_seed(0)
    model = build_model(make_model_config("small_cpu", hidden_nf=16, n_layers=3, inv_sublayers=2), dtype=DT)
    for block in model.dynamics.egnn.blocks:  # make coordinate updates large enough to matter
        torch.nn.init.normal_(block.coord_update.coord_mlp[4].weight, std=0.5)
    return model.dynamics.eval()


def _batch(sizes, n_slots, dim, seed=1):
    g = torch.Generator().manual_seed(seed)
    xh = torch.randn(len(sizes), n_slots, dim, generator=g, dtype=DT)
    node_mask = torch.zeros(len(sizes), n_slots, 1, dtype=DT)
    for b, n in enumerate(sizes):
        node_mask[b, :n] = 1
    x = xh[..., :3] * node_mask
    xh[..., :3] = x - x.sum(1, keepdim=True) / node_mask.sum(1, keepdim=True) * node_mask
    return xh * node_mask, node_mask


def test_sparse_matches_dense_reference(dynamics):
    xh, node_mask = _batch([5, 1, 7, 2], n_slots=7, dim=3 + 6)
    edge_mask = fully_connected_edge_mask(node_mask)
    with torch.no_grad():
        ref = dense_edm_forward(dynamics, 0.37, xh, node_mask, edge_mask)
        ours = dynamics(torch.tensor(0.37, dtype=DT), xh, node_mask)
        ours_em = dynamics(torch.tensor(0.37, dtype=DT), xh, node_mask, edge_mask=edge_mask)
    scale = ref.abs().max()
    assert ref[..., :3].abs().max() > 1e-3  # the coordinate path is exercised
    assert (ours - ref).abs().max() / scale < 1e-12
    assert (ours_em - ref).abs().max() / scale < 1e-12


def test_custom_edge_mask_matches_dense_reference(dynamics):
    xh, node_mask = _batch([6, 4], n_slots=6, dim=9, seed=3)
    g = torch.Generator().manual_seed(5)
    em = (torch.rand(2, 6, 6, generator=g) < 0.5).to(DT) * fully_connected_edge_mask(node_mask).reshape(2, 6, 6)
    em = em.reshape(-1, 1)
    with torch.no_grad():
        ref = dense_edm_forward(dynamics, 0.5, xh, node_mask, em)
        ours = dynamics(0.5, xh, node_mask, edge_mask=em)
    assert (ours - ref).abs().max() / ref.abs().max() < 1e-12
    assert graph_from_edge_mask(node_mask, em).num_edges == int(em.sum())


def test_graph_edges_are_real_pairs_in_dense_order():
    node_mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [0, 1, 1, 0]], dtype=DT)[..., None]
    g = build_graph(node_mask)
    assert g.n_atoms.tolist() == [3, 1, 2]
    assert g.node_index.tolist() == [0, 1, 2, 4, 9, 10]
    assert g.num_edges == 3 * 2 + 0 + 2 * 1
    pairs = list(zip(g.row.tolist(), g.col.tolist()))
    assert pairs == [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1), (4, 5), (5, 4)]
    from_mask = graph_from_edge_mask(node_mask, fully_connected_edge_mask(node_mask))
    assert torch.equal(from_mask.row, g.row) and torch.equal(from_mask.col, g.col)


def test_graph_rejects_non_binary_mask():
    with pytest.raises(ValueError, match="0 and 1"):
        build_graph(torch.full((1, 3, 1), 0.5))
