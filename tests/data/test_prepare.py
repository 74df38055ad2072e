"""The data stage end to end on qm9pack: files, stats, filters, subsets, nothing half-written."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import elign.data.prepare as prepare_mod
from elign.config import validate_config
from elign.data.split import edm_qm9_split_labels
from elign.io.molecules import read_molecules, read_provenance

SUBSET = {"train": 50, "valid": 20, "test": 10}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp("qm9")
    cfg = validate_config(
        {"seed": 5, "data": {"subset": SUBSET, "filters": {"allowed_elements": ["H", "C", "N", "O"], "max_atoms": 18}}},
        whole=False,  # the data stage's slice: a 50-molecule split is no run to pretrain on
    )
    stats = prepare_mod.prepare(cfg, out)
    return out, stats


def test_writes_three_splits_and_stats(prepared):
    out, stats = prepared
    assert stats["split_sizes"] == SUBSET
    on_disk = json.loads((out / "stats.json").read_text())
    assert on_disk["split_sizes"] == SUBSET
    for name, n in SUBSET.items():
        t = read_molecules(out / f"{name}.parquet")
        assert len(t) == n
        assert on_disk["splits"][name]["molecules"] == n
        assert sum(on_disk["splits"][name]["num_atoms_histogram"].values()) == n
        assert sum(on_disk["splits"][name]["atom_type_counts"].values()) == int(t.num_atoms.sum())


def test_filters_applied_and_counted(prepared):
    out, stats = prepared
    for name in SUBSET:
        t = read_molecules(out / f"{name}.parquet")
        assert set(np.unique(t.atomic_numbers)) <= {1, 6, 7, 8}
        assert t.num_atoms.max() <= 18
    by_reason = stats["filtered"]["by_reason"]
    assert by_reason["element_not_allowed"] > 0 and by_reason["too_many_atoms"] > 0
    assert stats["loaded"] == 130831


def test_split_membership_is_edms(prepared):
    out, _ = prepared
    from elign.data.qm9pack import qm9pack_data_dir, read_qm9pack_frame

    all_ids = read_qm9pack_frame(qm9pack_data_dir())["Index"].to_numpy()
    for name in SUBSET:
        t = read_molecules(out / f"{name}.parquet")
        assert (edm_qm9_split_labels(t.mol_id, all_ids) == name).all()
        assert np.all(np.diff(t.mol_id) > 0)  # subset = the first N in QM9-index order


def test_provenance_in_every_file(prepared):
    out, stats = prepared
    meta = read_provenance(out / "train.parquet")
    assert meta["seed"] == "5" and meta["stage"] == "prepare" and len(meta["config_hash"]) == 64
    assert json.loads(meta["config_json"])["data"]["subset"] == SUBSET
    assert stats["provenance"]["config_hash"] == meta["config_hash"]


def test_failure_mid_write_leaves_nothing_half_written(tmp_path, monkeypatch):
    """A crash while writing the second split leaves no temp files and publishes nothing (issue 14: the
    four files are published together; tests/data/test_prepare_publish.py keeps a previous set intact)."""
    calls = []
    real = prepare_mod.write_molecules

    def flaky(path, table, meta):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        real(path, table, meta)

    monkeypatch.setattr(prepare_mod, "write_molecules", flaky)
    cfg = validate_config({"data": {"subset": {"train": 5, "valid": 5, "test": 5}}}, whole=False)
    with pytest.raises(OSError, match="disk full"):
        prepare_mod.prepare(cfg, tmp_path)
    assert sorted(os.listdir(tmp_path)) == []
