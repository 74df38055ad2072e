"""The smoke workflow through workflow/profiles/slurm on a real one-node Slurm (slurmctld + slurmd + munge).

The cluster comes up on 127.0.0.1 from a temporary folder (tests/workflow/slurm/slurm_cluster.py). The test
then checks Slurm's own record against what Snakemake ran: every job that is not a local rule was
submitted with sbatch, Slurm allocated it, ran it on the node and recorded it as COMPLETED (jobcomp/filetxt
and slurmctld's job table), and no local rule went through Slurm. The rule list is not written down here:
it is read from the run, so rules added to the DAG are covered as they come.

Needs the Debian packages slurm-wlm and munge, and root (`.ci/run` installs them). Without them the test is
skipped, unless CI is set: there it fails. Select it with `pytest -m slurm`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "slurm"))
from slurm_cluster import NODE, SlurmCluster, SlurmUnavailable  # noqa: E402

pytestmark = pytest.mark.slurm

TREE = ("Snakefile", "workflow", "config", "envs")
# Test-cluster knobs on top of the profile: the cluster has no slurmdbd, so job status comes from squeue
# (its MinJobAge of an hour keeps finished jobs listed); first status poll after 2 s instead of 40 s;
# two jobs at a time, as `--cores 2` does for the local smoke run on a 2-core machine.
SLURM_ARGS = ("--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2", "--jobs", "2")
RUN_TIMEOUT_S = 1800


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A one-node Slurm cluster for the session; skipped where Slurm cannot run, unless CI is set."""
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
    except SlurmUnavailable as err:
        reason = f"no one-node Slurm here: {err}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}\n(CI is set, so this is a failure: .ci/run installs slurm-wlm and munge)")
        pytest.skip(reason.splitlines()[0])
    print(f"\nSlurm cluster up in {cluster.start_seconds:.1f} s ({cluster.root})")
    yield cluster
    cluster.stop()


def _snakemake_jobs(log: str) -> dict[int, tuple[str, bool]]:
    """Snakemake job id -> (rule, is_local), from the `rule X:` / `localrule X:` blocks of its log."""
    jobs, current = {}, None
    for line in log.splitlines():
        head = re.fullmatch(r"(localrule|rule) (\w+):", line.strip())
        if head:
            current = (head.group(2), head.group(1) == "localrule")
            continue
        jobid = re.fullmatch(r"jobid: (\d+)", line.strip())
        if jobid and current:
            jobs[int(jobid.group(1))] = current
            current = None
    return jobs


def _rule_of_comment(comment: str) -> str:
    """The executor puts `rule_<rule>` or `rule_<rule>_wildcards_<values>` in each job's Slurm comment."""
    assert comment.startswith("rule_"), comment
    return comment[len("rule_") :].split("_wildcards_")[0]


def test_smoke_run_on_slurm(slurm_cluster, tmp_path, repo_root, record_property):
    for name in TREE:
        src = repo_root / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    env = slurm_cluster.env
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.setdefault("TORCHANI_DATA_DIR", str(repo_root.parent / "shared/mlff/torchani"))
    began = time.monotonic()
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "snakemake"),
            "--executor",
            "slurm",
            "--workflow-profile",
            "workflow/profiles/slurm",
            "--configfile",
            "config/experiments/smoke.yaml",
            *SLURM_ARGS,
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    seconds = time.monotonic() - began
    record_property("slurm_start_s", round(slurm_cluster.start_seconds, 1))
    record_property("slurm_smoke_run_s", round(seconds, 1))
    print(f"smoke run on Slurm: {seconds:.0f} s")
    log = proc.stdout + proc.stderr

    def context() -> str:
        slurm_logs = sorted((tmp_path / ".snakemake/slurm_logs").rglob("*.log"))
        tails = "\n".join(
            f"--- {p}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-15:]) for p in slurm_logs[-5:]
        )
        return f"{log[-6000:]}\n{slurm_cluster.logs()}\n{tails}"

    assert proc.returncode == 0, context()
    assert (tmp_path / "results/metrics/qm9_smoke/summary.csv").exists(), context()

    # What Snakemake ran, and what it says it submitted to Slurm.
    run_id = re.search(r"SLURM run ID: (\S+)", log).group(1)
    jobs = _snakemake_jobs(log)
    remote = {jobid: rule for jobid, (rule, local) in jobs.items() if not local}
    local = {jobid: rule for jobid, (rule, local) in jobs.items() if local}
    pairs = re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", log)
    submitted = {int(job): slurm for job, slurm in pairs}
    assert len(submitted) == len(pairs), f"a job was submitted twice (a retry): {pairs}\n{context()}"
    assert remote, f"no job went to Slurm:\n{context()}"
    assert set(submitted) == set(remote), (
        f"non-local jobs without an sbatch: {sorted(set(remote) - set(submitted))}; "
        f"local jobs submitted: {sorted(set(submitted) & set(local))}\n{context()}"
    )

    # Slurm's own record of the run: the controller's job table, its log, and the job-completion file.
    queue = {j["JobId"]: j for j in slurm_cluster.queue() if j["Name"] == run_id}
    completions = {r["JobId"]: r for r in slurm_cluster.job_records() if r.get("Name") == run_id}
    allocated = set(slurm_cluster.allocated_job_ids())
    slurm_ids = set(submitted.values())
    assert set(queue) == slurm_ids, (sorted(queue), sorted(slurm_ids))
    assert set(completions) == slurm_ids, (sorted(completions), sorted(slurm_ids))
    assert slurm_ids <= allocated, f"never allocated by slurmctld: {sorted(slurm_ids - allocated)}"
    for slurm_id in slurm_ids:
        assert completions[slurm_id]["JobState"] == "COMPLETED", completions[slurm_id]
        assert completions[slurm_id]["ExitCode"] == "0:0", completions[slurm_id]
        assert completions[slurm_id]["NodeList"] == NODE, completions[slurm_id]
        assert queue[slurm_id]["State"] == "COMPLETED", queue[slurm_id]
    # Per rule, Slurm ran exactly the jobs Snakemake meant to run there, and no local rule.
    slurm_rules = Counter(_rule_of_comment(j["Comment"]) for j in queue.values())
    assert slurm_rules == Counter(remote.values()), (slurm_rules, Counter(remote.values()))
    assert not set(local.values()) & set(slurm_rules), (sorted(local.values()), sorted(slurm_rules))
    print(f"through Slurm: {dict(sorted(slurm_rules.items()))}; local: {sorted(Counter(local.values()))}")
