"""The report leads with one table: a row per set, the headline metrics, each model's Δ with interval and p."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
from report_artifacts import MODELS

from elign.report.headline import COLUMNS, build_headline, caption, num, p_text, timing_ratios
from elign.report.tables import metric_table

SETS = ["reference", *MODELS]


def _tables(page: str) -> list[str]:
    return re.findall(r"<table.*?</table>", page, re.S)


def _rows(table_html: str) -> dict[str, list[str]]:
    """{row name: [cell html, ...]} of the headline table's body."""
    body = table_html[table_html.index("<tbody>") :]
    return {
        m.group(1): re.findall(r"<td>(.*?)</td>", m.group(2))
        for m in re.finditer(r'<tr><th scope="row">(.*?)</th>(.*?)</tr>', body)
    }


def test_headline_is_the_first_table_with_a_row_per_set(report_dir):
    page = (report_dir / "index.html").read_text()
    first = _tables(page)[0]
    assert 'id="headline-table"' in first
    assert page.index("<h1>") < page.index('id="headline-table"') < page.index("<h2>")  # the first screen
    rows = _rows(first)
    assert list(rows) == SETS
    assert all(len(cells) == len(COLUMNS) for cells in rows.values())
    headers = re.findall(r"<th>([^<]*)<br>", first)
    assert headers == [c.label for c in COLUMNS]
    for label in (
        "molecule stable",
        "atom stable",
        "valid",
        "MLFF force RMS",
        "MLFF relaxation energy",
        "DFT force RMS",
        "DFT formation energy",
        "DFT converged",
        "sampling cost",
    ):
        assert label in headers
    # the models carry Δ and p; the reference and the baseline only their values
    for name in ("reference", "pretrained"):
        assert not any("Δ" in c or "×" in c for c in rows[name])
    for name in ("aligned", "guided"):
        assert all(("Δ" in c or "×" in c) for c in rows[name])


def test_the_dft_level_is_named_under_the_headline(report_dir):
    """A cheaper DFT level than QM9's is acceptable only where the report names it."""
    level = "b3lypg / 6-31g(d) (gaussian basis convention, density fitting, grid 3), SCF at most 40 DIIS + 10 Newton"
    for page in ("index.html", "report.md"):
        assert f"DFT level: {level}" in (report_dir / page).read_text(), page


def test_headline_numbers_are_the_metric_and_statistics_tables(report_dir, artifacts):
    from elign.metrics.evaluate import summarize

    head = pd.read_csv(report_dir / "headline.csv").set_index(["set", "metric"])
    stats = pd.read_csv(report_dir / "statistics.csv").set_index(["metric", "model"])
    aligned = summarize(pd.read_parquet(artifacts["metrics"]["aligned"]), "aligned")
    assert head.loc[("aligned", "mlff_force_rms_ev_per_ang_mean"), "value"] == pytest.approx(
        aligned["force_rms_ev_per_ang_mean"]
    )
    assert head.loc[("aligned", "relaxation_energy_kcal_mol_mean"), "value"] == pytest.approx(
        aligned["relaxation_energy_kcal_mol_mean"]
    )
    assert head.loc[("aligned", "molecule_stability"), "value"] == pytest.approx(100 * aligned["molecule_stability"])
    for col, metric, scale in (
        ("relaxation_energy_kcal_mol_mean", "relaxation_energy_kcal_mol", 1),
        ("dft_force_rms_ev_per_ang_mean", "dft_force_rms_ev_per_ang", 1),
        ("validity", "valid", 100),
        ("dft_converged_fraction", "dft_converged", 100),
    ):
        row, want = head.loc[("aligned", col)], stats.loc[(metric, "aligned")]
        assert row["diff"] == pytest.approx(scale * want["mean_diff"])
        assert (row["ci_low"], row["ci_high"]) == pytest.approx(
            (scale * want["diff_ci_low"], scale * want["diff_ci_high"])
        )
        assert row["p_value"] == pytest.approx(want["welch_p"])
    # a shown Δ is the difference of the shown values (but for atom stability: see the caption)
    for col in ("mlff_force_rms_ev_per_ang_mean", "relaxation_energy_kcal_mol_mean", "validity"):
        diff = head.loc[("aligned", col), "value"] - head.loc[("pretrained", col), "value"]
        assert head.loc[("aligned", col), "diff"] == pytest.approx(diff)
    assert head.loc[("guided", "dft_converged_fraction"), "value"] == 0.0  # all its DFT rows failed: 0 %, not –
    assert math.isnan(head.loc[("guided", "dft_force_rms_ev_per_ang_mean"), "value"])
    assert math.isnan(head.loc[("reference", "dft_converged_fraction"), "value"])  # no DFT for the reference
    assert (
        head.loc[("reference", "relaxation_energy_kcal_mol_mean"), "diff"]
        != head.loc[  # NaN: not compared
            ("reference", "relaxation_energy_kcal_mol_mean"), "diff"
        ]
    )


def test_sampling_cost_is_the_ratio_of_paired_repeats(report_dir, artifacts):
    import json

    timing = json.loads(artifacts["timing"].read_text())
    ratios = np.array(timing["models"]["guided"]["reps_s"]) / np.array(timing["models"]["pretrained"]["reps_s"])
    row = (
        pd.read_csv(report_dir / "headline.csv")
        .set_index(["set", "metric"])
        .loc[("guided", "sampling_seconds_per_molecule")]
    )
    assert row["value"] == pytest.approx(0.06) and row["diff"] == pytest.approx(np.exp(np.log(ratios).mean()))
    assert row["ci_low"] < row["diff"] < row["ci_high"] and row["p_value"] < 0.01
    page = (report_dir / "index.html").read_text()
    assert "×3.02 [" in _rows(_tables(page)[0])["guided"][-1]


def test_timing_ratios_count_a_hook_on_part_of_the_chain_like_time_sampling():
    timing = {"models": {"pretrained": {"reps_s": [1.0, 2.0]}, "guided": {"reps_s": [3.0, 8.0], "hook_fraction": 0.2}}}
    assert timing_ratios(timing, "guided", "pretrained") == pytest.approx([0.2 * 3 + 0.8, 0.2 * 4 + 0.8])
    assert timing_ratios(timing, "aligned", "pretrained") == []
    assert timing_ratios(None, "guided", "pretrained") == []


def test_without_statistics_the_models_show_values_and_no_made_up_differences(artifacts):
    frames = {n: pd.read_parquet(p) for n, p in artifacts["metrics"].items()}
    h = build_headline(metric_table(frames, {}, None), None, None, "pretrained", 0.95)
    assert h.names == SETS
    assert all(c.diff == "" for row in h.cells for c in row)
    assert h.long["diff"].isna().all()
    assert h.cells[0][0].value == num(100 * frames["reference"]["molecule_stable"].mean())


def test_compact_number_formats():
    assert [num(v) for v in (0.9522, 95.22, 1234.5, -0.0004567, 0.0, float("nan"), None)] == [
        "0.952",
        "95.2",
        "1234",
        "−4.57e−04",
        "0",
        "–",
        "–",
    ]
    assert [p_text(p) for p in (0.5, 0.003, 1e-6, float("nan"))] == ["p 0.50", "p 0.003", "p < 0.0001", ""]


def test_a_paired_statistics_row_gives_the_paired_difference_and_test_marked(artifacts):
    """A model sampled with the baseline's noise: the headline shows the paired Δ [interval] and paired p with ‡,
    an unpaired one Welch's; the caption says what ‡ means."""
    from elign.stats import BootstrapSettings, statistics_table

    frames = {n: pd.read_parquet(p) for n, p in artifacts["metrics"].items()}
    models = {n: f for n, f in frames.items() if n != "reference"}
    stats = statistics_table(models, {}, "pretrained", BootstrapSettings(n_resamples=200), paired_models=["aligned"])
    h = build_headline(metric_table(frames, {}, None), stats, None, "pretrained", 0.95)
    col = [c.key for c in COLUMNS].index("mlff_force_rms_ev_per_ang_mean")
    head = h.long.set_index(["set", "metric"])
    row = stats.set_index(["metric", "model"]).loc[("mlff_force_rms_ev_per_ang", "aligned")]
    aligned = head.loc[("aligned", "mlff_force_rms_ev_per_ang_mean")]
    assert aligned["p_value"] == pytest.approx(row["paired_p"]) and aligned["test"].startswith("paired t over")
    assert (aligned["ci_low"], aligned["ci_high"]) == pytest.approx((row["paired_ci_low"], row["paired_ci_high"]))
    assert h.cells[h.names.index("aligned")][col].p.endswith(" ‡")
    assert head.loc[("guided", "mlff_force_rms_ev_per_ang_mean"), "test"] == "Welch t"
    assert not h.cells[h.names.index("guided")][col].p.endswith("‡")
    assert "‡ marks a paired comparison" in caption(h)
