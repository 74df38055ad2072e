"""Pinned CPU kernels: what elign sets before torch loads, and that MKL's choice then no longer matters."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from elign.numerics import AVX2_ENVIRONMENT, MODE_VARIABLE, pin_cpu_numerics

X86_AVX2 = platform.machine() in ("x86_64", "AMD64") and "avx2" in open("/proc/cpuinfo").read()


def test_pin_sets_only_what_the_user_left_unset():
    env = {"MKL_CBWR": "COMPATIBLE"}
    changes = pin_cpu_numerics(env)
    assert env["MKL_CBWR"] == "COMPATIBLE" and "MKL_CBWR" not in changes
    assert env["ATEN_CPU_CAPABILITY"] == "avx2" and env["OPENBLAS_CORETYPE"] == "Haswell"
    assert set(changes) == set(AVX2_ENVIRONMENT) - {"MKL_CBWR"}
    native = {MODE_VARIABLE: "native"}
    assert pin_cpu_numerics(native) == {} and native == {MODE_VARIABLE: "native"}
    with pytest.raises(ValueError, match="ELIGN_CPU_NUMERICS='fast': expected one of avx2, native"):
        pin_cpu_numerics({MODE_VARIABLE: "fast"})


def test_in_a_process_that_has_torch_it_changes_nothing(monkeypatch):
    import torch  # noqa: F401

    for key in AVX2_ENVIRONMENT:
        monkeypatch.delenv(key, raising=False)
    assert pin_cpu_numerics() == {} and not any(k in os.environ for k in AVX2_ENVIRONMENT)


# A computation whose bits depend on the kernels: float32 matmuls (MKL) and a row softmax, whose vectorised
# reduction rounds differently with 8-wide (AVX2) and 16-wide (AVX-512) lanes (measured here).
_PROBE = """
import hashlib, sys
from elign.numerics import pin_cpu_numerics
pin_cpu_numerics()
import torch
torch.set_num_threads(1)
g = torch.Generator().manual_seed(0)
x = torch.randn(4000, 130, generator=g)
y = torch.softmax(x @ torch.randn(130, 130, generator=g), dim=1)
print(torch.backends.cpu.get_cpu_capability(), hashlib.sha256(y.numpy().tobytes()).hexdigest())
"""


def _probe(**env: str) -> tuple[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in AVX2_ENVIRONMENT and k != MODE_VARIABLE}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], env={**base, **env}, capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0], out[1]


@pytest.mark.skipif(not X86_AVX2, reason="pinning targets x86-64 CPUs with AVX2")
def test_pinned_kernels_are_the_avx2_ones_on_any_avx2_cpu():
    """One CPU cannot show another's bits; this checks the mechanism: the pinned process runs ATen's AVX2
    kernels (what every AVX2 CPU has), MKL limited to AVX2 changes nothing, and where this CPU has AVX-512 its
    native kernels give other bits (so without the pin, results would follow the CPU)."""
    capability, pinned = _probe()
    assert capability == "AVX2"
    assert _probe(MKL_ENABLE_INSTRUCTIONS="AVX2") == (capability, pinned)
    native_capability, native = _probe(**{MODE_VARIABLE: "native"})
    if native_capability == "AVX512":
        assert native != pinned
