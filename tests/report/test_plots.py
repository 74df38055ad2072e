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
    return pd.DataFrame(frame)


def test_quality_row_is_drawn_or_says_what_is_missing(tmp_path):
    assert plot_finetune(_history(True), tmp_path / "a.png", 60) == []
    assert (tmp_path / "a.png").stat().st_size > 0
    remarks = plot_finetune(_history(False), tmp_path / "b.png", 60)
    assert remarks == [f"no values of rollout_{k} or eval_{k}" for k, _ in QUALITY_PANELS]
