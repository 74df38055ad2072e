"""Child process of the ``gfn2-xtb`` backend: tblite single points, one molecule at a time, one thread.

Started by :class:`elign.mlff.xtb_pool.XTBPool` as a *script* (``python -P .../xtb_worker.py JOB_FD RESULT_FD``),
not with ``-m``: importing it as ``elign.mlff.xtb_worker`` would run ``elign/mlff/__init__.py``, which imports
torch (~2 s and a few hundred MB per worker). This file imports only the standard library, numpy, tblite and
:mod:`elign.io.child_process` (standard library only; the parent puts its elign first on ``PYTHONPATH``);
``-P`` keeps its own folder off ``sys.path``. The parent sets OMP_NUM_THREADS=1 in the child's environment.

Protocol (pickled over two pipes, ``multiprocessing.connection.Connection``):

* parent -> child: a settings dict first (``method``, ``accuracy``, ``max_iterations``, ``temperature_ha``:
  None = tblite's default), then jobs
  ``(numbers (N,) int, positions_bohr (N, 3) float64, charge, uhf)``, then ``None`` to stop.
* child -> parent: ``"ready"`` once tblite is imported, then per job
  ``(kind, energy_ha, gradient_ha_per_bohr (N, 3) or None, message, seconds)`` with kind ``"ok"``, the
  tblite exception class name (e.g. ``"TBLiteRuntimeError"``), or ``"error"`` for anything else.

Atomic units in, atomic units out (Bohr, Hartree, Hartree/Bohr); the parent converts to Å and eV.
Every job builds a fresh calculator and starts from tblite's default guess, so a result does not depend on
which worker ran it or on what it ran before (measured: building the calculator costs ~0.1 ms of a ~6 ms
QM9-sized single point; what is reused is the process with tblite loaded, whose first call costs ~0.5 s).
"""

from __future__ import annotations

import sys
import time
from multiprocessing.connection import Connection

import numpy as np

from elign.io.child_process import child_connections, die_with_parent, serve


def single_point(settings: dict, numbers, positions_bohr, charge: int, uhf: int):
    """(kind, energy_ha, gradient_ha_per_bohr, message) of one molecule; kind "ok" or an exception name."""
    from tblite.interface import Calculator

    messages: list[str] = []
    try:
        calc = Calculator(
            settings["method"],
            np.asarray(numbers, dtype=np.int32),
            np.asarray(positions_bohr, dtype=np.float64),
            charge=float(charge),
            uhf=int(uhf),
            color=False,
            logger=messages.append,
        )
        calc.set("verbosity", 0)
        calc.set("accuracy", float(settings["accuracy"]))
        calc.set("max-iter", int(settings["max_iterations"]))
        if settings.get("temperature_ha") is not None:
            calc.set("temperature", float(settings["temperature_ha"]))
        result = calc.singlepoint()
        energy = float(result.get("energy"))
        gradient = np.array(result.get("gradient"), dtype=np.float64).reshape(len(numbers), 3)
    except Exception as exc:  # noqa: BLE001 - tblite's own error becomes the molecule's reason
        detail = "; ".join([str(exc)] + messages[-3:])
        return type(exc).__name__, float("nan"), None, detail[:500]
    return "ok", energy, gradient, ""


def serve_xtb(jobs: Connection, results: Connection) -> None:
    """Read the settings, import tblite, say ready, then answer jobs until ``None`` or the parent's end."""
    settings = jobs.recv()
    import tblite.interface  # noqa: F401 - before "ready", so start-up never counts against a time limit

    def answer(job: tuple) -> tuple:
        start = time.perf_counter()
        kind, energy, gradient, message = single_point(settings, *job)
        return kind, energy, gradient, message, time.perf_counter() - start

    results.send("ready")
    serve(jobs, results, answer)


if __name__ == "__main__":
    die_with_parent()
    job_conn, result_conn, _ = child_connections(sys.argv[1:])
    serve_xtb(job_conn, result_conn)
