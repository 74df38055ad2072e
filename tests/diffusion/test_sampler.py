"""The batched sampler: reproducibility, sizes and order, zero CoM, bad samples as rows, the step hook."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from elign.diffusion import sampler as smp
from elign.diffusion.factory import build_model
from elign.model.presets import make_model_config
from elign.testing.dense_reference import dense_reference_sample

T = 30


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def _model(dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    m = build_model(make_model_config("small_cpu", hidden_nf=16, n_layers=2, diffusion={"timesteps": T}), dtype=dtype)
    for block in m.dynamics.egnn.blocks:  # make the coordinate path matter
        torch.nn.init.normal_(block.coord_update.coord_mlp[4].weight, std=0.3)
    return m.eval()


@pytest.fixture(scope="module")
def model():
    return _model()


def _sample(model, sizes, seed, **kw):
    kw.setdefault("max_abs_position_ang", 1e9)
    return smp.sample_molecules(model, sizes, batch_size=kw.pop("batch_size", 3), seed=seed, **kw)


def test_same_seed_same_samples_and_different_seed_differs(model):
    sizes = [4, 7, 3, 7, 5]
    a, b, c = _sample(model, sizes, 11), _sample(model, sizes, 11), _sample(model, sizes, 12)
    assert np.array_equal(a.table.positions_ang, b.table.positions_ang)
    assert np.array_equal(a.table.atomic_numbers, b.table.atomic_numbers)
    assert list(a.table.columns["status"]) == list(b.table.columns["status"])
    assert not np.allclose(a.table.positions_ang, c.table.positions_ang)


def test_sizes_and_output_order_follow_the_request(model):
    sizes = [9, 3, 6, 3, 8, 1]
    res = _sample(model, sizes, 5, batch_size=2)
    assert res.table.num_atoms.tolist() == sizes
    assert res.table.mol_id.tolist() == list(range(len(sizes)))
    assert len(res.table.atomic_numbers) == sum(sizes)
    assert set(res.table.atomic_numbers.tolist()) <= {1, 6, 7, 8, 9}
    # batches group similar sizes: [3, 3], [6, 8], [9, 1]... sorted: (1, 3), (3, 6), (8, 9)
    assert res.batch_max_atoms.tolist() == [3, 6, 9] and res.batch_sizes.tolist() == [2, 2, 2]
    assert res.table.columns["batch"].tolist() == [2, 0, 1, 1, 2, 0]
    assert np.allclose(res.table.columns["sample_seconds"], res.batch_seconds[res.table.columns["batch"]] / 2)
    # the same molecule lands at its request index whatever the request order (batch_size 1: one per batch)
    fwd, rev = _sample(model, [7, 4], 3, batch_size=1), _sample(model, [4, 7], 3, batch_size=1)
    o_f, o_r = fwd.table.offsets, rev.table.offsets
    assert np.array_equal(fwd.table.positions_ang[o_f[1] : o_f[2]], rev.table.positions_ang[o_r[0] : o_r[1]])


def test_sampled_positions_have_zero_centre_of_mass(model):
    res = _sample(model, [5, 8, 2, 8], 2)
    mol = res.table.atom_molecule_index()
    pos = res.table.positions_ang.astype(np.float64)
    for k in range(len(res.table)):
        p = pos[mol == k]
        assert np.abs(p).max() > 1.0  # not trivially zero
        assert np.abs(p.mean(axis=0)).max() < 1e-5 * np.abs(p).max()


def test_matches_dense_reference_chain_float64():
    m = _model(torch.float64)
    sizes = [5, 7, 3]
    with torch.no_grad():
        mask, _, ours, bad = smp.sample_batch(m, sizes, torch.Generator().manual_seed(4))
    ref = dense_reference_sample(m, mask, torch.Generator().manual_seed(4))
    assert bad.tolist() == [-1, -1, -1]
    assert ref.x.abs().max() > 1.0
    assert (ours.x - ref.x).abs().max() < 1e-9 * ref.x.abs().max()
    assert torch.equal(ours.one_hot, ref.one_hot) and torch.equal(ours.charges, ref.charges)


def test_reverse_step_equals_model_step_and_hook_replaces_mu(model):
    mask = smp.make_node_mask([4, 6], torch.device("cpu"), torch.float32)
    graph = model.make_graph(mask)
    z = smp.draw_noise(model, mask, torch.Generator().manual_seed(1), torch.float32)
    s, t = torch.full((2, 1), 0.5), torch.full((2, 1), 0.5 + 1 / T)
    with torch.no_grad():
        ref = model.sample_p_zs_given_zt(s, t, z, mask, graph=graph, generator=torch.Generator().manual_seed(9))
        out = smp.reverse_step(model, z, s, t, mask, graph, torch.Generator().manual_seed(9))
        seen = []
        hooked = smp.reverse_step(
            model,
            z,
            s,
            t,
            mask,
            graph,
            torch.Generator().manual_seed(9),
            hook=lambda st: seen.append(st.t_int) or st.mu * 0,
            t_int=16,
        )
    assert torch.equal(out.z_s, ref)
    assert seen == [16] and torch.equal(hooked.mu, torch.zeros_like(out.mu))
    eps = smp.draw_noise(model, mask, torch.Generator().manual_seed(9), torch.float32)  # the same draw
    assert torch.allclose(hooked.z_s, hooked.sigma * eps, atol=1e-6)  # z_s = μ' + σ·ε with μ' = 0


def test_hook_sees_every_step_in_order(model):
    seen = []
    _sample(model, [3, 4], 1, hook=lambda st: seen.append((st.t_int, round(float(st.t[0, 0]) * T))))
    assert [a for a, _ in seen] == list(range(T, 0, -1)) and all(a == b for a, b in seen)


def test_nan_model_gives_nan_rows_without_crashing():
    m = _model()
    with torch.no_grad():
        m.dynamics.egnn.embedding.weight.fill_(float("nan"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = _sample(m, [3, 5, 4], 0)
    assert res.table.columns["status"].tolist() == ["nan"] * 3
    assert all("non-finite" in r for r in res.table.columns["reason"])
    assert res.summary()["status_counts"] == {"nan": 3}


def test_nan_in_one_molecule_only_marks_that_row(model):
    def poison(st):
        mu = st.mu.clone()
        if st.t_int <= 10:
            mu[1, 0, 0] = float("nan")
        return mu

    clean = _sample(model, [4, 4, 4], 0, batch_size=3)
    res = _sample(model, [4, 4, 4], 0, hook=poison, batch_size=3)
    status = res.table.columns["status"].tolist()
    assert status[1] == "nan" and "step t=10" in res.table.columns["reason"][1]
    assert "nan" not in (status[0], status[2])
    assert np.isnan(res.table.positions_ang[4:8]).all()
    # the other molecules of the batch are untouched (EDM's batch-wide NaN reset never fires)
    keep = np.r_[0:4, 8:12]
    assert np.allclose(res.table.positions_ang[keep], clean.table.positions_ang[keep], rtol=1e-5, atol=1e-4)


def test_exploded_and_bad_charge_statuses(model):
    res = smp.sample_molecules(model, [4, 4], batch_size=2, seed=0, max_abs_position_ang=1e-3)
    assert res.table.columns["status"].tolist() == ["exploded", "exploded"]
    assert "max_abs_position_ang" in res.table.columns["reason"][0]
    # bad_charge: a decoded carbon whose charge column says 7
    mask = torch.ones(1, 2, 1)
    one_hot = torch.tensor([[[0, 1, 0, 0, 0], [1, 0, 0, 0, 0]]], dtype=torch.float32)
    out = smp.Decoded(torch.tensor([[[0.5, 0, 0], [-0.5, 0, 0]]]), one_hot, torch.tensor([[[7.0], [1.0]]]))
    batch = smp.BatchSample(mask, torch.zeros(1, 2, 9), out, torch.tensor([-1]))
    z, pos, status, reason = smp.check_batch(model, batch, 100.0)
    assert status == ["bad_charge"] and z[0].tolist() == [6, 1] and "charge 7" in reason[0]
    ok = batch._replace(decoded=out._replace(charges=torch.tensor([[[6.0], [1.0]]])))
    assert smp.check_batch(model, ok, 100.0)[2] == ["ok"]
