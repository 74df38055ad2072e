"""FED-GRPO objective: PPO clipping gradients, closed-form KL, ratio 1 before the first update."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from elign.rl.objective import kl_to_reference, ppo_kl_loss
from elign.rl.rollout import make_prompts, rollout
from elign.rl.update import chunk_loss
from elign.training.optim import make_optimizer

EPS = 0.2


def _loss_grad(log_ratio, adv, kl_weight=0.0):
    logp = torch.tensor(log_ratio, dtype=torch.float64, requires_grad=True)
    m = len(log_ratio)
    mask = torch.ones((m, 2, 1), dtype=torch.float64)
    mu = torch.zeros((m, 2, 9), dtype=torch.float64)
    loss, stats = ppo_kl_loss(
        logp,
        torch.zeros(m, dtype=torch.float64),
        torch.tensor(adv, dtype=torch.float64),
        mu,
        mu,
        torch.ones(m, 1, 1, dtype=torch.float64),
        mask,
        clip_range=EPS,
        kl_weight=kl_weight,
    )
    loss.backward()
    return loss, logp.grad, stats


def test_clipping_stops_the_gradient_on_the_clipped_side():
    up, down, inside = np.log(1.5), np.log(0.5), np.log(1.1)
    cases = [  # (log ratio, advantage, gradient is zero?)
        (up, 1.0, True),
        (down, -1.0, True),  # clipped branch is the minimum: no gradient
        (up, -1.0, False),
        (down, 1.0, False),  # the pessimistic unclipped branch keeps its gradient
        (inside, 1.0, False),
        (inside, -2.0, False),
    ]
    loss, grad, stats = _loss_grad([c[0] for c in cases], [c[1] for c in cases])
    m = len(cases)
    for i, (lr, a, zero) in enumerate(cases):
        expected = 0.0 if zero else -a * np.exp(lr) / m  # d(−ρA)/d log p = −ρA, mean over m pairs
        assert grad[i].item() == pytest.approx(expected, abs=1e-15), cases[i]
    assert stats.clipped == 4 and stats.n == m
    ratio = np.exp([c[0] for c in cases])
    adv = np.array([c[1] for c in cases])
    surrogate = -np.minimum(ratio * adv, np.clip(ratio, 1 - EPS, 1 + EPS) * adv)
    assert loss.item() == pytest.approx(surrogate.mean())
    s = stats.summary()
    assert s["approx_kl_old"] == pytest.approx(np.mean((ratio - 1) - np.log(ratio)))
    assert s["ratio_max"] == pytest.approx(1.5) and s["clip_fraction"] == pytest.approx(4 / 6)


def test_kl_closed_form_on_the_zero_com_space():
    mask = torch.tensor([[[1.0], [1.0], [1.0], [0.0]]], dtype=torch.float64)
    mu = torch.zeros((1, 4, 9), dtype=torch.float64)
    shifted = mu.clone()
    shifted[0, :3, :3] += torch.tensor([0.3, -0.1, 2.0], dtype=torch.float64)  # a pure translation: not a move
    assert kl_to_reference(shifted, mu, 0.5, mask).item() == pytest.approx(0.0, abs=1e-14)
    shifted[0, :3, 4] += 0.1  # one feature of the 3 real atoms
    shifted[0, 3, 5] += 7.0  # padding: ignored
    assert kl_to_reference(shifted, mu, 0.5, mask).item() == pytest.approx(3 * 0.01 / (2 * 0.25))
    bent = mu.clone()
    bent[0, 0, 0] = 1.0  # one atom moved: the zero-CoM part is (2/3, -1/3, -1/3) along x
    assert kl_to_reference(bent, mu, 1.0, mask).item() == pytest.approx((4 / 9 + 2 / 9) / 2)


@pytest.fixture(scope="module")
def rollouts(tiny64):
    with torch.no_grad():
        return rollout(tiny64, make_prompts([4, 7]), 3, 10, torch.Generator().manual_seed(11))


def _all_pairs(ro):
    b, s = ro.logp_old.shape
    rows, steps = np.meshgrid(np.arange(b), np.arange(s), indexing="ij")
    return torch.as_tensor(rows.ravel()), torch.as_tensor(steps.ravel())


def test_ratio_is_one_and_kl_zero_before_the_first_update_then_kl_grows(tiny64, rollouts):
    policy = copy.deepcopy(tiny64)
    rows, steps = _all_pairs(rollouts)
    adv = torch.linspace(-1, 1, len(rows), dtype=torch.float64)
    for chunk in (slice(0, 25), slice(25, None)):  # chunks of another size and padding than the rollout
        loss, stats = chunk_loss(
            policy, tiny64, rollouts, rows[chunk], steps[chunk], adv[chunk], len(rows), clip_range=2e-3, kl_weight=0.04
        )
        assert abs(stats.ratio_min - 1) < 1e-9 and abs(stats.ratio_max - 1) < 1e-9  # recomputed = recorded
        assert stats.kl_ref_sum == 0.0 and stats.clipped == 0
        loss.backward()
    optimizer = make_optimizer(policy, 1e-3, 0.0)
    optimizer.step()
    with torch.no_grad():
        _, after = chunk_loss(policy, tiny64, rollouts, rows, steps, adv, len(rows), clip_range=2e-3, kl_weight=0.04)
    assert after.kl_ref_sum > 0 and after.summary()["kl_ref"] > 0
    assert after.ratio_max > 1 + 1e-6 or after.ratio_min < 1 - 1e-6
    assert after.approx_kl_sum > 0


def test_feature_kl_weight_scales_only_the_atom_type_part():
    mask = torch.ones((1, 3, 1), dtype=torch.float64)
    mu = torch.zeros((1, 3, 9), dtype=torch.float64)
    moved = mu.clone()
    moved[0, 0, 0] = 1.0  # positions: KL_x = (4/9 + 2/9) / 2 = 1/3 at sigma 1
    moved[0, :, 5] = 0.2  # features: KL_h = 3 * 0.04 / 2 = 0.06
    kl_x, kl_h = 1 / 3, 0.06
    for w in (0.0, 1.0, 25.0):
        got = kl_to_reference(moved, mu, 1.0, mask, feature_weight=w).item()
        assert got == pytest.approx(kl_x + w * kl_h, rel=1e-12), w


def test_positions_only_policy_ignores_the_atom_type_channel(tiny64, rollouts):
    """policy_features=False: the ratio is 1 before an update, and the surrogate does not see the atom-type
    and charge part of z_s (the full policy does)."""
    policy = copy.deepcopy(tiny64)
    rows, steps = _all_pairs(rollouts)
    adv = torch.linspace(-1, 1, len(rows), dtype=torch.float64)
    kw = dict(clip_range=2e-3, kl_weight=0.0)
    _, start = chunk_loss(policy, tiny64, rollouts, rows, steps, adv, len(rows), policy_features=False, **kw)
    assert abs(start.ratio_min - 1) < 1e-9 and abs(start.ratio_max - 1) < 1e-9
    optimizer = make_optimizer(policy, 1e-6, 0.0)  # small: keeps ratios off the clamp
    chunk_loss(policy, tiny64, rollouts, rows, steps, adv, len(rows), **kw)[0].backward()
    optimizer.step()
    # the last state z[:, S] is z_s of the last branched step and the input of none: change its features
    last = steps == rollouts.logp_old.shape[1] - 1
    rows, steps, adv = rows[last], steps[last], adv[last]
    n, ro = len(rows), rollouts
    bent = copy.copy(rollouts)
    bent.z = rollouts.z.clone()
    f = tiny64.n_dims
    bent.z[:, -1, :, f:] += 1e-5 * torch.randn_like(bent.z[:, -1, :, f:]) * rollouts.node_mask
    with torch.no_grad():
        pos = [chunk_loss(policy, tiny64, r, rows, steps, adv, n, policy_features=False, **kw)[1] for r in (ro, bent)]
        full = [chunk_loss(policy, tiny64, r, rows, steps, adv, n, **kw)[1] for r in (ro, bent)]
    assert pos[0].ratio_max > 1 + 1e-9 or pos[0].ratio_min < 1 - 1e-9  # the update moved the position means
    assert pos[0].ratio_sum == pytest.approx(pos[1].ratio_sum, rel=1e-12)
    assert pos[0].surrogate_sum == pytest.approx(pos[1].surrogate_sum, rel=1e-12)
    assert abs(full[0].ratio_sum - full[1].ratio_sum) > 1e-6  # the full policy's ratio sees them
