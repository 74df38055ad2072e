"""One worker-process system for compiled code that a Python signal cannot interrupt (PySCF, tblite).

Parent side, :class:`ChildProcess`: a fresh interpreter (``subprocess.Popen``: no fork of a torch/OpenMP-threaded
parent, no re-import of the caller's ``__main__`` as multiprocessing's spawn would do) and two pipes, jobs out
and results in, pickled by :class:`multiprocessing.connection.Connection`. The child's command line ends with
the two pipe descriptors (``... JOB_FD RESULT_FD [extra arguments]``); the child says ``"ready"`` once its
imports are done, so start-up never counts against a time limit. :meth:`ChildProcess.stop` ends it (asking
first when told to, then SIGTERM, then SIGKILL) and returns its exit code.

Child side, standard library only (the gfn2-xtb child imports this module and must not import torch):
:func:`die_with_parent`, :func:`child_connections` and :func:`serve`.

:mod:`elign.dft.worker` (one child, one DFT job at a time) and :mod:`elign.mlff.xtb_pool` (a pool of tblite
children) build their time limits, result rows and restarts on this.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding this elign: children import it


class WorkerStartError(RuntimeError):
    """A worker process did not say it was ready."""


def child_env(threads: int) -> dict[str, str]:
    """The parent's environment with every BLAS/OpenMP thread count set to ``threads`` and this elign first on
    ``PYTHONPATH`` (the child imports the same code as its parent)."""
    env = {**os.environ, **{k: str(threads) for k in THREAD_VARS}}
    env["PYTHONPATH"] = os.pathsep.join([PACKAGE_ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    return env


class ChildProcess:
    """A child process started as ``command + [JOB_FD, RESULT_FD] + extra_args``, its pipes ``outbox`` (jobs)
    and ``inbox`` (results)."""

    def __init__(
        self, command: list[str], env: dict[str, str], extra_args: tuple[str, ...] = (), stdout: int | None = None
    ) -> None:
        job_r, job_w = os.pipe()
        res_r, res_w = os.pipe()
        cmd = [*command, str(job_r), str(res_w), *extra_args]
        self.proc = subprocess.Popen(cmd, pass_fds=(job_r, res_w), env=env, stdin=subprocess.DEVNULL, stdout=stdout)
        os.close(job_r)
        os.close(res_w)
        self.inbox = Connection(res_r, writable=False)
        self.outbox = Connection(job_w, readable=False)

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, timeout_s: float) -> bool:
        """Whether the child said ``"ready"`` within ``timeout_s`` (False if it died or said anything else)."""
        try:
            return bool(self.inbox.poll(timeout_s) and self.inbox.recv() == "ready")
        except (EOFError, OSError):
            return False

    def stop(self, graceful_wait_s: float | None = None) -> int | None:
        """End the process and close its pipes; returns its exit code. With ``graceful_wait_s``, first send
        ``None`` (the child's signal to finish) and wait that long; then SIGTERM, 5 s, SIGKILL."""
        if graceful_wait_s is not None and self.running():
            try:
                self.outbox.send(None)
                self.proc.wait(graceful_wait_s)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if self.running():
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.inbox.close()
        self.outbox.close()
        return self.proc.returncode


# ------------------------------------------------------------------------------------------ child side
def die_with_parent() -> None:
    """Linux: SIGTERM this process when its parent dies (prctl PR_SET_PDEATHSIG); elsewhere nothing."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def child_connections(argv: list[str]) -> tuple[Connection, Connection, list[str]]:
    """(jobs, results, extra arguments) from the child's ``sys.argv[1:]`` (``JOB_FD RESULT_FD ...``)."""
    job_fd, result_fd = int(argv[0]), int(argv[1])
    return Connection(job_fd, writable=False), Connection(result_fd, readable=False), list(argv[2:])


def serve(jobs: Connection, results: Connection, answer: Callable[[object], object]) -> None:
    """Send ``answer(job)`` for each job until ``None`` or the parent's end (call after saying ready)."""
    while True:
        try:
            job = jobs.recv()
        except EOFError:  # the parent went away
            break
        if job is None:
            break
        results.send(answer(job))
