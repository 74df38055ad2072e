"""Run DFT jobs in a child process with a per-job time limit.

PySCF spends its time in C/OpenMP code that a Python signal cannot interrupt, so a watchdog thread cannot
stop a runaway SCF. :class:`DftWorker` keeps one child process (``python -m elign.dft.worker``, a fresh
interpreter: no fork of an OpenMP-threaded parent, and no re-import of the caller's ``__main__`` as
multiprocessing's spawn would do) that runs jobs one at a time; jobs and results travel pickled over two
pipes. The parent waits ``time_limit_s`` (the stage's wall-clock safety net ``dft.safety_time_limit_s``)
for each result; past it, the child is terminated (SIGTERM, then SIGKILL), the job becomes a ``timeout`` row,
and the next job starts a fresh child. A child that dies
(e.g. out of memory) gives an ``error`` row with its exit code. Python start-up and the PySCF import
happen before the clock starts (the child says "ready" first). On Linux the child asks for SIGTERM when
its parent dies (``PR_SET_PDEATHSIG``), so a killed shard leaves no orphan computing. The process and pipe
handling is :mod:`elign.io.child_process`, shared with the gfn2-xtb pool.

Threads: the child gets OMP_NUM_THREADS / OPENBLAS_NUM_THREADS / MKL_NUM_THREADS = ``threads`` in its
environment (so numpy's BLAS obeys too) and calls ``pyscf.lib.num_threads(threads)``. It also gets
OMP_WAIT_POLICY=PASSIVE unless the caller set one: on a node whose cores are shared, spinning OpenMP
threads made a 2-thread formaldehyde single point 1.7-2.4x slower than with sleeping ones (measured).
"""

from __future__ import annotations

import sys
import time

from elign.dft.level import DftLevel
from elign.io.child_process import (
    ChildProcess,
    WorkerStartError,
    child_connections,
    child_env,
    die_with_parent,
    serve,
)

START_TIMEOUT_S = 300.0


def execute(job: tuple) -> dict:
    """Run one job in this process: ("molecule", Z (N,), positions_ang (N, 3), level, init_guess),
    ("atom", Z, spin, level, init_guess) or ("relax", Z (N,), positions_ang (N, 3), level, max_steps)."""
    from elign.dft import pyscf_runner

    kind, *args = job
    if kind == "molecule":
        return pyscf_runner.single_point(*args)
    if kind == "atom":
        return pyscf_runner.atom_energy(*args)
    if kind == "relax":
        from elign.dft.relax import relax

        return relax(*args)
    raise ValueError(f"unknown job kind {kind!r}")


def _answer(job: tuple) -> dict:
    """The result row of one job with its ``seconds``; an exception becomes an ``error`` row."""
    t0 = time.perf_counter()
    try:
        result = execute(job)
    except Exception as exc:  # a bug or odd input must become a row, not a dead worker
        result = {"status": "error", "reason": f"{type(exc).__name__}: {exc}"}
    result["seconds"] = time.perf_counter() - t0
    return result


class DftWorker:
    """A child process running DFT jobs one at a time, each within ``time_limit_s``.

    Use as a context manager (or call :meth:`close`). :meth:`run` always returns a dict with ``status``,
    ``reason`` and ``seconds``.
    """

    def __init__(self, threads: int = 1, time_limit_s: float = 1800.0):
        self.threads = max(1, int(threads))
        self.time_limit_s = float(time_limit_s)
        self._child: ChildProcess | None = None
        self._proc_exitcode = None
        self.restarts = 0

    def __enter__(self) -> DftWorker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> None:
        env = child_env(self.threads)
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle OpenMP threads sleep: far faster on shared cores
        cmd = [sys.executable, "-m", "elign.dft.worker"]
        self._child = ChildProcess(cmd, env, extra_args=(str(self.threads),))
        if not self._child.wait_ready(START_TIMEOUT_S):
            self._stop()
            raise WorkerStartError(
                f"the DFT worker process did not start within {START_TIMEOUT_S:g} s "
                f"(exit code {self._proc_exitcode}); see its stderr above"
            )

    def run(self, job: tuple, time_limit_s: float | None = None) -> dict:
        """Result of ``job`` (see :func:`execute`), a ``timeout`` row past the limit (``time_limit_s``, None =
        the worker's), or an ``error`` row."""
        limit_s = self.time_limit_s if time_limit_s is None else float(time_limit_s)
        if self._child is None or not self._child.running():
            self._start()
        t0 = time.perf_counter()
        died = False
        try:
            self._child.outbox.send(job)
            if self._child.inbox.poll(limit_s):
                return self._child.inbox.recv()
        except (EOFError, OSError):
            died = True
        seconds = time.perf_counter() - t0
        self._stop()
        self.restarts += 1
        if not died:
            return {
                "status": "timeout",
                "seconds": seconds,
                "reason": f"no result within the wall-clock safety net (dft.safety_time_limit_s = "
                f"{self.time_limit_s:g} s{'' if limit_s == self.time_limit_s else f' per step: {limit_s:g} s'}; "
                "machine-dependent, unlike the SCF cycle and step caps); the worker was stopped",
            }
        return {
            "status": "error",
            "seconds": seconds,
            "reason": f"the DFT worker process died (exit code {self._proc_exitcode}), e.g. out of memory",
        }

    def _stop(self, graceful_wait_s: float | None = None) -> None:
        child, self._child = self._child, None
        if child is not None:
            self._proc_exitcode = child.stop(graceful_wait_s)

    def close(self) -> None:
        """Ask the child to finish (then stop it if it does not)."""
        self._stop(graceful_wait_s=10)


def _child_main(argv: list[str]) -> None:
    """Child main: import PySCF, say ready, then answer jobs until None (or the parent's end)."""
    die_with_parent()
    jobs, results, (threads,) = child_connections(argv)
    from pyscf import lib

    lib.num_threads(int(threads))
    results.send("ready")
    serve(jobs, results, _answer)


def atom_solver(worker: DftWorker, level: DftLevel, init_guess: str = "minao"):
    """An :data:`elign.dft.atoms.AtomSolver` running through ``worker``."""
    return lambda z, spin: worker.run(("atom", int(z), int(spin), level, init_guess))


if __name__ == "__main__":
    _child_main(sys.argv[1:])
