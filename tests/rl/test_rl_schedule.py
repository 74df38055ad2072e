"""The FED-GRPO learning-rate schedule against the official code's closed form."""

from __future__ import annotations

import math

import pytest

from elign.config import FinetuneLrSchedule
from elign.rl.schedule import learning_rate, lr_factor

PAPER = FinetuneLrSchedule(kind="cosine", warmup_steps=60, total_steps=1500, min_lr_ratio=0.3, num_cycles=0.5)


def _official(step: int, warmup=60, total=1500, min_ratio=0.3, cycles=0.5) -> float:
    """get_cosine_schedule_with_warmup's lambda as the official code writes it (coef / intercept form)."""
    if step < warmup:
        return step / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    x = math.cos(math.pi * cycles * 2.0 * progress)
    return max(0.0, x * (1 - min_ratio) * 0.5 + (1 + min_ratio) * 0.5)


@pytest.mark.parametrize("step", [0, 1, 30, 59, 60, 61, 780, 1499, 1500, 1501, 2000, 2399])
def test_cosine_matches_the_official_lambda(step):
    assert lr_factor(step, PAPER) == pytest.approx(_official(step), rel=1e-12, abs=1e-15)


def test_landmarks_of_the_paper_schedule():
    assert lr_factor(0, PAPER) == 0.0  # the first optimizer step runs at lr 0 (LambdaLR at step 0)
    assert lr_factor(30, PAPER) == pytest.approx(0.5)
    assert lr_factor(60, PAPER) == pytest.approx(1.0)
    assert lr_factor(780, PAPER) == pytest.approx(0.65)  # half-way down: (1 + 0.3) / 2
    assert lr_factor(1500, PAPER) == pytest.approx(0.3)  # the floor at total_steps
    # not clamped past total_steps (as in the official code): 100 iterations x 24 steps end near 0.78
    assert lr_factor(2399, PAPER) == pytest.approx(0.3 + 0.7 * 0.5 * (1 + math.cos(math.pi * 2339 / 1440)))
    assert lr_factor(2399, PAPER) > 0.75
    assert learning_rate(780, 4e-6, PAPER) == pytest.approx(2.6e-6)


def test_constant_is_one_everywhere():
    constant = FinetuneLrSchedule()
    assert {lr_factor(k, constant) for k in (0, 1, 10**6)} == {1.0}


def test_cosine_needs_total_after_warmup():
    with pytest.raises(ValueError, match="total_steps"):
        FinetuneLrSchedule(kind="cosine", warmup_steps=10, total_steps=10)
