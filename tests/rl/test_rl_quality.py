"""Rollout chemistry and diversity (elign.rl.quality) on molecules with a known answer."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from elign.io.molecules import read_molecules
from elign.rl.quality import evaluation_due, rollout_quality, rollout_table


def _fake_rollouts(records, finite):
    """What rollout() returns about its final molecules: (B, N) atomic numbers (0 = padding), (B, N, 3) Å."""
    n = max(len(r.atomic_numbers) for r in records)
    numbers = np.zeros((len(records), n), np.int64)
    positions = np.zeros((len(records), n, 3))
    for i, r in enumerate(records):
        numbers[i, : len(r.atomic_numbers)] = r.atomic_numbers
        positions[i, : len(r.atomic_numbers)] = r.positions_ang
    positions[~np.asarray(finite)] = np.nan
    return SimpleNamespace(
        final_numbers=torch.from_numpy(numbers),
        final_x_ang=torch.from_numpy(positions).float(),
        finite=torch.tensor(finite),
    )


def test_duplicates_and_a_broken_chain(tiny_qm9_dir):
    table = read_molecules(tiny_qm9_dir / "train.parquet")
    a, b = table.molecule(10), table.molecule(20)  # QM9 minima: stable and valid
    ro = _fake_rollouts([a, a, b, b, a], finite=[True, True, True, True, False])
    t = rollout_table(ro)
    assert t.num_atoms.tolist() == [len(a.atomic_numbers)] * 2 + [len(b.atomic_numbers)] * 2 + [len(a.atomic_numbers)]
    assert t.columns["status"].tolist() == ["ok"] * 4 + ["nan"]
    q = rollout_quality(ro)
    assert q["rollout_molecule_stability"] == pytest.approx(4 / 5)
    assert q["rollout_validity"] == pytest.approx(4 / 5)
    assert q["rollout_uniqueness"] == pytest.approx(2 / 4)  # two distinct molecules among four valid ones


def test_evaluation_schedule():
    assert [i for i in range(1, 11) if evaluation_due(i, 10, 4)] == [4, 8, 10]
    assert not any(evaluation_due(i, 10, None) for i in range(1, 11))
