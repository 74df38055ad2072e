"""The worker-process base shared by the DFT worker and the gfn2-xtb pool (elign.io.child_process)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import elign
from elign.io.child_process import THREAD_VARS, ChildProcess, child_env

ECHO = (
    "import sys\n"
    "from elign.io.child_process import child_connections, die_with_parent, serve\n"
    "die_with_parent()\n"
    "jobs, results, extra = child_connections(sys.argv[1:])\n"
    "results.send('ready')\n"
    "serve(jobs, results, lambda job: (job, extra))\n"
)


def test_child_answers_in_order_then_finishes_when_asked():
    child = ChildProcess([sys.executable, "-c", ECHO], child_env(1), extra_args=("x", "y"))
    assert child.wait_ready(60)
    for job in [1, "two", (3.0, [4])]:
        child.outbox.send(job)
        assert child.inbox.recv() == (job, ["x", "y"])
    assert child.stop(graceful_wait_s=10) == 0  # None ends serve(): a clean exit, no signal


def test_silent_child_is_not_ready_and_is_terminated():
    child = ChildProcess([sys.executable, "-c", "import time; time.sleep(60)"], child_env(1))
    assert not child.wait_ready(0.2)
    assert child.running()
    assert child.stop() == -signal.SIGTERM


def test_dead_child_is_not_ready_and_keeps_its_exit_code():
    child = ChildProcess([sys.executable, "-c", "raise SystemExit(3)"], child_env(1))
    assert not child.wait_ready(60)
    assert child.stop() == 3


def test_child_env_sets_every_thread_count_and_puts_this_elign_first():
    env = child_env(3)
    assert all(env[k] == "3" for k in THREAD_VARS)
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(Path(elign.__file__).resolve().parents[1])
