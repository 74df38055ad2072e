"""The report's opening sentences and DFT power table, generated from the statistics table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from elign.report.headline import COLUMNS, build_headline, num
from elign.report.verdict import power_table, verdict
from elign.stats import BootstrapSettings, statistics_table


def _dft(ids, force, energy):
    return pd.DataFrame(
        {"mol_id": ids, "status": "ok", "force_rms_ev_per_ang": force, "formation_energy_per_atom_ev": energy}
    )


def _statistics(force_shift: float, energy_shift: float, paired=True) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 40
    ids = np.arange(n) * 3
    force = np.abs(rng.normal(3.0, 1.4, n))
    energy = rng.normal(-3.8, 0.2, n)
    dft = {
        "pretrained": _dft(ids, force, energy),
        "aligned": _dft(
            ids, force + force_shift + rng.normal(0, 0.3, n), energy + energy_shift + rng.normal(0, 0.02, n)
        ),
    }
    bs = BootstrapSettings(n_resamples=500, seed=1)
    return statistics_table({}, dft, "pretrained", bs, paired_models=["aligned"] if paired else [])


def test_a_clear_paired_change_is_said_with_its_size_interval_and_p():
    text = verdict(_statistics(-0.4, 0.0), "pretrained", 0.95)
    first, second = text.split(". ", 1)
    assert first.startswith("At the DFT level, aligned against pretrained: DFT force RMS is")
    assert "eV/Å lower" in first and "95 % interval [" in first and "40 pairs of the same molecules" in first
    assert "paired p < 0.0001" in first
    assert second.startswith("DFT formation energy per atom shows no clear change")
    assert "would detect a change of" in second and "80 % power" in second
    assert text.count(".") >= 2 and len(text.split(". ")) == 2  # two sentences


def test_unpaired_rows_say_their_molecules_differ_and_no_rows_say_so():
    text = verdict(_statistics(-0.4, 0.0, paired=False), "pretrained", 0.95)
    assert "Welch" in text and "different molecules of the same sizes" in text and "would detect" not in text
    assert verdict(None, "pretrained", 0.95).startswith("No DFT verdict")


def test_the_power_table_and_the_headline_give_pairs_and_the_detectable_difference():
    stats = _statistics(-0.4, 0.0)
    power = power_table(stats, "pretrained")
    assert power["pairs used"].tolist() == [40, 40, 40]  # formation energy, force RMS, converged
    force = power.set_index("metric").loc["DFT force RMS (eV/Å)"]
    row = stats.set_index("metric").loc["dft_force_rms_ev_per_ang"]
    assert force["detectable difference"] == f"{num(row['detectable_diff'], 3)} at 80 % power"
    assert force["SD of paired differences"] == num(row["paired_sd"], 3)
    table = pd.DataFrame({"model": ["pretrained", "aligned"], "dft_force_rms_ev_per_ang_mean": [3.0, 2.6]})
    h = build_headline(table, stats, None, "pretrained", 0.95)
    cell = h.cells[1][[c.key for c in COLUMNS].index("dft_force_rms_ev_per_ang_mean")]
    assert cell.p.endswith("‡") and cell.power.startswith("40 pairs, detects ")
    assert power_table(_statistics(-0.4, 0.0, paired=False), "pretrained") is None
