"""Does FED-GRPO give the same bits on another CPU? Kernel selection against reproducibility, and its cost.

Runs ``elign finetune`` (the default config, ``--iterations`` iterations, one thread) from the shipped backbone
in fresh processes under different kernel selections, then compares the aligned weights bit for bit and
reports each run's wall time:

* ``native`` twice (``ELIGN_CPU_NUMERICS=native``: this CPU's fastest kernels): is a rerun identical here?
* ``native, ATen AVX2``: what a CPU without AVX-512 would run, as far as ATen decides;
* ``pinned`` (elign's default, :mod:`elign.numerics`) and ``pinned, MKL limited to AVX2``
  (``MKL_ENABLE_INSTRUCTIONS=AVX2``, what MKL sees on an AVX2-only CPU): identical when pinning works.

    .venv/bin/python bench/cpu_numerics.py [--iterations 2] [--repeats 1]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VARIANTS = {
    "native": {"ELIGN_CPU_NUMERICS": "native"},
    "native (rerun)": {"ELIGN_CPU_NUMERICS": "native"},
    "native, ATen AVX2": {"ELIGN_CPU_NUMERICS": "native", "ATEN_CPU_CAPABILITY": "avx2"},
    "pinned": {},
    "pinned, MKL limited to AVX2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2"},
}


def elign(*args: str, env: dict[str, str] | None = None) -> None:
    exe = Path(sys.executable).with_name("elign")
    subprocess.run([str(exe), *args], cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finetune(work: Path, name: str, extra_env: dict[str, str], iterations: int, model: Path) -> tuple[Path, float]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "ATEN_CPU_CAPABILITY",
            "MKL_CBWR",
            "ONEDNN_MAX_CPU_ISA",
            "MKL_ENABLE_INSTRUCTIONS",
            "ELIGN_CPU_NUMERICS",
        )
    }
    env.update(extra_env, OMP_NUM_THREADS="1")
    out = work / name.replace(" ", "_").replace(",", "") / "aligned.pt"
    t0 = time.perf_counter()
    elign(
        "finetune",
        "--config",
        "config/config.yaml",
        "--config-json",
        f'{{"finetune": {{"iterations": {iterations}}}}}',
        "--model",
        str(model),
        "--stats",
        "results/data/qm9/stats.json",
        "--out",
        str(out),
        "--threads",
        "1",
        "--no-progress",
        env=env,
    )
    return out, time.perf_counter() - t0


def max_difference(a: Path, b: Path) -> float:
    import torch

    wa = torch.load(a, weights_only=False, map_location="cpu")["state_dict"]
    wb = torch.load(b, weights_only=False, map_location="cpu")["state_dict"]
    return max(float((wa[k].double() - wb[k].double()).abs().max()) for k in wa if wa[k].is_floating_point())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=2)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = work / "pretrained.pt"
        elign("pretrain", "--config", "config/config.yaml", "--data-dir", "results/data/qm9", "--out", str(model))
        runs = {name: finetune(work, name, env, args.iterations, model) for name, env in VARIANTS.items()}
        print(
            f"FED-GRPO, default config, {args.iterations} iterations, 1 thread; max |Δweight| against 'native'"
            " and against 'pinned':"
        )
        for name, (out, seconds) in runs.items():
            print(
                f"  {name:30s} {seconds:6.1f} s   vs native {max_difference(runs['native'][0], out):.2e}"
                f"   vs pinned {max_difference(runs['pinned'][0], out):.2e}"
            )


if __name__ == "__main__":
    main()
