"""Worker processes for the ``gfn2-xtb`` backend: many molecules in parallel, a time limit per molecule.

tblite computes one molecule per call, in compiled code that a Python signal cannot interrupt. So
:class:`XTBPool` keeps ``workers`` child processes (``xtb_worker.py``, a fresh interpreter each: no fork of
a torch/OpenMP-threaded parent) with one OpenMP thread each, hands each idle child the next molecule, and
waits for whichever answers first. A molecule still running after ``time_limit_s`` gets a ``timeout``
result and its child is stopped (SIGTERM, then SIGKILL) and replaced (a result that has arrived is kept,
even if a busy parent reads it late); a child that dies (e.g. out of memory) gives a ``died`` result with
its exit code. Children start once and serve every later call (start-up and the tblite import happen before
any clock starts); they stop on :meth:`XTBPool.close`, when the pool is garbage collected, at interpreter
exit, or (Linux) when the parent dies. The process and pipe handling is :mod:`elign.io.child_process`, shared
with the DFT worker.
"""

from __future__ import annotations

import subprocess
import sys
import time
import weakref
from collections import deque
from multiprocessing.connection import wait
from pathlib import Path

from elign.io.child_process import ChildProcess, WorkerStartError, child_env

__all__ = ["WorkerStartError", "XTBPool"]

WORKER_SCRIPT = Path(__file__).with_name("xtb_worker.py")
START_TIMEOUT_S = 120.0  # interpreter start + numpy/tblite import; ~0.2 s when idle, far more on a loaded node


def _start_child(settings: dict) -> ChildProcess:
    """A tblite child with one thread, sent its settings (it says ready once tblite is imported)."""
    cmd = [sys.executable, "-P", str(WORKER_SCRIPT)]
    child = ChildProcess(cmd, child_env(1), stdout=subprocess.DEVNULL)
    child.outbox.send(settings)
    return child


def _stop_all(children: list[ChildProcess]) -> None:
    while children:
        children.pop().stop(graceful_wait_s=5)


class XTBPool:
    """``workers`` tblite child processes; :meth:`run` maps jobs to results within ``time_limit_s`` each.

    A job is ``(numbers (N,), positions_bohr (N, 3), charge, uhf)``. A result is
    ``(kind, energy_ha, gradient_ha_per_bohr or None, message, seconds)`` with kind ``"ok"``, a tblite
    exception name, ``"timeout"`` or ``"died"`` (see ``xtb_worker.py``).
    """

    def __init__(self, workers: int, time_limit_s: float, settings: dict) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if not time_limit_s > 0:
            raise ValueError(f"time_limit_s must be > 0, got {time_limit_s}")
        self.workers, self.time_limit_s, self.settings = int(workers), float(time_limit_s), dict(settings)
        self._children: list[ChildProcess] = []
        self.restarts = 0
        self._finalizer = weakref.finalize(self, _stop_all, self._children)

    def _fill(self, busy: dict) -> None:
        """Replace idle children that have exited, then start children up to ``workers`` (all, then wait)."""
        for child in [c for c in self._children if c not in busy and c.proc.poll() is not None]:
            self._replace(child, died=True)
        new = [_start_child(self.settings) for _ in range(self.workers - len(self._children))]
        self._children.extend(new)
        for child in new:
            if not child.wait_ready(START_TIMEOUT_S):
                code = child.stop()
                self._children.remove(child)
                raise WorkerStartError(
                    f"a gfn2-xtb worker ({WORKER_SCRIPT.name}) did not start within {START_TIMEOUT_S:g} s "
                    f"(exit code {code}); is tblite installed (pip install tblite)? See stderr above"
                )

    def run(self, jobs: list[tuple]) -> list[tuple]:
        """Results of ``jobs`` in job order (each molecule to the next idle child, whichever answers first)."""
        results: list[tuple | None] = [None] * len(jobs)
        todo = deque(range(len(jobs)))
        busy: dict[ChildProcess, tuple[int, float]] = {}  # child -> (job index, start time)
        while todo or busy:
            self._fill(busy)
            for child in list(self._children):
                if todo and child not in busy:
                    try:
                        child.outbox.send(jobs[todo[0]])
                    except OSError:  # it exited since _fill: the job waits for the next round
                        self._replace(child, died=True)
                        continue
                    busy[child] = (todo.popleft(), time.perf_counter())
            if not busy:  # every idle child had exited: start fresh ones
                continue
            now = time.perf_counter()
            deadline = min(start + self.time_limit_s for _, start in busy.values())
            ready = wait([child.inbox for child in busy], timeout=max(0.0, deadline - now))
            for child in [c for c in busy if c.inbox in ready]:
                k, start = busy.pop(child)
                try:
                    results[k] = child.inbox.recv()
                except (EOFError, OSError):
                    reason = self._replace(child, died=True)
                    results[k] = ("died", float("nan"), None, reason, time.perf_counter() - start)
            now = time.perf_counter()
            for child, (k, start) in list(busy.items()):
                if now - start >= self.time_limit_s:
                    del busy[child]
                    self._replace(child, died=False)
                    results[k] = (
                        "timeout",
                        float("nan"),
                        None,
                        f"no result within time_limit_s = {self.time_limit_s:g} s; the worker was stopped",
                        now - start,
                    )
        return results  # type: ignore[return-value]

    def _replace(self, child: ChildProcess, died: bool) -> str:
        """Stop ``child`` and drop it (the next round starts a fresh one); returns a reason if it had died."""
        code = child.stop()
        self._children.remove(child)
        self.restarts += 1
        return f"the gfn2-xtb worker process died (exit code {code}), e.g. out of memory" if died else ""

    def close(self) -> None:
        """Stop every child (they are started again by the next :meth:`run`)."""
        _stop_all(self._children)

    def pids(self) -> list[int]:
        """Process ids of the running children (for tests and logs)."""
        return [child.proc.pid for child in self._children]
