"""FED-GRPO rewards: force reward sign and units, PBRS energy returns, exclusions, gates."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rl_toys import CH5, METHANE, HarmonicBackend, fake_rollouts, molecule_batch

from elign.metrics.chemistry import training_keys
from elign.rl.advantages import compute_advantages
from elign.rl.rewards import Penalties, compute_rewards, energy_slots, force_reward, returns_to_go
from elign.rl.rollout import make_prompts, rollout


def test_pbrs_returns_on_a_toy_potential():
    # every step evaluated: Ψ along the chain (sampling order) and Ψ_0 at the end
    psi = np.array([[-3.0, -2.0, -1.5, -0.5]])
    psi_0 = np.array([0.25])
    shaped = np.diff(np.concatenate([psi[0], psi_0]))  # r_t = Ψ_{t-1} − Ψ_t = [1, .5, 1, .75]
    assert shaped.tolist() == [1.0, 0.5, 1.0, 0.75]
    expected = np.cumsum(shaped[::-1])[::-1]  # return-to-go: sum of shaped rewards from t to the end
    assert expected.tolist() == [3.25, 2.25, 1.75, 0.75]
    assert np.allclose(returns_to_go(psi, psi_0, 1), [expected])
    # every 2nd trained step evaluated: the others hold the G of the evaluated step before them
    sparse = np.array([[-3.0, 99.0, -1.5, 99.0, -0.5]])  # slots 1 and 3 are not evaluated (ignored)
    assert returns_to_go(sparse, psi_0, 2).tolist() == [[3.25, 3.25, 1.75, 1.75, 0.75]]
    assert energy_slots(5, 2)[0].tolist() == [0, 2, 4] and energy_slots(5, 2)[1].tolist() == [0, 0, 2, 2, 4]
    assert np.isnan(returns_to_go(np.array([[np.nan, 1.0]]), psi_0, 1)[0, 0])


def test_force_reward_sign_and_units_with_ani(shared_dir):
    from elign.mlff import get_backend

    ani = get_backend("ani2x", dtype="float64")
    z, x = METHANE
    stretched = x.copy()
    stretched[1] *= 1.3  # one C-H bond 30 % longer
    zs, xs = molecule_batch((z, x), (z, stretched))
    result = ani.evaluate(zs, xs)
    reward = force_reward(result.forces_ev_per_ang, result.num_atoms)
    f = result.forces_ev_per_ang
    assert np.allclose(reward, -np.sqrt((f**2).sum(-1).sum(-1) / 5))  # −RMS over atoms of |F_i|, eV/Å
    assert reward[1] < reward[0] < 0  # larger forces -> lower reward
    assert 1.0 < -reward[1] < 20.0 and -reward[0] < 0.5  # eV/Å scale (Hartree/bohr would be ~50x smaller)


def test_force_reward_and_energy_returns_by_hand(tiny64):
    k = 0.5
    with torch.no_grad():
        ro = rollout(tiny64, make_prompts([3, 5]), 2, 14, torch.Generator().manual_seed(2))
    trained = np.tile(np.array([0, 2, 3, 5]), (4, 1))
    rw = compute_rewards(ro, trained, HarmonicBackend(k), energy_every=2)
    x, mask = ro.final_x_ang.numpy(), ro.node_mask[..., 0].numpy()
    n = mask.sum(1)
    rms = np.sqrt(k**2 * (x**2).sum(-1).sum(-1) / n)  # |F_i| = k |x_i|
    assert np.allclose(rw.force_rms, rms) and np.allclose(rw.force_reward, -rms)
    e_form = lambda pos: 0.5 * k * (pos**2).sum(-1).sum(-1) / n  # eV/atom; reference energies are 0
    assert np.allclose(rw.formation_final, e_form(x))
    x0 = ro.x0_ang.numpy()
    g_step0, g_step3 = e_form(x0[:, 0]) - e_form(x), e_form(x0[:, 3]) - e_form(x)  # G_t = Ψ_0 − Ψ_t
    assert np.allclose(rw.energy_return, np.stack([g_step0, g_step0, g_step3, g_step3], 1))
    assert rw.counts["energy_evaluations"] == 8 and rw.counts["mlff_failures"] == 0


def test_unscorable_molecules_are_excluded_not_zeroed():
    z, x = METHANE
    rng = np.random.default_rng(0)
    mols = [(z, x + rng.normal(0, 0.3, x.shape)) for _ in range(4)]
    mols[2] = ([9, 1, 1, 1, 1], mols[2][1])  # fluorine: unknown to this backend
    zs, xs = molecule_batch(*mols)
    rw = compute_rewards(
        fake_rollouts(zs, xs, [0, 0, 0, 0]), np.zeros((4, 1), int), HarmonicBackend(unknown=(9,)), energy_every=1
    )
    assert np.isnan(rw.force_reward[2]) and np.isnan(rw.energy_return[2]).all() and np.isnan(rw.force_rms[2])
    assert np.isfinite(np.delete(rw.force_reward, 2)).all()
    assert rw.counts["mlff_failures"] == 1 and rw.counts["force_excluded"] == 1
    adv = compute_advantages(
        rw.force_reward, rw.energy_return, np.zeros(4, int), weight_force=1.0, weight_energy=0.0, clip=5.0
    )
    scored = np.delete(rw.force_reward, 2)
    expected = (scored - scored.mean()) / scored.std(ddof=1)  # statistics over the 3 scorable members only
    assert np.allclose(np.delete(adv.force, 2), expected)
    assert adv.force[2] == 0 and not adv.in_loss[2].any() and adv.in_loss[[0, 1, 3]].all()
    zeroed = np.where(np.isnan(rw.force_reward), 0.0, rw.force_reward)  # what "zeroing" would have given
    wrong = compute_advantages(
        zeroed, rw.energy_return, np.zeros(4, int), weight_force=1.0, weight_energy=0.0, clip=5.0
    )
    assert not np.allclose(np.delete(wrong.force, 2), expected)


def test_stability_gate_and_invalid_penalty():
    hh = ([1, 1], np.array([[0.0, 0, 0], [3.0, 0, 0]]))  # unstable, RDKit-valid
    zs, xs = molecule_batch(METHANE, CH5, hh)  # methane: stable, valid; CH5: unstable, invalid
    ro = fake_rollouts(zs, xs, [0, 0, 0])
    backend = HarmonicBackend()
    plain = compute_rewards(ro, np.zeros((3, 1), int), backend, energy_every=1)
    gated = compute_rewards(ro, np.zeros((3, 1), int), backend, energy_every=1, penalties=Penalties(stable_only=True))
    assert gated.force_reward[0] == plain.force_reward[0] and np.isnan(gated.force_reward[1:]).all()
    assert gated.counts["unstable_excluded"] == 2 and gated.counts["force_excluded"] == 2
    assert np.array_equal(gated.energy_return, plain.energy_return)  # the energy channel is not gated
    pen = compute_rewards(ro, np.zeros((3, 1), int), backend, energy_every=1, penalties=Penalties(invalid_penalty=2.0))
    assert pen.force_reward[1] == pytest.approx(plain.force_reward[1] - 2.0)
    assert pen.force_reward[[0, 2]].tolist() == plain.force_reward[[0, 2]].tolist()
    assert pen.counts["invalid_penalized"] == 1 and plain.counts["invalid_penalized"] == 0
    # the instability penalty lowers the force reward of both unstable molecules (CH5 and the far H pair) by q,
    # leaves methane's, and does not touch the energy channel
    unstable = compute_rewards(
        ro, np.zeros((3, 1), int), backend, energy_every=1, penalties=Penalties(unstable_penalty=1.5)
    )
    assert unstable.force_reward[1:] == pytest.approx(plain.force_reward[1:] - 1.5)
    assert unstable.force_reward[0] == plain.force_reward[0] and unstable.counts["unstable_penalized"] == 2
    assert np.array_equal(unstable.energy_return, plain.energy_return) and plain.counts["unstable_penalized"] == 0


def test_novelty_penalty_hits_invalid_and_seen_molecules_and_can_enter_psi_0():
    hh = ([1, 1], np.array([[0.0, 0, 0], [3.0, 0, 0]]))  # two far H atoms: RDKit-valid ([H].[H]), not methane
    zs, xs = molecule_batch(METHANE, CH5, hh)  # methane: valid, in the "training set"; CH5: invalid
    ro = fake_rollouts(zs, xs, [0, 0, 0])
    backend, steps = HarmonicBackend(), np.zeros((3, 1), int)
    keys = frozenset(training_keys(["C"]))  # the training split holds methane only
    plain = compute_rewards(ro, steps, backend, energy_every=1)
    pen = compute_rewards(
        ro, steps, backend, energy_every=1, penalties=Penalties(novelty_penalty=0.5, training_keys=keys)
    )
    # methane (seen) and CH5 (invalid) lose 0.5 of force reward; the novel H pair keeps its reward
    assert pen.force_reward[:2] == pytest.approx(plain.force_reward[:2] - 0.5)
    assert pen.force_reward[2] == plain.force_reward[2] and pen.counts["novelty_penalized"] == 2
    assert np.array_equal(pen.energy_return, plain.energy_return)  # force channel only by default
    both = Penalties(novelty_penalty=0.5, unstable_penalty=1.0, training_keys=keys, in_energy=True)
    energy = compute_rewards(ro, steps, backend, energy_every=1, penalties=both)
    # in Ψ_0: G_t = Ψ_0 − Ψ_t falls by the sum of the molecule's penalties (methane 0.5; CH5 0.5 + 1; H2 1)
    assert energy.energy_return[:, 0] == pytest.approx(plain.energy_return[:, 0] - np.array([0.5, 1.5, 1.0]))
    assert energy.force_reward == pytest.approx(plain.force_reward - np.array([0.5, 1.5, 1.0]))
