"""The FED-GRPO figure's collapse-watch row (rollout and fresh-sample validity, uniqueness, stability)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from elign.report.plots import FINETUNE_PANELS, QUALITY_PANELS, plot_finetune


def _history(with_quality: bool) -> pd.DataFrame:
    it = np.arange(1, 7)
    frame = {"iteration": it, **{c: np.linspace(1, 0.5, it.size) for c, _ in FINETUNE_PANELS}}
    if with_quality:
        for key, _ in QUALITY_PANELS:
            frame[f"rollout_{key}"] = np.linspace(0.9, 0.7, it.size)
            frame[f"eval_{key}"] = np.where(it % 3 == 0, 0.8, np.nan)  # evaluated after iterations 3 and 6
        frame["eval_relaxation_energy_mean_kcal_mol"] = np.where(it % 3 == 0, 110.0, np.nan)
        frame["eval_force_rms_mean_ev_per_ang"] = np.where(it % 3 == 0, 2.5, np.nan)
    return pd.DataFrame(frame)


def test_quality_row_is_drawn_or_says_what_is_missing(tmp_path):
    assert plot_finetune(_history(True), tmp_path / "a.png", 60) == []
    assert (tmp_path / "a.png").stat().st_size > 0
    remarks = plot_finetune(_history(False), tmp_path / "b.png", 60)
    expected = [f"no values of rollout_{k} or eval_{k}" for k, _ in QUALITY_PANELS]
    assert remarks == [*expected, "no values of eval_relaxation_energy_mean_kcal_mol"]


def test_fresh_samples_sit_beside_the_rollouts_with_the_start_at_iteration_zero(tmp_path):
    """The evaluations (every eval_every iterations) are drawn where the history has them, and the start
    model's own evaluation at iteration 0: force RMS beside the rollouts', relaxation energy in its panel."""
    from unittest import mock

    from elign.report import plots

    start = {"eval_force_rms_mean_ev_per_ang": 2.6, "eval_relaxation_energy_mean_kcal_mol": 115.0}
    drawn = {}
    real = plots._series

    def spy(ax, frame, column, **style):
        ok = real(ax, frame, column, **style)
        if ok:
            line = ax.get_lines()[-1]
            drawn[column] = (list(line.get_xdata()), list(line.get_ydata()))
        return ok

    with mock.patch.object(plots, "_series", spy):
        assert plot_finetune(_history(True), tmp_path / "c.png", 60, start=start) == []
    assert drawn["eval_force_rms_mean_ev_per_ang"] == ([0.0, 3.0, 6.0], [2.6, 2.5, 2.5])
    assert drawn["eval_relaxation_energy_mean_kcal_mol"] == ([0.0, 3.0, 6.0], [115.0, 110.0, 110.0])
    assert drawn["eval_validity"] == ([3.0, 6.0], [0.8, 0.8])  # start has no validity: nothing at 0
    assert len(drawn["rollout_validity"][0]) == 6
