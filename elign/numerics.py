"""Reproducible CPU numerics: the same bits from the same commit and config on any x86-64 machine with AVX2.

PyTorch and the math libraries it calls pick their kernels for the CPU they find. Different kernels round
differently, and FED-GRPO amplifies that, because each update changes what the next rollouts sample. We
measured it here (AMD EPYC with AVX-512, one thread, 2 FED-GRPO iterations of the default config from the
shipped backbone; bench/cpu_numerics.py): two runs in the same environment gave identical weights; with
ATen's kernels limited to AVX2 the weights differed by up to 1.6e-5 (a row softmax alone already rounds
differently with 8- and 16-wide lanes), and with MKL's and oneDNN's paths pinned too by up to 4.0e-5. So a
machine of the same kind with another CPU trains another aligned model, and 40 iterations turn such
round-off into a different sample of the reward landscape. Pinned, every x86-64 CPU with AVX2 runs the same
kernels (ATen's AVX2 build; MKL documents the same results for its AVX2 path on any CPU that has it), so
the same commit and config should give the same bits on each, given the same thread counts (the workflow
fixes each rule's). We could check this on one CPU model only (tests/test_numerics.py).

:func:`pin_cpu_numerics` runs before ``torch`` is imported (``elign`` calls it first) and sets, unless the
user already set them:

* ``ATEN_CPU_CAPABILITY=avx2``: ATen's vectorised CPU kernels use their AVX2 build (PyTorch docs, "CPU
  threading and TorchScript inference" / ``torch.backends.cpu.get_cpu_capability``);
* ``MKL_CBWR=AVX2,STRICT``: Intel MKL's Conditional Numerical Reproducibility, i.e. the AVX2 code path on
  every CPU that has it, independent of memory alignment (Intel oneMKL Developer Guide, "Obtaining Numerically
  Reproducible Results");
* ``ONEDNN_MAX_CPU_ISA=AVX2``: oneDNN's kernels the same (oneDNN docs, "CPU Dispatcher Control");
* ``OPENBLAS_CORETYPE=Haswell``: the OpenBLAS that numpy and scipy ship (built ``DYNAMIC_ARCH``, used by
  PySCF and the DFT stage) takes its AVX2 (Haswell) kernels instead of this CPU's (OpenBLAS README,
  "Runtime CPU detection").

``ELIGN_CPU_NUMERICS=native`` turns this off: the fastest kernels of this CPU, with bits that depend on it.
The price of pinning, measured here (bench/sampling.py, small_cpu, batch 64, one thread, interleaved runs on
a loaded machine): sampling at 0.92-0.99 molecules/s pinned against 1.19-1.27 native, about 20 % slower,
nearly all of it from ATen's AVX2 kernels (ATen alone: 0.95; MKL's or oneDNN's pin alone: no change).
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

MODE_VARIABLE = "ELIGN_CPU_NUMERICS"
MODES = ("avx2", "native")
#: what ``avx2`` mode sets (each only where the environment does not set it already)
AVX2_ENVIRONMENT = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "AVX2,STRICT",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "OPENBLAS_CORETYPE": "Haswell",
}


def pin_cpu_numerics(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set the kernel-selection variables for ``ELIGN_CPU_NUMERICS`` (default ``avx2``); returns what it set.

    The libraries read these variables when they load, so this must run before ``torch`` and ``numpy`` are
    imported: in a process that has already imported them (e.g. a test calling ``elign.cli.main.main``) it
    changes nothing and returns {}. Raises ValueError for an unknown mode.
    """
    env = os.environ if environ is None else environ
    mode = env.get(MODE_VARIABLE, "avx2").strip().lower()
    if mode not in MODES:
        raise ValueError(f"{MODE_VARIABLE}={env[MODE_VARIABLE]!r}: expected one of {', '.join(MODES)}")
    if mode == "native" or (environ is None and ("torch" in sys.modules or "numpy" in sys.modules)):
        return {}
    changes = {k: v for k, v in AVX2_ENVIRONMENT.items() if k not in env}
    env.update(changes)
    return changes
