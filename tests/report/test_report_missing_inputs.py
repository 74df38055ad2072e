"""The report never crashes on missing, empty or broken inputs: it says what it could not show."""

from __future__ import annotations

import pandas as pd
import pytest

from elign.cli.main import main
from elign.config import ReportConfig
from elign.report import FIGURES, ReportPaths, build_report
from elign.report import build as build_module

CFG = ReportConfig(n_bootstrap=200, example_molecules=4)


def _caption(result, file: str) -> str:
    return next(c for f, _, c in result.figures if f == file)


def _all_files_exist(out, models=()):
    for name in (
        [f.file for f in FIGURES]
        + [f"molecules_{m}.png" for m in models]
        + ["metrics_table.csv", "metrics_table.md", "report.md", "index.html"]
    ):
        assert (out / name).stat().st_size > 0, name


def test_nothing_but_metrics(artifacts, tmp_path):
    out = tmp_path / "out"
    paths = ReportPaths(
        out_dir=str(out),
        metrics={"pretrained": str(artifacts["metrics"]["pretrained"])},
        samples={"aligned": str(tmp_path / "missing_samples.parquet")},
        timing=str(tmp_path / "missing_timing.json"),
    )
    result = build_report(paths, CFG)
    _all_files_exist(out, ["aligned"])
    notes = "\n".join(result.notes)
    assert "samples of aligned: file not found" in notes and "sampling timing: file not found" in notes
    assert "no DFT results" in _caption(result, "dft_force_rms.png")
    assert "no pretraining history" in _caption(result, "pretrain_loss.png")
    assert "no FED-GRPO history" in _caption(result, "finetune_curves.png")
    assert "sampling time not measured" in _caption(result, "sampling_time.png")
    assert "aligned: no samples and no metrics input" in _caption(result, "molecules_aligned.png")
    page = (out / "index.html").read_text()
    assert "No statistics table" in page and "file not found" in page


def test_no_inputs_at_all(tmp_path):
    result = build_report(ReportPaths(out_dir=str(tmp_path)), CFG)
    _all_files_exist(tmp_path)
    assert "sampling timing: not measured (no --timing file)" in result.notes
    assert "no MLFF results" in _caption(result, "mlff_force_rms.png")


def test_empty_tables_and_all_failed_models(artifacts, tmp_path):
    from elign.dft.results import write_results

    empty_metrics = pd.read_parquet(artifacts["metrics"]["aligned"]).iloc[:0]
    empty_metrics.to_parquet(tmp_path / "empty.parquet")
    write_results(tmp_path / "empty_dft.parquet", [])
    pd.read_parquet(artifacts["pretrain_history"]).iloc[:0].to_parquet(tmp_path / "h.parquet")
    pd.read_parquet(artifacts["finetune_history"]).iloc[:0].to_parquet(tmp_path / "f.parquet")
    (tmp_path / "stats.csv").write_text("metric,model\n")
    paths = ReportPaths(
        out_dir=str(tmp_path / "out"),
        metrics={"aligned": str(tmp_path / "empty.parquet")},
        dft={"aligned": str(tmp_path / "empty_dft.parquet"), "guided": str(artifacts["dft"]["guided"])},
        samples={"aligned": str(artifacts["samples"]["aligned"])},
        statistics=str(tmp_path / "stats.csv"),
        pretrain_history=str(tmp_path / "h.parquet"),
        finetune_history=str(tmp_path / "f.parquet"),
    )
    result = build_report(paths, CFG)
    _all_files_exist(tmp_path / "out", ["aligned"])
    dft = _caption(result, "dft_force_rms.png")
    assert "aligned: no rows" in dft and "guided: no successful rows (6 failed)" in dft
    assert "no pretraining history" in _caption(result, "pretrain_loss.png")
    assert not [n for n in result.notes if "failed:" in n]  # handled, not caught by the safety net


def test_unreadable_input_is_a_note(tmp_path):
    (tmp_path / "broken.parquet").write_text("not parquet")
    result = build_report(
        ReportPaths(
            out_dir=str(tmp_path / "out"),
            metrics={"x": str(tmp_path / "broken.parquet")},
            pretrain_history=str(tmp_path / "broken.parquet"),
        ),
        CFG,
    )
    assert any(n.startswith("metrics of x: unreadable") for n in result.notes)
    assert any(n.startswith("pretraining history: unreadable") for n in result.notes)
    _all_files_exist(tmp_path / "out")


def test_a_failing_figure_becomes_a_placeholder_and_a_note(artifacts, tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("drawing exploded")

    monkeypatch.setattr(build_module.plots, "plot_sizes", boom)
    result = build_report(ReportPaths(out_dir=str(tmp_path), metrics=dict(artifacts["metrics"])), CFG)
    assert "sizes.png: figure failed: RuntimeError: drawing exploded" in result.notes
    assert (tmp_path / "sizes.png").read_bytes()[:4] == b"\x89PNG"
    assert "drawing exploded" in (tmp_path / "index.html").read_text()


def test_cli_with_missing_optional_inputs(artifacts, tmp_path):
    rc = main(
        [
            "report",
            "--metrics",
            f"pretrained={artifacts['metrics']['pretrained']}",
            "--timing",
            str(tmp_path / "none.json"),
            "--statistics",
            str(tmp_path / "none.csv"),
            "--out-dir",
            str(tmp_path / "out"),
            "--config-json",
            '{"report": {"example_molecules": 0}}',
        ]
    )
    assert rc == 0
    _all_files_exist(tmp_path / "out")


def test_bad_named_path_is_an_argument_error(tmp_path):
    with pytest.raises(SystemExit):
        main(["report", "--metrics", "no-equals-sign", "--out-dir", str(tmp_path)])


def test_sampling_time_falls_back_to_the_sample_stage_and_says_so(artifacts, tmp_path):
    paths = ReportPaths(out_dir=str(tmp_path), sample_summaries=dict(artifacts["sample_summaries"]))
    result = build_report(paths, CFG)
    caption = _caption(result, "sampling_time.png")
    assert "sample stage wall time (not a controlled timing)" in caption
    assert "not measured" not in caption
