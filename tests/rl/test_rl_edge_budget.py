"""FED-GRPO under an edge budget (finetune.max_batch_edges): rollout network passes in row chunks, the update's
accumulation chunks cut by edges. A budget that never binds changes nothing (bit for bit); a binding one only
regroups rows in the network, so everything agrees to float round-off (float64 tiny model here)."""

from __future__ import annotations

import copy
from dataclasses import fields
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from elign.data.batching import edge_count
from elign.rl.advantages import Advantages
from elign.rl.rollout import make_prompts, rollout
from elign.rl.update import _accumulate, update_policy
from elign.training.optim import make_optimizer

SIZES, K, PREFIX = [4, 7, 5], 3, 12  # 9 rows; 4, 7 and 5 atoms: 12, 42 and 20 edges per molecule


def _roll(model, max_edges):
    with torch.no_grad():
        return rollout(model, make_prompts(SIZES), K, PREFIX, torch.Generator().manual_seed(3), max_edges=max_edges)


def _rows_per_pass(model, run):
    """(result of run(), rows of every network pass it made)."""
    seen = []
    hook = model.dynamics.register_forward_pre_hook(
        lambda mod, args, kwargs: seen.append(args[1].shape[0]), with_kwargs=True
    )
    try:
        return run(), seen
    finally:
        hook.remove()


def _tensors(ro):
    return {f.name: getattr(ro, f.name) for f in fields(ro) if isinstance(getattr(ro, f.name), torch.Tensor)}


def test_a_budget_that_never_binds_gives_bit_identical_rollouts(tiny64):
    free, passes_free = _rows_per_pass(tiny64, lambda: _roll(tiny64, None))
    big = int(edge_count(np.repeat(SIZES, K)).sum())  # the whole branch batch fits
    capped, passes_capped = _rows_per_pass(tiny64, lambda: _roll(tiny64, big))
    assert passes_capped == passes_free and max(passes_free) == len(SIZES) * K
    for name, value in _tensors(free).items():
        assert torch.equal(value, getattr(capped, name)) or (value.isnan() == getattr(capped, name).isnan()).all(), name


def test_a_binding_budget_regroups_rows_and_agrees_to_round_off(tiny64):
    free = _roll(tiny64, None)
    capped, passes = _rows_per_pass(tiny64, lambda: _roll(tiny64, 45))  # < 2 molecules of 7 atoms (84 edges)
    assert max(passes) < len(SIZES) * K and max(passes) >= 2  # chunked, not one molecule per pass either
    for name, value in _tensors(free).items():
        other = getattr(capped, name)
        if value.is_floating_point():
            assert torch.allclose(value, other, rtol=1e-9, atol=1e-9, equal_nan=True), name
        else:
            assert torch.equal(value, other), name


def _update_inputs(ro):
    b, s = ro.logp_old.shape
    rows, steps = np.meshgrid(np.arange(b), np.arange(s), indexing="ij")
    adv = np.linspace(-1, 1, b * s).reshape(b, s)
    return rows.ravel(), steps.ravel(), adv


def _fc(max_batch_edges):
    return SimpleNamespace(
        minibatch_steps=8,
        clip_range=0.2,
        kl_weight=0.04,
        policy_features=True,
        feature_kl_weight=1.0,
        max_batch_edges=max_batch_edges,
        micro_batch_rollouts=None,
        update_epochs=1,
        grad_clip=1.0,
    )


def _grads(tiny64, ro, max_batch_edges):
    policy = copy.deepcopy(tiny64).train()
    rows, steps, adv = _update_inputs(ro)
    sel = np.arange(len(rows))
    t = lambda a: torch.as_tensor(a)  # noqa: E731
    (total, stats), passes = _rows_per_pass(
        policy,
        lambda: _accumulate(policy, tiny64, ro, t(rows), t(steps), t(adv[rows, steps]), sel, _fc(max_batch_edges)),
    )
    return total, stats, [p.grad.clone() for p in policy.parameters()], passes


def test_update_chunks_under_the_budget_same_loss_and_gradient(tiny64):
    ro = _roll(tiny64, None)
    total, stats, grads, passes = _grads(tiny64, ro, None)
    assert max(passes) == 8  # minibatch_steps pairs per pass
    t_big, s_big, g_big, p_big = _grads(tiny64, ro, 8 * 42)  # 8 pairs of the largest molecule fit
    assert p_big == passes and t_big == total and all(torch.equal(a, b) for a, b in zip(grads, g_big))
    assert s_big.summary() == stats.summary()
    t_small, s_small, g_small, p_small = _grads(tiny64, ro, 50)  # one 7-atom pair (42 edges) per pass at most
    assert len(p_small) > len(passes) and max(p_small) < 8
    assert t_small == pytest.approx(total, rel=1e-12, abs=1e-14)
    assert all(torch.allclose(a, b, rtol=1e-10, atol=1e-13) for a, b in zip(grads, g_small))
    assert s_small.summary() == pytest.approx(stats.summary(), rel=1e-10, abs=1e-14)


def test_update_policy_weights_bit_identical_when_the_budget_never_binds(tiny64):
    ro = _roll(tiny64, None)
    rows, steps, adv = _update_inputs(ro)
    b, s = ro.logp_old.shape
    a = Advantages(adv, {"force": np.zeros(b), "energy": adv}, np.ones((b, s), dtype=bool))
    trained = np.tile(np.arange(s), (b, 1))
    weights = []
    for cap in (None, 10**9):
        policy = copy.deepcopy(tiny64).train()
        opt = make_optimizer(policy, 1e-3, 0.0)
        update_policy(policy, tiny64, opt, ro, trained, a, _fc(cap))
        weights.append([p.detach().clone() for p in policy.parameters()])
    assert all(torch.equal(x, y) for x, y in zip(*weights))
    assert not all(torch.equal(x, y) for x, y in zip(weights[0], tiny64.parameters()))  # the update moved them
