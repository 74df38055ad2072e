"""FED-GRPO rollouts: group structure (shared prefix, then branches), recorded quantities, step identity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from elign.diffusion.sampler import draw_noise, make_node_mask, reverse_step
from elign.rl.rollout import choose_trained_steps, make_prompts, rollout, step_times

SIZES, K, PREFIX = [4, 6], 3, 8


@pytest.fixture(scope="module")
def groups(tiny64):
    with torch.no_grad():
        return rollout(tiny64, make_prompts(SIZES), K, PREFIX, torch.Generator().manual_seed(7))


def test_group_members_identical_up_to_branch_then_differ(groups, tiny64):
    ro = groups
    assert ro.group.tolist() == [0, 0, 0, 1, 1, 1] and ro.sizes.tolist() == [4] * 3 + [6] * 3
    assert ro.t_int.tolist() == list(range(tiny64.T - PREFIX, 0, -1)) and ro.num_steps == tiny64.T - PREFIX
    for g in range(2):
        rows = ro.group == g
        branch = ro.branch_z[rows]
        assert all(torch.equal(branch[0], b) for b in branch[1:]), "members differ before the branch"
        for k in (1, ro.num_steps):  # right after the first branched step, and at the end of the chain
            after = ro.z[rows, k]
            for i in range(K):
                for j in range(i + 1, K):
                    assert not torch.allclose(after[i], after[j]), f"members {i}, {j} equal at branched step {k}"
        assert not torch.allclose(ro.final_x_ang[rows][0], ro.final_x_ang[rows][1])
    n = min(SIZES)
    assert not torch.allclose(ro.branch_z[0, :n], ro.branch_z[K, :n])  # groups differ from each other


def test_zero_prefix_shares_the_initial_noise(tiny64):
    with torch.no_grad():
        ro = rollout(tiny64, make_prompts([5]), 2, 0, torch.Generator().manual_seed(1))
    assert ro.num_steps == tiny64.T and torch.equal(ro.branch_z[0], ro.branch_z[1])
    assert not torch.allclose(ro.z[0, 1], ro.z[1, 1])
    with pytest.raises(ValueError, match="shared_prefix_steps"):
        rollout(tiny64, make_prompts([5]), 2, tiny64.T, None)


def test_recorded_step_quantities(groups, tiny64):
    ro = groups
    k = 3
    z_t, z_s, mu = ro.z[:, k], ro.z[:, k + 1], ro.mu_old[:, k]
    # log p_old is the reverse-step density of the recorded z_s under the recorded mean and sigma
    assert torch.allclose(
        ro.logp_old[:, k], tiny64.reverse_step_log_prob(z_s, mu, ro.sigma[k], ro.node_mask), rtol=0, atol=1e-9
    )
    # mu_old and x0 prediction are what the model gives at (z_t, t)
    s, t = step_times(tiny64, ro.t_int[k], ro.num_rollouts, z_t.dtype, z_t.device)
    with torch.no_grad():
        eps = tiny64.phi(z_t, t, ro.node_mask, graph=tiny64.make_graph(ro.node_mask))
        mu_ref, sigma = tiny64.posterior_from_eps(z_t, eps, s, t)
        x0 = tiny64.compute_x_pred(eps, z_t, tiny64.gamma(t))
    assert torch.allclose(mu, mu_ref, atol=1e-12) and torch.allclose(sigma.reshape(-1), ro.sigma[k].expand(6))
    assert torch.allclose(ro.x0_ang[:, k], x0[..., :3] * ro.node_mask, atol=1e-12)
    real = ro.node_mask[..., 0] > 0
    assert torch.equal(ro.x0_types[:, k], torch.where(real, x0[..., 3:8].argmax(-1), -1))
    assert set(ro.final_numbers[real].tolist()) <= {1, 6, 7, 8, 9} and (ro.final_numbers[~real] == 0).all()
    assert ro.finite.all() and torch.isfinite(ro.final_x_ang).all()
    assert ro.type_numbers.tolist() == [1, 6, 7, 8, 9]


def test_rollout_step_is_the_samplers_reverse_step(tiny64):
    mask = make_node_mask([3, 5], torch.device("cpu"), torch.float64)
    graph = tiny64.make_graph(mask)
    z = draw_noise(tiny64, mask, torch.Generator().manual_seed(0), torch.float64)
    s, t = step_times(tiny64, 9, 2, torch.float64, z.device)
    assert torch.equal(t, torch.full((2, 1), 9 / tiny64.T, dtype=torch.float64))
    with torch.no_grad():
        ours = reverse_step(tiny64, z, s, t, mask, graph, torch.Generator().manual_seed(3), context=None)
        theirs = reverse_step(tiny64, z, s, t, mask, graph, torch.Generator().manual_seed(3))
        eps = tiny64.phi(z, t, mask, graph=graph)
    assert torch.equal(ours.z_s, theirs.z_s) and torch.equal(ours.mu, theirs.mu)
    assert torch.equal(ours.eps, eps)  # the ε̂ the rollout decodes ẑ_{0|t} from


def test_trained_steps_are_shared_within_groups():
    rng = np.random.default_rng(0)
    steps = choose_trained_steps(300, 4, 32, rng)
    assert steps.shape == (4, 32) and (np.diff(steps, axis=1) > 0).all() and steps.max() < 300
    assert not np.array_equal(steps[0], steps[1])
    per_rollout = steps[np.repeat(np.arange(4), 8)]
    assert np.array_equal(per_rollout[0], per_rollout[7]) and not np.array_equal(per_rollout[7], per_rollout[8])
    assert np.array_equal(choose_trained_steps(10, 2, None, rng), np.tile(np.arange(10), (2, 1)))
    assert choose_trained_steps(10, 1, 50, rng).shape == (1, 10)
