"""``elign dft`` shards + ``elign dft-gather`` end to end (sto-3g, tiny molecules), result schema."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from elign.cli.main import main
from elign.dft.results import SCHEMA, gather, read_results
from elign.io.molecules import write_molecules

CHEAP = {
    "seed": 1,
    "dft": {"basis": "sto-3g", "molecules_per_model": 4, "shards": 2, "threads": 1, "safety_time_limit_s": 120},
}


@pytest.fixture
def sample_files(tmp_path, qm9_first_rows):
    """The 8 smallest of the first 30 QM9 molecules as a 'samples' file; one marked invalid in metrics."""
    table = qm9_first_rows.take(np.argsort(qm9_first_rows.num_atoms, kind="stable")[:8])
    table.columns = {"status": np.array(["ok"] * 8, dtype=object)}
    samples = tmp_path / "samples.parquet"
    write_molecules(samples, table)
    valid = np.ones(8, bool)
    valid[0] = False
    metrics = tmp_path / "metrics.parquet"
    pd.DataFrame({"mol_id": table.mol_id, "sample_status": "ok", "valid": valid}).to_parquet(metrics)
    return samples, metrics, table


def _run_shard(samples, metrics, out, i, cache):
    return main(
        [
            "dft",
            "--config-json",
            json.dumps(CHEAP),
            "--samples",
            str(samples),
            "--metrics",
            str(metrics),
            "--shard",
            str(i),
            "--of",
            "2",
            "--out",
            str(out),
            "--atom-cache",
            str(cache),
        ]
    )


def test_shards_then_gather(tmp_path, sample_files, capsys):
    samples, metrics, table = sample_files
    outs = [tmp_path / "dft" / f"shard_{i}.parquet" for i in range(2)]
    for i, out in enumerate(outs):
        assert _run_shard(samples, metrics, out, i, tmp_path / "atoms") == 0
        assert out.exists() and not (tmp_path / "dft" / f"shard_{i}.parquet.partial.jsonl").exists()
    frame0, meta0 = read_results(outs[0])
    assert len(frame0) == 2 and meta0["shard"] == "0" and meta0["of"] == "2"
    assert json.loads(meta0["level"])["basis"] == "sto-3g"
    final = tmp_path / "final.parquet"
    assert (
        main(
            [
                "dft-gather",
                "--shards",
                *map(str, outs),
                "--out",
                str(final),
                "--summary",
                str(tmp_path / "summary.json"),
            ]
        )
        == 0
    )
    assert '"ok": 4' in capsys.readouterr().out
    frame, _ = read_results(final)
    assert frame["selection_index"].tolist() == [0, 1, 2, 3]
    assert table.mol_id[0] not in frame["mol_id"].tolist()  # the invalid one is never chosen
    assert (frame["status"] == "ok").all()
    assert frame["formation_energy_per_atom_ev"].between(-10, 0).all()
    assert all(len(f) == n for f, n in zip(frame["forces_ev_per_ang"], frame["num_atoms"]))
    assert json.loads((tmp_path / "summary.json").read_text())["status_counts"]["ok"] == 4
    with pytest.raises(ValueError, match="complete set"):
        gather([outs[0]])


def test_valid_only_without_metrics_is_one_clear_error(tmp_path, sample_files, capsys):
    samples, _, _ = sample_files
    code = main(
        [
            "dft",
            "--config-json",
            json.dumps(CHEAP),
            "--samples",
            str(samples),
            "--shard",
            "0",
            "--out",
            str(tmp_path / "x.parquet"),
        ]
    )
    assert code == 2
    assert "--metrics" in capsys.readouterr().err


def test_cuda_without_gpu4pyscf_is_one_clear_error(tmp_path, sample_files, capsys):
    pytest.importorskip("pyscf")
    try:
        import gpu4pyscf  # noqa: F401

        pytest.skip("gpu4pyscf is installed here")
    except ImportError:
        pass
    samples, metrics, _ = sample_files
    cfg = {**CHEAP, "dft": {**CHEAP["dft"], "device": "cuda"}}
    code = main(
        [
            "dft",
            "--config-json",
            json.dumps(cfg),
            "--samples",
            str(samples),
            "--metrics",
            str(metrics),
            "--out",
            str(tmp_path / "x.parquet"),
        ]
    )
    assert code == 2
    assert "gpu4pyscf" in capsys.readouterr().err


def test_failure_rows_fit_the_schema(tmp_path):
    from elign.dft.pyscf_runner import empty_row
    from elign.dft.results import rows_to_arrow

    row = {
        **empty_row(),
        "selection_index": 0,
        "target_num_atoms": 3,
        "mol_id": 7,
        "num_atoms": 3,
        "atomic_numbers": [8, 1, 1],
        "positions_ang": [[0, 0, 0]] * 3,
        "reason": "timeout",
        "status": "timeout",
    }
    table = rows_to_arrow([row], {"stage": "dft"})
    assert table.schema.equals(SCHEMA, check_metadata=False)
    assert table.column("forces_ev_per_ang").null_count == 1


def test_an_empty_shard_still_writes_its_file(tmp_path, sample_files):
    samples, metrics, _ = sample_files
    out = tmp_path / "shard_4.parquet"
    code = main(
        [
            "dft",
            "--config-json",
            json.dumps(CHEAP),
            "--samples",
            str(samples),
            "--metrics",
            str(metrics),
            "--shard",
            "4",
            "--of",
            "5",
            "--out",
            str(out),
            "--atom-cache",
            str(tmp_path / "atoms"),
        ]
    )
    assert code == 0
    frame, meta = read_results(out)
    assert len(frame) == 0 and meta["of"] == "5"


def test_molecules_option_takes_the_first_targets(tmp_path, sample_files):
    """--molecules k' (the guided baseline's dft.guided_molecules) runs the first k' of the paired selection."""
    samples, metrics, _ = sample_files
    out = tmp_path / "guided.parquet"
    args = ["dft", "--config-json", json.dumps(CHEAP), "--samples", str(samples), "--metrics", str(metrics)]
    args += ["--of", "1", "--molecules", "2", "--out", str(out), "--atom-cache", str(tmp_path / "atoms")]
    assert main(args) == 0
    frame, _ = read_results(out)
    assert frame["selection_index"].tolist() == [0, 1]
    full = tmp_path / "full.parquet"
    assert _run_shard(samples, metrics, full, 0, tmp_path / "atoms") == 0  # shard 0 of 2 = the first 2 of 4
    np.testing.assert_array_equal(frame["target_num_atoms"], read_results(full)[0]["target_num_atoms"])


def test_molecules_below_one_is_one_clear_error(tmp_path, sample_files, capsys):
    samples, metrics, _ = sample_files
    args = ["dft", "--config-json", json.dumps(CHEAP), "--samples", str(samples), "--metrics", str(metrics)]
    code = main([*args, "--molecules", "0", "--out", str(tmp_path / "x.parquet"), "--atom-cache", str(tmp_path)])
    assert code == 2
    assert "--molecules 0: need at least 1" in capsys.readouterr().err
    assert not (tmp_path / "x.parquet").exists()
