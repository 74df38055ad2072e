"""Padded, centred training batches (EDM's layout) from a MoleculeTable."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from elign.data.batching import MoleculeBatcher, node_mask_from_sizes, size_histogram
from elign.io.errors import DataFormatError
from elign.io.molecules import read_molecules
from elign.io.table import MoleculeTable

QM9 = ["H", "C", "N", "O", "F"]


def _table() -> MoleculeTable:
    """Three molecules: CH4 (5 atoms), H2O (3), HF (2); positions deliberately off-centre."""
    z = [6, 1, 1, 1, 1, 8, 1, 1, 9, 1]
    rng = np.random.default_rng(0)
    pos = rng.normal(size=(10, 3)) + np.array([5.0, -3.0, 2.0])
    return MoleculeTable(np.array([11, 22, 33]), np.array([5, 3, 2]), z, pos, np.array([None] * 3, dtype=object))


def test_batch_layout_centring_and_padding():
    table = _table()
    b = MoleculeBatcher(table, QM9).batch([2, 0], dtype=torch.float64)
    assert b.x.shape == (2, 5, 3) and b.one_hot.shape == (2, 5, 5)
    assert b.charges.shape == (2, 5, 1) and b.node_mask.shape == (2, 5, 1)
    assert b.mol_id.tolist() == [33, 11]
    assert b.node_mask[..., 0].tolist() == [[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]]
    assert b.num_atoms.tolist() == [2, 5]
    assert b.charges[..., 0].tolist() == [[9, 1, 0, 0, 0], [6, 1, 1, 1, 1]]
    assert b.one_hot.argmax(-1)[0, :2].tolist() == [4, 0] and b.one_hot.argmax(-1)[1].tolist() == [1, 0, 0, 0, 0]
    assert torch.all(b.one_hot.sum(-1) == b.node_mask[..., 0])
    # centred over real atoms only, padding exactly zero, relative geometry kept
    com = (b.x * b.node_mask).sum(1) / b.node_mask.sum(1)
    assert com.abs().max() < 1e-12
    assert torch.all(b.x[0, 2:] == 0)
    ch4 = table.molecule(0).positions_ang.astype(np.float64)
    assert np.allclose(b.x[1].numpy(), ch4 - ch4.mean(0), atol=1e-12)


def test_pad_to_and_dtype():
    b = MoleculeBatcher(_table(), QM9).batch(np.array([1]), pad_to=7)
    assert b.x.shape == (1, 7, 3) and b.x.dtype == torch.float32
    assert b.node_mask.sum() == 3
    with pytest.raises(ValueError, match="smaller than the largest"):
        MoleculeBatcher(_table(), QM9).batch([0], pad_to=4)


def test_unknown_element_names_element_and_molecule():
    with pytest.raises(DataFormatError, match=r"record 33: element F \(Z=9\) is not in the atom decoder"):
        MoleculeBatcher(_table(), ["H", "C", "N", "O"], source="train.parquet")


def test_matches_per_molecule_reference_on_qm9(tiny_qm9_dir):
    table = read_molecules(tiny_qm9_dir / "train.parquet")
    batcher = MoleculeBatcher(table, QM9)
    index = np.array([5, 0, 63, 17, 30])
    b = batcher.batch(index, dtype=torch.float64)
    assert b.x.shape[1] == table.num_atoms[index].max() == batcher.max_atoms(index)
    for row, i in enumerate(index):
        mol = table.molecule(int(i))
        n = len(mol.atomic_numbers)
        pos = mol.positions_ang.astype(np.float64)
        assert np.allclose(b.x[row, :n].numpy(), pos - pos.mean(0), atol=1e-12)
        assert b.charges[row, :n, 0].tolist() == mol.atomic_numbers.tolist()
        assert [QM9[k] for k in b.one_hot[row, :n].argmax(-1).tolist()] == [
            {1: "H", 6: "C", 7: "N", 8: "O", 9: "F"}[z] for z in mol.atomic_numbers.tolist()
        ]
        assert b.node_mask[row, n:].sum() == 0 and b.node_mask[row, :n].sum() == n


def test_node_mask_from_sizes():
    m = node_mask_from_sizes([2, 0, 3], 4)
    assert m.shape == (3, 4, 1) and m[..., 0].tolist() == [[1, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 0]]
    assert node_mask_from_sizes(np.array([1, 3])).shape == (2, 3, 1)
    with pytest.raises(ValueError):
        node_mask_from_sizes([5], 4)


def test_size_histogram(tmp_path):
    stats = {"splits": {"train": {"num_atoms_histogram": {"10": 2, "3": 1}}}}
    assert size_histogram(stats) == {3: 1, 10: 2}
    assert list(size_histogram(stats)) == [3, 10]
    path = tmp_path / "stats.json"
    path.write_text(json.dumps(stats))
    assert size_histogram(path) == {3: 1, 10: 2}
    with pytest.raises(ValueError, match="splits.valid"):
        size_histogram(stats, "valid")
    with pytest.raises(FileNotFoundError):
        size_histogram(tmp_path / "missing.json")


# --- batches planned by edge count (sample.max_batch_edges, pretrain.max_batch_edges) ------------------------------
def test_plan_batches_respects_the_edge_budget():
    from elign.data.batching import edge_count, plan_batches

    rng = np.random.default_rng(0)
    sizes = np.concatenate([rng.integers(10, 60, 200), [181, 150, 181]])  # GEOM-like, with its largest molecules
    budget = 40_000  # > one 181-atom molecule (32,580 edges), < two of them
    plan = plan_batches(sizes, 64, budget)
    assert sorted(np.concatenate(plan).tolist()) == list(range(len(sizes)))  # every molecule once
    for batch in plan:
        assert len(batch) <= 64
        assert edge_count(sizes[batch]).sum() <= budget
    flat = sizes[np.concatenate(plan)]
    assert (np.diff(flat) >= 0).all()  # sorted by size: the padding stays small
    biggest = [b for b in plan if 181 in sizes[b]]
    assert len(biggest) == 2 and all(len(b) == 1 for b in biggest)  # 2 x 32,580 > budget: one each
    # without a budget: the count alone (the old plan), and the largest batch holds 64 molecules
    assert [len(b) for b in plan_batches(sizes, 64)] == [64, 64, 64, 11]
    assert edge_count([181, 2]).tolist() == [32_580, 2]


def test_a_molecule_over_the_budget_gets_its_own_batch():
    from elign.data.batching import plan_batches

    plan = plan_batches([5, 100, 6, 7], 10, max_edges=50)  # 5*4 + 6*5 = 50 fit; 7*6 = 42 next; 100 alone
    assert [b.tolist() for b in plan] == [[0, 2], [3], [1]]
    with pytest.raises(ValueError, match="max_edges"):
        plan_batches([3], 4, max_edges=0)


def test_plan_chunks_keeps_the_order_and_cuts_by_count_and_edges():
    """FED-GRPO's passes (finetune.max_batch_edges): contiguous chunks in the given order."""
    from elign.data.batching import edge_count, plan_chunks

    rng = np.random.default_rng(1)
    sizes = np.concatenate([rng.integers(10, 60, 100), [181], rng.integers(10, 60, 20)])
    # no edge cap: exactly range(0, M, max_items), the unbudgeted loop; no cap at all: one chunk
    assert [c.tolist() for c in plan_chunks(sizes, 16)] == [list(range(i, min(i + 16, 121))) for i in range(0, 121, 16)]
    assert [c.tolist() for c in plan_chunks(sizes)] == [list(range(121))]
    assert [c.tolist() for c in plan_chunks(sizes, 16, max_edges=10**9)] == [c.tolist() for c in plan_chunks(sizes, 16)]
    budget = 40_000
    plan = plan_chunks(sizes, 16, budget)
    assert np.concatenate(plan).tolist() == list(range(len(sizes)))  # every item once, in order
    for chunk in plan:
        assert len(chunk) <= 16 and (edge_count(sizes[chunk]).sum() <= budget or len(chunk) == 1)
        assert (np.diff(chunk) == 1).all()
    assert any(len(c) < 16 and c[-1] != len(sizes) - 1 for c in plan)  # the budget did cut somewhere
    assert [c.tolist() for c in plan_chunks([5, 100, 6], max_edges=50)] == [[0], [1], [2]]  # 100 atoms: alone
    assert plan_chunks([]) == []
    with pytest.raises(ValueError, match="max_items"):
        plan_chunks([3], 0)
    with pytest.raises(ValueError, match="max_edges"):
        plan_chunks([3], 1, max_edges=0)
