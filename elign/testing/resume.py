"""Test scaffolding of the resume guarantee: run a training in a child process, SIGKILL it mid-run.

Pretraining and FED-GRPO share one checkpoint/resume implementation (:mod:`elign.training.checkpointing`)
and their tests share this: the child writes ``marker`` from its step callback once it is past a
checkpoint and then sleeps; the test checks the resume file while the child is held there, the child is
killed with SIGKILL (no cleanup runs), and the test resumes the run in its own process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch


@contextmanager
def killed_at_marker(
    argv: Sequence[str], marker: Path, what: str, cwd: Path, timeout_s: float = 120.0
) -> Iterator[subprocess.Popen]:
    """Start ``argv``; once it writes ``marker``, yield (the child is held), then SIGKILL it.

    what: the child's name in the failure messages (e.g. ``"training subprocess"``).
    """
    proc = subprocess.Popen(list(argv), cwd=cwd)
    try:
        deadline = time.monotonic() + timeout_s
        while not marker.exists():
            assert proc.poll() is None, f"{what} died"
            assert time.monotonic() < deadline, f"{what} did not reach {marker.name}"
            time.sleep(0.05)
        yield proc
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()


def assert_same_training_state(a: Path, b: Path) -> tuple[dict, dict]:
    """Assert that two checkpoints hold bit-identical weights, EMA weights and optimizer state (what a
    resumed run must reach); returns their ``extra`` dicts for the stage's own checks."""
    from elign.diffusion.checkpoint import load_checkpoint

    ca, cb = load_checkpoint(a), load_checkpoint(b)
    for key in ("state_dict", "ema_state_dict"):
        assert ca[key].keys() == cb[key].keys()
        for name in ca[key]:
            assert torch.equal(ca[key][name], cb[key][name]), f"{key}.{name} differs"
    oa, ob = ca["extra"]["optimizer"]["state"], cb["extra"]["optimizer"]["state"]
    assert oa.keys() == ob.keys()
    for i in oa:
        for k in oa[i]:
            assert torch.equal(oa[i][k], ob[i][k]), f"optimizer state {i}.{k} differs"
    return ca["extra"], cb["extra"]
