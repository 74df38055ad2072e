"""polynomial_2 noise schedule with EDM's precision clipping, checked against an independent formula."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from elign.diffusion.schedules import PredefinedNoiseSchedule, gamma_table

REF = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "edm"


def reference_gamma(T: int, s: float, power: float) -> list[float]:
    """Hoogeboom et al. 2022, App. B, written out term by term in plain Python floats."""
    f = []
    for i in range(T + 1):
        x = i * (T + 1) / T  # numpy.linspace(0, T + 1, T + 1)
        f.append((1 - (x / (T + 1)) ** power) ** 2)
    alpha2, prev, acc = [], 1.0, 1.0
    for v in f:  # clip the step ratio alpha²_t / alpha²_{t-1} to [0.001, 1], re-accumulate
        acc *= min(max(v / prev, 0.001), 1.0)
        prev = v
        alpha2.append((1 - 2 * s) * acc + s)
    return [-(math.log(a) - math.log(1 - a)) for a in alpha2]


@pytest.mark.parametrize("T,s", [(1000, 1e-5), (50, 1e-4)])
def test_polynomial_2_matches_formula(T, s):
    ours = gamma_table("polynomial_2", T, s)
    ref = np.array(reference_gamma(T, s, 2.0))
    assert ours.shape == (T + 1,)
    assert np.abs(ours - ref).max() / np.abs(ref).max() < 1e-12


def test_schedule_is_monotone_and_bounded():
    g = gamma_table("polynomial_2", 1000, 1e-5)
    assert np.all(np.diff(g) > 0)
    assert abs(g[0] - math.log(1e-5 / (1 - 1e-5))) < 1e-9  # alpha²_0 = 1 - s: sigma²_0 = s
    assert g[-1] > 11  # nearly pure noise at t = T


def test_clipping_is_active_at_the_end():
    """Without clipping the last step ratio would be 0; EDM clips it to 0.001 (then precision shifts it)."""
    T, s = 1000, 1e-5
    alpha2 = 1 / (1 + np.exp(gamma_table("polynomial_2", T, s)))
    raw = (alpha2 - s) / (1 - 2 * s)
    assert raw[-1] / raw[-2] == pytest.approx(0.001, rel=1e-6)


def test_table_lookup_and_float32_storage():
    sched = PredefinedNoiseSchedule("polynomial_2", 1000, 1e-5)
    g64 = torch.from_numpy(gamma_table("polynomial_2", 1000, 1e-5))
    assert torch.equal(sched.gamma, g64.float().double())  # EDM keeps the table as float32
    t = torch.tensor([0.0, 0.0004, 0.0006, 0.7, 1.0], dtype=torch.float64)
    assert torch.equal(sched(t), sched.gamma[[0, 0, 1, 700, 1000]])
    exact = PredefinedNoiseSchedule("polynomial_2", 1000, 1e-5, edm_float32=False)
    assert torch.equal(exact.gamma, g64)


def test_rebuilt_table_equals_edm_stored_table():
    stored = torch.load(REF / "edm_small_generative_model.npy", weights_only=True)["gamma.gamma"]
    assert torch.equal(PredefinedNoiseSchedule("polynomial_2", 1000, 1e-5).gamma, stored.double())


def test_stored_table_is_used_and_shape_checked():
    table = torch.linspace(-5, 5, 11, dtype=torch.float64)
    sched = PredefinedNoiseSchedule("polynomial_2", 10, 1e-5, table=table)
    assert torch.equal(sched(torch.tensor([0.5])), table[[5]])
    with pytest.raises(ValueError, match="shape"):
        PredefinedNoiseSchedule("polynomial_2", 20, 1e-5, table=table)
    with pytest.raises(ValueError, match="unknown noise schedule"):
        PredefinedNoiseSchedule("learned", 10, 1e-5)
