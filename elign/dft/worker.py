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
its parent dies (``PR_SET_PDEATHSIG``), so a killed shard leaves no orphan computing.

Threads: the child gets OMP_NUM_THREADS / OPENBLAS_NUM_THREADS / MKL_NUM_THREADS = ``threads`` in its
environment (so numpy's BLAS obeys too) and calls ``pyscf.lib.num_threads(threads)``. It also gets
OMP_WAIT_POLICY=PASSIVE unless the caller set one: on a node whose cores are shared, spinning OpenMP
threads made a 2-thread formaldehyde single point 1.7-2.4x slower than with sleeping ones (measured).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path

from elign.dft.level import DftLevel

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
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


def _die_with_parent() -> None:
    """Linux: SIGTERM this process when its parent dies (prctl PR_SET_PDEATHSIG); elsewhere nothing."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _serve(conn, threads: int) -> None:
    """Child main loop: import PySCF, say ready, then answer jobs until None (or the parent's end)."""
    from pyscf import lib

    lib.num_threads(threads)
    conn.send("ready")
    while True:
        try:
            job = conn.recv()
        except EOFError:  # the parent went away
            break
        if job is None:
            break
        t0 = time.perf_counter()
        try:
            result = execute(job)
        except Exception as exc:  # a bug or odd input must become a row, not a dead worker
            result = {"status": "error", "reason": f"{type(exc).__name__}: {exc}"}
        result["seconds"] = time.perf_counter() - t0
        conn.send(result)


class DftWorker:
    """A child process running DFT jobs one at a time, each within ``time_limit_s``.

    Use as a context manager (or call :meth:`close`). :meth:`run` always returns a dict with ``status``,
    ``reason`` and ``seconds``.
    """

    def __init__(self, threads: int = 1, time_limit_s: float = 1800.0):
        self.threads = max(1, int(threads))
        self.time_limit_s = float(time_limit_s)
        self._proc = None
        self._conn = None
        self._proc_exitcode = None
        self.restarts = 0

    def __enter__(self) -> DftWorker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> None:
        job_r, job_w = os.pipe()
        res_r, res_w = os.pipe()
        env = {**os.environ, **{k: str(self.threads) for k in THREAD_VARS}}
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle OpenMP threads sleep: far faster on shared cores
        package_root = str(Path(__file__).resolve().parents[2])  # the child imports the same elign
        env["PYTHONPATH"] = os.pathsep.join([package_root] + [p for p in [os.environ.get("PYTHONPATH")] if p])
        cmd = [sys.executable, "-m", "elign.dft.worker", str(job_r), str(res_w), str(self.threads)]
        proc = subprocess.Popen(cmd, pass_fds=(job_r, res_w), env=env, stdin=subprocess.DEVNULL)
        os.close(job_r)
        os.close(res_w)
        self._proc, self._conn = proc, _Duplex(Connection(res_r, writable=False), Connection(job_w, readable=False))
        try:
            ready = self._conn.poll(START_TIMEOUT_S) and self._conn.recv() == "ready"
        except (EOFError, OSError):
            ready = False
        if not ready:
            self._stop()
            raise RuntimeError(
                f"the DFT worker process did not start within {START_TIMEOUT_S:g} s "
                f"(exit code {self._proc_exitcode}); see its stderr above"
            )

    def run(self, job: tuple, time_limit_s: float | None = None) -> dict:
        """Result of ``job`` (see :func:`execute`), a ``timeout`` row past the limit (``time_limit_s``, None =
        the worker's), or an ``error`` row."""
        limit_s = self.time_limit_s if time_limit_s is None else float(time_limit_s)
        if self._proc is None or self._proc.poll() is not None:
            self._start()
        t0 = time.perf_counter()
        died = False
        try:
            self._conn.send(job)
            if self._conn.poll(limit_s):
                return self._conn.recv()
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

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._proc_exitcode = proc.returncode
        self._conn.close()
        self._conn = None

    def close(self) -> None:
        """Ask the child to finish (then stop it if it does not)."""
        if self._proc is not None and self._proc.poll() is None:
            try:
                self._conn.send(None)
                self._proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self._stop()


class _Duplex:
    """Two one-way connections (results in, jobs out) used as one."""

    def __init__(self, inbox: Connection, outbox: Connection):
        self.inbox, self.outbox = inbox, outbox

    def send(self, obj) -> None:
        self.outbox.send(obj)

    def recv(self):
        return self.inbox.recv()

    def poll(self, timeout: float) -> bool:
        return self.inbox.poll(timeout)

    def close(self) -> None:
        self.inbox.close()
        self.outbox.close()


def _child_main(argv: list[str]) -> None:
    _die_with_parent()
    job_fd, result_fd, threads = (int(v) for v in argv)
    _serve(_Duplex(Connection(job_fd, writable=False), Connection(result_fd, readable=False)), threads)


def atom_solver(worker: DftWorker, level: DftLevel, init_guess: str = "minao"):
    """An :data:`elign.dft.atoms.AtomSolver` running through ``worker``."""
    return lambda z, spin: worker.run(("atom", int(z), int(spin), level, init_guess))


if __name__ == "__main__":
    _child_main(sys.argv[1:])
