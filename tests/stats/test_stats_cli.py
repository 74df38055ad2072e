"""``elign stats``: CSV + Markdown from metrics and DFT Parquet files; config from --config-json."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from elign.cli.main import main
from elign.dft.results import write_results


def _metrics(path, n, shift, seed):
    rng = np.random.default_rng(seed)
    valid = rng.random(n) < 0.7
    pd.DataFrame(
        {
            "mol_id": np.arange(n),
            "num_atoms": 9,
            "sample_status": "ok",
            "num_stable_atoms": 9,
            "molecule_stable": valid,
            "valid": valid,
            "smiles": ["CCO" if v else None for v in valid],
            "invalid_reason": None,
            "novel": False,
            "mlff_status": ["ok"] * (n - 1) + ["error"],
            "mlff_reason": "",
            "energy_ev": -4000.0,
            "formation_energy_per_atom_ev": rng.normal(-3, 0.1, n),
            "force_rms_ev_per_ang": np.abs(rng.normal(1 + shift, 0.1, n)),
            "force_max_ev_per_ang": 2.0,
        }
    ).to_parquet(path)


def _dft(path, n_ok, n_failed):
    rows = [
        {
            "selection_index": i,
            "target_num_atoms": 3,
            "mol_id": i,
            "num_atoms": 3,
            "atomic_numbers": [8, 1, 1],
            "positions_ang": [[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]],
            "status": "ok" if i < n_ok else "timeout",
            "reason": "",
            "energy_ev": -2000.0,
            "formation_energy_per_atom_ev": -1.0 - 0.01 * i if i < n_ok else None,
            "force_rms_ev_per_ang": 0.1 + 0.01 * i if i < n_ok else None,
        }
        for i in range(n_ok + n_failed)
    ]
    write_results(path, rows)


def test_stats_cli_writes_csv_and_markdown(tmp_path):
    _metrics(tmp_path / "p.parquet", 60, 0.0, 0)
    _metrics(tmp_path / "a.parquet", 60, -0.5, 1)
    _dft(tmp_path / "p.dft.parquet", 4, 1)
    _dft(tmp_path / "a.dft.parquet", 3, 2)
    out = tmp_path / "report" / "statistics.csv"
    cfg = json.dumps({"seed": 3, "report": {"n_bootstrap": 500, "confidence": 0.9, "baseline_model": "pretrained"}})
    rc = main(
        [
            "stats",
            "--config-json",
            cfg,
            "--metrics",
            f"pretrained={tmp_path / 'p.parquet'}",
            "--metrics",
            f"aligned={tmp_path / 'a.parquet'}",
            "--dft",
            f"pretrained={tmp_path / 'p.dft.parquet'}",
            "--dft",
            f"aligned={tmp_path / 'a.dft.parquet'}",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    table = pd.read_csv(out)
    assert set(table.model) == {"aligned"}
    assert (table.n_bootstrap == 500).all() and (table.confidence == 0.9).all()
    dft = table[table.metric == "dft_force_rms_ev_per_ang"].iloc[0]
    assert (dft.n_used, dft.n_failed, dft.n_used_baseline, dft.n_failed_baseline) == (3, 2, 4, 1)
    mlff = table[table.metric == "mlff_force_rms_ev_per_ang"].iloc[0]
    # the last row's MLFF status is 'error': its force value is excluded and counted even though it is a number
    assert (mlff.n_used, mlff.n_failed) == (59, 1) and mlff.welch_p < 0.01
    md = (tmp_path / "report" / "statistics.md").read_text()
    assert "90 % CI" in md and "aligned vs pretrained" in md


def test_stats_cli_unknown_baseline_is_one_clear_message(tmp_path, capsys):
    _metrics(tmp_path / "a.parquet", 10, 0.0, 0)
    rc = main(["stats", "--metrics", f"aligned={tmp_path / 'a.parquet'}", "--out", str(tmp_path / "s.csv")])
    assert rc == 2
    assert "baseline model 'pretrained'" in capsys.readouterr().err
    assert not (tmp_path / "s.csv").exists()


def test_stats_cli_missing_file_is_named(tmp_path, capsys):
    rc = main(["stats", "--metrics", f"pretrained={tmp_path / 'nope.parquet'}", "--out", str(tmp_path / "s.csv")])
    assert rc == 2 and "nope.parquet" in capsys.readouterr().err


def test_stats_cli_pairs_a_model_sampled_with_the_baselines_noise(tmp_path, capsys):
    """--samples: the same seed, batch size and count (and the same sizes row by row) make aligned paired; guided,
    sampled with another seed, stays unpaired. A summary that is not JSON is one clear message."""
    for name, shift, seed in (("pretrained", 0.0, 0), ("aligned", -0.5, 1), ("guided", -0.5, 2)):
        _metrics(tmp_path / f"{name}.parquet", 40, shift, seed)
        summary = {"seed": 1000 + (name == "guided"), "batch_size": 64, "num_molecules": 40}
        (tmp_path / f"{name}.json").write_text(json.dumps(summary))
    args = ["stats", "--out", str(tmp_path / "s.csv")]
    for name in ("pretrained", "aligned", "guided"):
        args += [
            "--metrics",
            f"{name}={tmp_path / f'{name}.parquet'}",
            "--samples",
            f"{name}={tmp_path / f'{name}.json'}",
        ]
    assert main(args) == 0
    table = pd.read_csv(tmp_path / "s.csv").set_index(["metric", "model"])
    assert table.loc[("mlff_force_rms_ev_per_ang", "aligned"), "paired"]
    assert table.loc[("mlff_force_rms_ev_per_ang", "aligned"), "n_pairs"] == 39  # the failed MLFF row drops its pair
    assert not table.loc[("mlff_force_rms_ev_per_ang", "guided"), "paired"]
    assert "paired p" in (tmp_path / "s.md").read_text()
    (tmp_path / "guided.json").write_text("{not json")
    capsys.readouterr()
    assert main(args) == 2 and "guided.json" in capsys.readouterr().err
