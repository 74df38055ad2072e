"""A throw-away one-node Slurm cluster on 127.0.0.1, for tests (Debian packages slurm-wlm and munge).

Everything lives in one folder: a private munge key and socket, slurm.conf + cgroup.conf, state, spool,
logs, and Slurm's own job-completion record (jobcomp/filetxt, one line per finished job; no slurmdbd,
no database). The daemons (munged, slurmctld, slurmd) run in the foreground as children of this process
and are stopped by their process ids. Clients find the cluster through ``SLURM_CONF`` (``cluster.env``).

Made to work as root in a container without systemd or a writable cgroup tree:

- ``ProctrackType=proctrack/linuxproc`` and ``TaskPlugin=task/none``: no cgroups needed;
- ``JobAcctGatherType=jobacct_gather/none``, ``AccountingStorageType=accounting_storage/none``: no slurmdbd.
  `sacct` therefore has nothing to report; job status comes from `squeue`, which shows finished jobs
  for ``MinJobAge`` seconds (an hour here: longer than a test run, so squeue still lists every job of the
  run, with its comment, at the end);
- ``SlurmdParameters=config_overrides``: the node advertises the CPUs/memory written here, not what the
  machine has, so a site profile's requests (8 CPUs, 32 GB) fit on a 2-core test machine;
- ``NodeName`` is a fixed name bound to this host (``NodeHostname``/``NodeAddr=127.0.0.1``, ``slurmd -N``),
  and the ports are picked free, so two clusters can run side by side;
- the config stays out of /etc/slurm: clients find it through ``SLURM_CONF``. The Slurm executor's job
  step (snakemake-executor-plugin-slurm-jobstep 0.6.1) drops every ``SLURM_*`` variable but a few job ids
  before its nested ``srun``, ``SLURM_CONF`` included, and srun then fails with "Could not establish a
  configuration source". A real cluster keeps its config where srun looks by default (/etc/slurm or
  configless /run/slurm/conf); here ``bin/srun``, first on ``PATH``, puts ``SLURM_CONF`` back and runs the
  real srun.

Use from Python (``with SlurmCluster(folder) as cluster: ...``) or by hand::

    python tests/workflow/slurm/slurm_cluster.py /tmp/slurm     # starts it, prints `export SLURM_CONF=...`
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROGRAMS = ("munged", "slurmctld", "slurmd", "slurmstepd", "sbatch", "squeue", "sinfo", "scontrol", "srun", "scancel")
NODE = "elign-node"
PARTITION = "debug"
# What the node advertises (config_overrides): enough for the per-rule requests of workflow/profiles/slurm.
NODE_CPUS = 32
NODE_MEMORY_MB = 262144


class SlurmUnavailable(RuntimeError):
    """Slurm cannot run here (packages missing, not root, a daemon does not come up); the text says why."""


def _search_path() -> str:
    """PATH plus the sbin folders, where Debian puts the daemons."""
    parts = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join(parts + [p for p in ("/usr/sbin", "/sbin", "/usr/local/sbin") if p not in parts])


def missing_programs() -> list[str]:
    path = _search_path()
    return [p for p in PROGRAMS if shutil.which(p, path=path) is None]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class SlurmCluster:
    """One slurmctld + one slurmd (+ munged) under ``root``; ``start()`` waits until the node is idle."""

    def __init__(self, root: Path, *, cpus: int = NODE_CPUS, memory_mb: int = NODE_MEMORY_MB):
        self.root = Path(root).resolve()
        self.cpus, self.memory_mb = cpus, memory_mb
        self.conf = self.root / "etc/slurm.conf"
        self.jobcomp = self.root / "jobcomp.txt"  # Slurm's own record of every finished job
        self.ctld_log = self.root / "log/slurmctld.log"
        self.slurmd_log = self.root / "log/slurmd.log"
        self.munge_log = self.root / "log/munged.log"
        self.munge_socket = self.root / "munge/munge.socket"
        if len(str(self.munge_socket)) > 100:  # a Unix socket path has at most 107 bytes
            self.munge_socket = Path(tempfile.mkdtemp(prefix="elign-munge-")) / "munge.socket"
        self._procs: dict[str, subprocess.Popen] = {}
        self.start_seconds: float | None = None

    # --- what clients need -------------------------------------------------------------------------
    @property
    def env(self) -> dict[str, str]:
        """Environment for sbatch/squeue/snakemake: this cluster's slurm.conf, the daemons' folders on PATH."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_"))}
        env["SLURM_CONF"] = str(self.conf)
        env["PATH"] = os.pathsep.join([str(self.root / "bin"), _search_path()])
        return env

    def run(self, *args: str, timeout: float = 30, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), env=self.env, capture_output=True, text=True, timeout=timeout, check=check)

    def job_records(self) -> list[dict[str, str]]:
        """jobcomp/filetxt lines as dicts (JobId, Name, JobState, NodeList, ExitCode, ...)."""
        if not self.jobcomp.exists():
            return []
        records = []
        for line in self.jobcomp.read_text().splitlines():
            fields = {}
            for item in line.split():
                key, sep, value = item.partition("=")
                if sep:
                    fields[key] = value
            if fields:
                records.append(fields)
        return records

    def queue(self) -> list[dict[str, str]]:
        """slurmctld's table of jobs (``squeue --states=all``; finished ones for ``MinJobAge``): JobId, Name,
        Comment, State, NodeList."""
        out = self.run("squeue", "--states=all", "-h", "-o", "%i|%j|%k|%T|%N").stdout
        keys = ("JobId", "Name", "Comment", "State", "NodeList")
        return [dict(zip(keys, line.split("|"))) for line in out.splitlines() if line.strip()]

    def allocated_job_ids(self) -> list[str]:
        """Job ids slurmctld's log says it started: by the main scheduler (``sched: Allocate JobId=N``) or by
        the backfill scheduler (``sched/backfill: _start_job: Started JobId=N in <partition> on <nodes>``),
        which takes jobs the main one has not reached when the machine is busy."""
        ids = []
        for line in _tail(self.ctld_log, 100000).splitlines():
            if "sched: Allocate JobId=" in line or ("sched/backfill" in line and "Started JobId=" in line):
                ids.append(line.split("JobId=", 1)[1].split()[0])
        return ids

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{_tail(p)}" for p in (self.munge_log, self.ctld_log, self.slurmd_log))

    # --- start / stop ------------------------------------------------------------------------------
    def _write_config(self) -> None:
        for sub in ("bin", "etc", "munge", "state", "spool", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.root / "munge", 0o700)
        key = self.root / "munge/munge.key"
        if not key.exists():
            key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o600)
        host = socket.gethostname().split(".")[0]
        self.ctld_port, self.slurmd_port = _free_port(), _free_port()
        self.conf.write_text(f"""\
# One-node test cluster written by tests/workflow/slurm/slurm_cluster.py.
ClusterName=elign-test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={self.ctld_port}
SlurmdPort={self.slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
StateSaveLocation={self.root}/state
SlurmdSpoolDir={self.root}/spool
SlurmctldPidFile={self.root}/slurmctld.pid
SlurmdPidFile={self.root}/slurmd.pid
SlurmctldLogFile={self.ctld_log}
SlurmdLogFile={self.slurmd_log}
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups in the container: track processes through /proc, bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
# No slurmdbd: no accounting; Slurm's record of finished jobs goes to a text file instead.
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={self.jobcomp}
# Finished jobs stay visible to squeue (the executor's status command here) for an hour.
MinJobAge=3600
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmdParameters=config_overrides
SlurmdTimeout=300
InactiveLimit=0
KillWait=5
NodeName={NODE} NodeHostname={host} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.memory_mb} State=UNKNOWN
PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP
""")
        real_srun = shutil.which("srun", path=_search_path())
        shim = self.root / "bin/srun"
        shim.write_text(
            f"#!/bin/sh\n# SLURM_CONF for the job step's nested srun (see slurm_cluster.py)\n"
            f'SLURM_CONF="{self.conf}" exec "{real_srun}" "$@"\n'
        )
        shim.chmod(0o755)
        # Read only by the cgroup plugins, which this configuration does not load; here for completeness.
        (self.root / "etc/cgroup.conf").write_text("CgroupPlugin=autodetect\nIgnoreSystemd=yes\n")

    def _spawn(self, name: str, args: list[str], log: Path) -> None:
        out = open(log.with_suffix(".out"), "ab")
        self._procs[name] = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=self.root, start_new_session=True
        )
        out.close()

    def _alive(self, name: str) -> None:
        proc = self._procs[name]
        if proc.poll() is not None:
            raise SlurmUnavailable(
                f"{name} exited with status {proc.returncode}\n{self.logs()}\n"
                f"--- {name}.out ---\n{_tail((self.root / 'log' / name).with_suffix('.out'))}"
            )

    def start(self, timeout: float = 60) -> SlurmCluster:
        missing = missing_programs()
        if missing:
            raise SlurmUnavailable(f"not installed: {', '.join(missing)} (apt-get install slurm-wlm munge)")
        if os.geteuid() != 0:
            raise SlurmUnavailable("the test cluster runs slurmd as root (it launches jobs as any user)")
        began = time.monotonic()
        self._write_config()
        path = _search_path()
        which = lambda p: shutil.which(p, path=path)  # noqa: E731
        self._spawn(
            "munged",
            [
                which("munged"),
                "--foreground",
                "--force",
                f"--socket={self.munge_socket}",
                f"--key-file={self.root}/munge/munge.key",
                f"--log-file={self.munge_log}",
                f"--pid-file={self.root}/munge/munged.pid",
                f"--seed-file={self.root}/munge/munged.seed",
            ],
            self.munge_log,
        )
        self._wait(lambda: self.munge_socket.exists(), "munged socket", 15, "munged")
        self._spawn("slurmctld", [which("slurmctld"), "-D", "-f", str(self.conf)], self.ctld_log)
        self._wait(
            lambda: self.run("scontrol", "ping", check=False).stdout.count("UP") > 0,
            "slurmctld to answer `scontrol ping`",
            timeout,
            "slurmctld",
        )
        self._spawn("slurmd", [which("slurmd"), "-D", "-f", str(self.conf), "-N", NODE], self.slurmd_log)
        self._wait(self._node_idle, f"node {NODE} to be idle", timeout, "slurmd")
        self.start_seconds = time.monotonic() - began
        return self

    def _node_idle(self) -> bool:
        out = self.run("sinfo", "-h", "-N", "-n", NODE, "-o", "%T", check=False).stdout.strip()
        return out.rstrip("*") == "idle"

    def _wait(self, ready, what: str, timeout: float, daemon: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._alive(daemon)
            try:
                if ready():
                    return
            except (subprocess.TimeoutExpired, OSError):
                pass
            time.sleep(0.5)
        self.stop()
        raise SlurmUnavailable(f"timed out after {timeout:.0f}s waiting for {what}\n{self.logs()}")

    def stop(self) -> None:
        """Cancel this cluster's unfinished jobs, then stop the daemons this object started, by process id."""
        if "slurmctld" in self._procs and self._procs["slurmctld"].poll() is None:
            try:
                ids = self.run(
                    "squeue", "-h", "-o", "%i", "-t", "PENDING,RUNNING,CONFIGURING,COMPLETING", check=False
                ).stdout.split()
                if ids:
                    self.run("scancel", *ids, check=False)
                    deadline = time.monotonic() + 20
                    while (
                        time.monotonic() < deadline
                        and self.run("squeue", "-h", "-o", "%i", "-t", "RUNNING,COMPLETING", check=False).stdout.strip()
                    ):
                        time.sleep(1)
            except (subprocess.TimeoutExpired, OSError):
                pass
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self._procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def __enter__(self) -> SlurmCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "slurm-test-cluster")
    with SlurmCluster(folder) as cluster:
        print(
            f"Slurm is up in {cluster.start_seconds:.1f}s.\nexport SLURM_CONF={cluster.conf}\nCtrl-C stops it.",
            flush=True,
        )
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
