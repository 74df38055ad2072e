"""The FED-GRPO learning-rate schedule (``finetune.lr_schedule``), as a function of the optimizer step.

``cosine`` reproduces the official Elign code's ``get_cosine_schedule_with_warmup`` (with its ``min_lr_ratio``
floor), which a ``LambdaLR`` applies so that optimizer step k (0-based) runs at lr·f(k)::

    f(k) = k / W                                             for k < W (the first step runs at lr 0)
    f(k) = max(0, r + (1 − r)·½·(1 + cos(2π·c·p)))           p = (k − W) / max(1, S − W)

with W = ``warmup_steps``, S = ``total_steps``, r = ``min_lr_ratio``, c = ``num_cycles``. As there, p is not
clamped: with c = ½ the rate falls from lr to r·lr at k = S and rises again after it. The official QM9
paper config runs 100 iterations × 24 optimizer steps = 2,400 steps on S = 1,500, so its rate comes back to
about 0.78·lr by the end; we keep that, to reproduce the run as published.

The factor depends only on the step count, which the trainer keeps in its checkpoint: a resumed run sets the
same rates as an uninterrupted one.
"""

from __future__ import annotations

import math

__all__ = ["lr_factor", "learning_rate"]


def lr_factor(step: int, schedule) -> float:
    """f(step) of :class:`elign.config.FinetuneLrSchedule` ``schedule`` (module doc)."""
    if schedule.kind == "constant":
        return 1.0
    warmup, total = int(schedule.warmup_steps), int(schedule.total_steps)
    if step < warmup:
        return float(step) / float(max(1, warmup))
    progress = float(step - warmup) / float(max(1, total - warmup))
    ratio = float(schedule.min_lr_ratio)
    cosine = math.cos(math.pi * float(schedule.num_cycles) * 2.0 * progress)
    return max(0.0, ratio + (1.0 - ratio) * 0.5 * (1.0 + cosine))


def learning_rate(step: int, lr: float, schedule) -> float:
    """The learning rate of optimizer step ``step`` (0-based)."""
    return float(lr) * lr_factor(step, schedule)
