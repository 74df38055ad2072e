"""FED-GRPO advantages: per-group, per-channel, per-step z-scores; mixing, clipping, degenerate groups."""

from __future__ import annotations

import numpy as np
import pytest

from elign.rl.advantages import compute_advantages, group_zscore

GROUP = np.array([0, 0, 0, 1, 1, 1])
FORCE = np.array([-1.0, -2.0, -4.0, -10.0, -10.5, -30.0])
ENERGY = np.array([[0.1, 1.0], [0.2, -1.0], [0.6, 3.0], [5.0, 0.0], [7.0, 0.5], [6.0, 0.25]])


def _z(v):
    return (v - v.mean()) / v.std(ddof=1)


def _adv(force=FORCE, energy=ENERGY, wf=1.0, we=0.1, clip=5.0):
    return compute_advantages(force, energy, GROUP, weight_force=wf, weight_energy=we, clip=clip)


def test_zscores_are_per_group_and_per_step():
    adv = _adv()
    assert np.allclose(adv.force[:3], _z(FORCE[:3])) and np.allclose(adv.force[3:], _z(FORCE[3:]))
    for col in range(2):
        for rows in (slice(0, 3), slice(3, 6)):
            assert np.allclose(adv.energy[rows, col], _z(ENERGY[rows, col]))
    assert np.allclose(adv.advantage, 1.0 * adv.force[:, None] + 0.1 * adv.energy)
    assert adv.in_loss.all() and adv.counts["degenerate_force_groups"] == 0


def test_groups_and_channels_do_not_leak():
    base = _adv()
    other_group = _adv(force=np.concatenate([FORCE[:3], [-0.1, -90.0, -0.2]]))
    assert np.array_equal(other_group.force[:3], base.force[:3])  # group 0 ignores group 1's rewards
    assert not np.allclose(other_group.force[3:], base.force[3:])
    other_energy = ENERGY.copy()
    other_energy[:, 1] = [9.0, -4.0, 0.0, 1.0, 2.0, 30.0]
    swapped = _adv(energy=other_energy)
    assert np.array_equal(swapped.force, base.force)  # the force channel ignores the energies
    assert np.array_equal(swapped.energy[:, 0], base.energy[:, 0])  # a step ignores the other steps
    scaled = _adv(force=FORCE * 1000.0)
    assert np.allclose(scaled.force, base.force) and np.array_equal(scaled.energy, base.energy)


def test_mixing_weights_and_clip():
    adv = _adv(wf=3.0, we=0.0, clip=1.0)
    assert np.allclose(adv.advantage, np.clip(3.0 * adv.force[:, None], -1, 1))
    assert adv.advantage.max() == 1.0 and adv.advantage.min() == -1.0


def test_degenerate_groups_get_zero_and_are_counted():
    force = np.array([-1.0, -1.0, -1.0, -2.0, np.nan, np.nan])  # group 0: std 0; group 1: one scorable
    energy = np.array([[0.1, 0.1], [0.2, 0.1], [0.3, 0.1], [1.0, 2.0], [np.nan, 3.0], [3.0, np.nan]])
    adv = _adv(force=force, energy=energy)
    assert (adv.force == 0).all() and adv.counts["degenerate_force_groups"] == 2
    assert np.allclose(adv.energy[:3, 0], _z(energy[:3, 0])) and (adv.energy[:3, 1] == 0).all()
    assert np.allclose(adv.energy[[3, 5], 0], _z(np.array([1.0, 3.0])))
    assert np.allclose(adv.energy[[3, 4], 1], _z(np.array([2.0, 3.0]))) and adv.energy[5, 1] == 0
    assert adv.counts["degenerate_energy_group_steps"] == 1  # group 0 step 1 (all equal)
    assert adv.in_loss[4].tolist() == [False, True] and adv.in_loss[5].tolist() == [True, False]


def test_group_zscore_shapes():
    z, signal, degenerate = group_zscore(np.array([1.0, 2.0, 3.0]), np.array([0, 0, 0]))
    assert z.shape == (3,) and signal.all() and degenerate == 0
    assert z.tolist() == pytest.approx([-1.0, 0.0, 1.0])


def test_population_std_is_the_official_formula():
    adv = compute_advantages(FORCE, ENERGY, GROUP, weight_force=1.0, weight_energy=0.1, clip=5.0, std_mode="population")
    for rows in (slice(0, 3), slice(3, 6)):
        v = FORCE[rows]
        assert np.allclose(adv.force[rows], (v - v.mean()) / (v.std(ddof=0) + 1e-8), rtol=0, atol=1e-12)
        e = ENERGY[rows, 1]
        assert np.allclose(adv.energy[rows, 1], (e - e.mean()) / (e.std(ddof=0) + 1e-8), rtol=0, atol=1e-12)
    sample = _adv()
    # ddof 0 vs 1 on groups of 3: the population z-scores are sqrt(3/2) larger
    assert np.allclose(adv.force, sample.force * np.sqrt(1.5), atol=1e-6)
    with pytest.raises(ValueError, match="std_mode"):
        group_zscore(FORCE, GROUP, std_mode="unbiased")
