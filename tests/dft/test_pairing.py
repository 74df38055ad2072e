"""The paired DFT selection: chosen once from the baseline, the same mol_ids for every model with its noise."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from elign.cli.main import main
from elign.dft import pairing
from elign.dft.results import read_results
from elign.io.molecules import read_molecules, write_molecules
from elign.io.table import MoleculeTable

CHEAP = {
    "seed": 1,
    "dft": {"basis": "sto-3g", "molecules_per_model": 4, "shards": 1, "threads": 1, "safety_time_limit_s": 120},
}
DESIGN = {"seed": 1001, "batch_size": 8, "num_molecules": 8}


def _table(sizes, status=None) -> MoleculeTable:
    rng = np.random.default_rng(0)
    n = int(np.sum(sizes))
    st = np.array(status if status is not None else ["ok"] * len(sizes), dtype=object)
    return MoleculeTable(
        np.arange(len(sizes)), sizes, np.full(n, 6), rng.normal(size=(n, 3)), np.full(len(sizes), None), {"status": st}
    )


def _metrics(table: MoleculeTable, valid, mlff_ok) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "mol_id": table.mol_id,
            "num_atoms": table.num_atoms,
            "sample_status": table.columns["status"],
            "valid": valid,
            "mlff_status": np.where(mlff_ok, "ok", "nan"),
        }
    )


def test_the_choice_looks_only_at_the_baseline_and_is_seeded():
    rng = np.random.default_rng(2)
    base = _table(rng.integers(3, 15, 120))
    valid, mlff_ok = rng.random(120) < 0.6, rng.random(120) < 0.9
    chosen = pairing.choose(base, _metrics(base, valid, mlff_ok), 20, 7, True, True)
    assert len(chosen) == 20 and chosen["selection_index"].tolist() == list(range(20))
    assert chosen["mol_id"].is_unique
    assert (valid & mlff_ok)[chosen["mol_id"]].all()  # RDKit-valid and MLFF-scored in the baseline
    again = pairing.choose(base, _metrics(base, valid, mlff_ok), 20, 7, True, True)
    pd.testing.assert_frame_equal(chosen, again)


def test_a_model_with_the_baselines_noise_gets_the_same_mol_ids_whatever_it_became():
    sizes = np.array([5, 9, 7, 4, 6])
    base = _table(sizes)
    chosen = pairing.choose(base, None, 3, 1, False, False)
    model = _table(sizes, status=["nan"] * 5)  # every molecule of the model failed: still the same mol_ids
    sel = pairing.by_mol_id(model, chosen, 3)
    np.testing.assert_array_equal(model.mol_id[sel.index], chosen["mol_id"])
    np.testing.assert_array_equal(sel.selection_index, [0, 1, 2])
    with pytest.raises(ValueError, match="not sampled with the baseline's noise"):
        pairing.by_mol_id(_table(sizes + 1), chosen, 3)
    with pytest.raises(ValueError, match="not among these samples"):
        pairing.by_mol_id(model, chosen.assign(mol_id=[99, 0, 1]), 3)


def test_same_noise_needs_the_baselines_seed_batch_size_and_count():
    meta = {"design": DESIGN}
    assert pairing.same_noise(meta, {**DESIGN, "guidance": "mlff"})[0]
    ok, why = pairing.same_noise(meta, {**DESIGN, "num_molecules": 4})
    assert not ok and "num_molecules" in why
    assert not pairing.same_noise(meta, None)[0]
    assert not pairing.same_noise({}, DESIGN)[0]


def test_another_noise_gets_molecules_of_the_same_sizes():
    base = _table(np.array([5, 9, 7, 4, 6, 8]))
    chosen = pairing.choose(base, None, 4, 1, False, False)
    other = _table(np.array([4, 4, 5, 6, 7, 8, 9, 9]))
    sel = pairing.by_size(other, None, chosen, 3, 1, False)
    np.testing.assert_array_equal(other.num_atoms[sel.index], chosen["num_atoms"][:3])


@pytest.fixture
def two_models(tmp_path, qm9_first_rows):
    """'pretrained' = the 8 smallest of the first QM9 molecules; 'aligned' = the same mol_ids moved a little, one
    of them broken (NaN coordinates, as a sample that failed); both with the same sample design."""
    table = qm9_first_rows.take(np.argsort(qm9_first_rows.num_atoms, kind="stable")[:8])
    table.columns = {"status": np.array(["ok"] * 8, dtype=object)}
    for name in ("pretrained", "aligned"):
        t = table.take(np.arange(8))
        if name == "aligned":
            t.positions_ang = t.positions_ang + np.random.default_rng(0).normal(0, 0.02, t.positions_ang.shape)
        write_molecules(tmp_path / f"{name}.parquet", t)
        valid = np.ones(8, bool)
        valid[0] = name == "aligned"  # the baseline's molecule 0 is invalid: never chosen
        _metrics(t, valid, np.ones(8, bool)).to_parquet(tmp_path / f"{name}_metrics.parquet")
        (tmp_path / f"{name}.summary.json").write_text(json.dumps(DESIGN))
    return tmp_path, table


def _cli(*args) -> int:
    return main([args[0], "--config-json", json.dumps(CHEAP), *map(str, args[1:])])


def test_select_then_dft_gives_the_same_mol_ids_and_paired_statistics(two_models):
    d, table = two_models
    sel = d / "selection.parquet"
    assert (
        _cli(
            "dft-select",
            "--samples",
            d / "pretrained.parquet",
            "--metrics",
            d / "pretrained_metrics.parquet",
            "--summary",
            d / "pretrained.summary.json",
            "--out",
            sel,
        )
        == 0
    )
    frame, meta = pairing.read_selection(sel)
    assert len(frame) == 4 and table.mol_id[0] not in frame["mol_id"].tolist() and meta["design"] == DESIGN
    broken = int(frame["mol_id"].iloc[1])
    aligned = read_molecules(d / "aligned.parquet")  # break one aligned molecule: a failure that stays a row
    start = int(np.cumsum(np.r_[0, aligned.num_atoms])[list(aligned.mol_id).index(broken)])
    aligned.positions_ang[start] = np.nan
    write_molecules(d / "aligned.parquet", aligned)
    for name in ("pretrained", "aligned"):
        assert (
            _cli(
                "dft",
                "--samples",
                d / f"{name}.parquet",
                "--selection",
                sel,
                "--sample-summary",
                d / f"{name}.summary.json",
                "--shard",
                0,
                "--of",
                1,
                "--out",
                d / f"{name}_dft.parquet",
                "--atom-cache",
                d / "atoms",
            )
            == 0
        )
    base, _ = read_results(d / "pretrained_dft.parquet")
    model, model_meta = read_results(d / "aligned_dft.parquet")
    assert base["mol_id"].tolist() == model["mol_id"].tolist() == frame["mol_id"].tolist()
    assert model_meta["pairing"] == "paired"
    failed = model.set_index("mol_id").loc[broken]
    assert failed["status"] == "error" and "non-finite" in failed["reason"]
    out = d / "statistics.csv"
    args = [
        "--metrics",
        f"pretrained={d / 'pretrained_metrics.parquet'}",
        "--metrics",
        f"aligned={d / 'aligned_metrics.parquet'}",
        "--samples",
        f"pretrained={d / 'pretrained.summary.json'}",
        "--samples",
        f"aligned={d / 'aligned.summary.json'}",
        "--dft",
        f"pretrained={d / 'pretrained_dft.parquet'}",
        "--dft",
        f"aligned={d / 'aligned_dft.parquet'}",
    ]
    assert main(["stats", "--config-json", json.dumps({"report": {"n_bootstrap": 200}}), *args, "--out", str(out)]) == 0
    row = pd.read_csv(out).set_index(["metric", "model"]).loc[("dft_force_rms_ev_per_ang", "aligned")]
    assert bool(row["paired"]) and row["n_pairs"] == 3 and row["n_pairs_dropped"] == 1
    assert np.isfinite(row["paired_sd"]) and np.isfinite(row["detectable_diff"])
