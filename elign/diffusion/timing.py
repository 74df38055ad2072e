"""Sampling time of several models on equal work, measured in one process with interleaved repeats.

Sampling jobs of a workflow run beside other jobs (finetuning, DFT), so their own wall times differ by
more than the models do. The fair comparison times every model on the *same* batch (same atom counts,
same seed) in one process, round-robin (A B C, B C A, C A B, ...), so slow phases of a shared
machine hit every model alike and none always runs first. Each rep runs ``steps`` reverse steps of
:func:`sample_batch` from t = T (after one warm-up rep per model), extrapolated linearly to T steps.

The paired ratio of model M to the baseline is the median over reps of time(M, r) / time(base, r).

A hook that acts on only a fraction f of the T steps (MLFF guidance with a window, t ≤ max_t) is timed
running at every timed step, and the full chain is the mix: per step f·hooked + (1 − f)·plain, with the
plain step timed on the baseline (the guided model is the baseline's network with a hook), so the paired
ratio is f·time(M, r)/time(base, r) + (1 − f).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from elign.diffusion.en_diffusion import EnVariationalDiffusion
from elign.diffusion.sampler import StepHook, sample_batch

__all__ = ["TimedModel", "time_models"]


@dataclass
class TimedModel:
    """A model to time and its step hook (e.g. MLFF guidance; None for plain sampling)."""

    model: EnVariationalDiffusion
    hook: StepHook | None = None
    reps_s: list[float] = field(default_factory=list)
    hook_fraction: float = 1.0  # share of the T steps at which the hook acts (timed acting at every step)


def _one_rep(timed: TimedModel, sizes: Sequence[int], steps: int, seed: int) -> float:
    device = next(timed.model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    t0 = time.perf_counter()
    with torch.inference_mode():
        batch = sample_batch(timed.model, sizes, gen, timed.hook, n_steps=steps)
        batch.z0.sum().item()  # synchronise (CUDA)
    return time.perf_counter() - t0


def time_models(
    models: Mapping[str, TimedModel],
    sizes: Sequence[int],
    steps: int,
    reps: int,
    seed: int = 0,
    baseline: str | None = None,
) -> dict:
    """Time ``steps`` reverse steps of a batch of ``sizes`` for every model, ``reps`` interleaved rounds.

    Returns {"models": {name: {seconds_per_step, seconds_per_molecule (full chain of T steps), reps_s,
    molecules, steps_timed, diffusion_steps}}, "ratio_vs_<baseline>": {name: median paired ratio},
    "ratio_spread": {name: [min, max] of the paired ratios}}. The baseline defaults to the first model.
    """
    if not models:
        raise ValueError("no models to time")
    if reps < 1 or steps < 1:
        raise ValueError(f"reps and steps must be >= 1, got reps={reps}, steps={steps}")
    names = list(models)
    baseline = baseline or names[0]
    if baseline not in models:
        raise ValueError(f"baseline {baseline!r} is not one of the timed models {names}")
    for name in names:  # warm-up: allocator, graph caches, MLFF first call
        _one_rep(models[name], sizes, 1, seed)
    for r in range(reps):  # the order rotates each round, so no model always runs first (warm caches)
        for name in names[r % len(names) :] + names[: r % len(names)]:
            models[name].reps_s.append(_one_rep(models[name], sizes, steps, seed))
    out: dict = {"models": {}, f"ratio_vs_{baseline}": {}, "ratio_spread": {}}
    base = np.asarray(models[baseline].reps_s)
    for name in names:
        timed = models[name]
        f = timed.hook_fraction if timed.hook is not None else 1.0
        if not 0.0 <= f <= 1.0:
            raise ValueError(f"hook_fraction of {name!r} must be in [0, 1], got {f}")
        reps_s = np.asarray(timed.reps_s)
        per_step = (f * float(np.median(reps_s)) + (1 - f) * float(np.median(base))) / steps
        out["models"][name] = {
            "seconds_per_step": per_step,
            "seconds_per_molecule": per_step * timed.model.T / len(sizes),
            "reps_s": [float(v) for v in reps_s],
            "molecules": len(sizes),
            "steps_timed": int(steps),
            "diffusion_steps": int(timed.model.T),
            "hook_fraction": f,
        }
        ratios = f * reps_s / base + (1 - f)
        out[f"ratio_vs_{baseline}"][name] = float(np.median(ratios))
        out["ratio_spread"][name] = [float(ratios.min()), float(ratios.max())]
    return out
