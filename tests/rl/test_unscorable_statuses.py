"""Unscorable atoms are statuses everywhere: reward, guidance and evaluation, on real GEOM drug conformers.

ANI-2x covers H C N O F S Cl only; bromazepam (Br) and amiodarone (I) of the GEOM fixture cannot be scored. Each
stage must give such a molecule a status row (``unknown_element``), never a number, and a FED-GRPO group with
such a member follows the one rule of :mod:`elign.rl.advantages`: the member is left out of the group's statistics.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rl_toys import fake_rollouts, molecule_batch

from elign.data.errors import ErrorPolicy
from elign.data.geom import read_geom_drugs
from elign.diffusion.guidance import MLFFGuidance
from elign.metrics.evaluate import evaluate_table
from elign.rl.advantages import compute_advantages
from elign.rl.rewards import compute_rewards

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures/geom/drugs_crude_fixture.msgpack"


@pytest.fixture(scope="module")
def geom():
    table, _ = read_geom_drugs(FIXTURE, 30, ErrorPolicy())
    return table


@pytest.fixture(scope="module")
def ani2x(shared_dir):
    from elign.mlff import get_backend

    return get_backend("ani2x", dtype="float64")


def _rows(table, smiles_part: str) -> list[int]:
    return [i for i, s in enumerate(table.smiles) if smiles_part in s]


def _mol(table, i):
    rec = table.molecule(i)
    return list(rec.atomic_numbers), np.asarray(rec.positions_ang, dtype=np.float64)


def test_reward_status_rows_and_the_group_rule(geom, ani2x):
    caffeine, aspirin, paracetamol = _rows(geom, "Cn1cnc2"), _rows(geom, "CC(=O)Oc1"), _rows(geom, "CC(=O)Nc1")
    members = [caffeine[0], aspirin[0], _rows(geom, "Br")[0], paracetamol[0]]
    zs, xs = molecule_batch(*[_mol(geom, i) for i in members])
    rw = compute_rewards(fake_rollouts(zs, xs, [0, 0, 0, 0]), np.zeros((4, 1), int), ani2x, energy_every=1)
    assert rw.status.tolist() == ["ok", "ok", "unknown_element", "ok"]
    assert "Z=[35]" in rw.reason[2] and rw.reason[0] == ""
    assert np.isnan(rw.force_reward[2]) and np.isnan(rw.formation_final[2]) and np.isnan(rw.energy_return[2]).all()
    assert rw.counts["unknown_element"] == 1
    # MMFF minima of three drugs are not ANI-2x minima: their force RMS differs, so the group has a signal
    scored = rw.force_reward[[0, 1, 3]]
    assert np.isfinite(scored).all() and scored.std() > 1e-3
    adv = compute_advantages(
        rw.force_reward, rw.energy_return, np.zeros(4, int), weight_force=1.0, weight_energy=0.02, clip=5.0
    )
    expected = (scored - scored.mean()) / scored.std(ddof=1)  # the group = its scorable members alone
    assert np.allclose(adv.force[[0, 1, 3]], expected)
    assert adv.force[2] == 0 and not adv.in_loss[2].any() and adv.in_loss[[0, 1, 3]].all()
    # a group whose only other member is unscorable gives no signal (fewer than 2 scorable members)
    lone = compute_advantages(
        rw.force_reward[[0, 2]], rw.energy_return[[0, 2]], np.zeros(2, int), weight_force=1.0, weight_energy=0.0, clip=5
    )
    assert lone.counts["degenerate_force_groups"] == 1 and (lone.force == 0).all()


def test_evaluation_status_rows(geom, ani2x):
    iodine = _rows(geom, "I")[0]
    table = geom.take(np.array([_rows(geom, "Cn1cnc2")[0], iodine]))
    frame = evaluate_table(table, ani2x, None, bond_rules="geom")
    assert frame["mlff_status"].tolist() == ["ok", "unknown_element"]
    assert np.isnan(frame["energy_ev"].iloc[1]) and np.isnan(frame["force_rms_ev_per_ang"].iloc[1])
    assert np.isfinite(frame["energy_ev"].iloc[0])
    assert frame["valid"].tolist() == [True, True]  # the chemistry metrics still hold for the unscorable one


def test_guidance_status_rows(geom, ani2x):
    hook = MLFFGuidance(ani2x, scale=1.0)
    caffeine, bromazepam = _rows(geom, "Cn1cnc2")[0], _rows(geom, "Br")[0]
    zs, xs = molecule_batch(_mol(geom, caffeine), _mol(geom, bromazepam))
    hook.begin_batch([2, 0])  # batch rows -> requested molecules 2 and 0 (the sampler sorts by size)
    for _ in range(3):  # three guided steps, each scored by the real MLFF
        result = ani2x.evaluate(zs, xs)
        hook._record(result.status, result.reason)
    cols = hook.molecule_columns(3)
    assert cols["guidance_status"].tolist() == ["unknown_element", "not_guided", "ok"]
    assert cols["guidance_unscored_steps"].tolist() == [3, 0, 0] and cols["guidance_steps"].tolist() == [3, 0, 3]
    assert "3 of 3 guided steps" in cols["guidance_reason"][0] and "Z=[35]" in cols["guidance_reason"][0]
