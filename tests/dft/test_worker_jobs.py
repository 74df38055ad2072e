"""The child-process worker (time limit, failure rows, the run goes on), atom references, checkpoints."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from dft_molecules import METHANE, METHYL, THREADS, WATER

from elign.constants import HARTREE_TO_EV as HARTREE_EV
from elign.dft.atoms import GROUND_STATE_MULTIPLICITY, AtomReferences
from elign.dft.jobs import Checkpoint, MoleculeJob, fingerprint, run_jobs
from elign.dft.level import DftLevel
from elign.dft.worker import DftWorker, atom_solver


def test_failures_are_rows_and_the_run_goes_on(cheap_level, tmp_path):
    bad = (WATER[0], np.where(np.arange(9).reshape(3, 3) == 4, np.nan, WATER[1]))
    jobs = [
        MoleculeJob(10, *bad, selection_index=0),
        MoleculeJob(11, *WATER, selection_index=1),
        MoleculeJob(12, *METHANE, selection_index=2),
    ]
    with DftWorker(THREADS, 120) as worker:
        rows = run_jobs(jobs[:2], worker, replace(cheap_level, max_cycles=1, newton_cycles=0), None)
        rows += run_jobs(jobs[2:], worker, cheap_level, None)
    assert [r["status"] for r in rows] == ["error", "scf_not_converged", "ok"]
    assert "non-finite" in rows[0]["reason"] and "not converged" in rows[1]["reason"]
    assert [r["mol_id"] for r in rows] == [10, 11, 12]
    assert all(r["seconds"] >= 0 for r in rows)
    assert len(rows[2]["forces_ev_per_ang"]) == 5


def test_runaway_job_becomes_a_timeout_row_and_the_worker_restarts(qm9_level, cheap_level):
    with DftWorker(THREADS, time_limit_s=0.5) as worker:
        [row] = run_jobs([MoleculeJob(3, *METHYL)], worker, qm9_level, None)  # seconds at this level
        assert row["status"] == "timeout"
        assert "time_limit_s = 0.5" in row["reason"] and "safety net" in row["reason"]
        assert (row["method"], row["spin"], row["mol_id"]) == ("UKS", 1, 3)
        assert math.isnan(row["energy_ha"]) and row["forces_ev_per_ang"] is None
        assert worker.restarts == 1
        worker.time_limit_s = 120
        assert worker.run(("molecule", *METHANE, cheap_level, "minao"))["status"] == "ok"


def test_atom_references_use_ground_state_spins_and_the_disk_cache(tmp_path):
    level = DftLevel(basis="sto-3g")
    calls = []

    def fake_solver(z, spin):
        calls.append((z, spin))
        return {"status": "ok", "reason": "", "energy_ha": -float(z)}

    refs = AtomReferences(level, fake_solver, tmp_path)
    value, why = refs.formation_energy_per_atom_ev(-12.0, np.array([6, 1, 1, 1, 1]))
    assert why == ""
    assert value == pytest.approx((-12.0 - (-6.0 - 4.0)) * HARTREE_EV / 5)
    assert sorted(calls) == [(1, 1), (6, 2)]  # H doublet (2S = 1), C triplet (2S = 2)
    assert GROUND_STATE_MULTIPLICITY[7] == 4 and GROUND_STATE_MULTIPLICITY[8] == 3
    again = AtomReferences(level, lambda z, s: pytest.fail("recomputed a cached atom"), tmp_path)
    assert again.energy_ha(6) == -6.0
    assert json.loads(refs.path.read_text())["level"]["basis"] == "sto-3g"
    other = AtomReferences(replace(level, functional="pbe"), fake_solver, tmp_path)
    assert other.path != refs.path  # another level never reads these numbers


def test_missing_atom_reference_gives_nan_formation_energy_with_a_reason(tmp_path):
    refs = AtomReferences(DftLevel(basis="sto-3g"), lambda z, s: {"status": "error", "reason": "boom"}, tmp_path)
    value, why = refs.formation_energy_per_atom_ev(-1.0, np.array([1, 1]))
    assert math.isnan(value) and "boom" in why
    value, why = refs.formation_energy_per_atom_ev(-1.0, np.array([1, 92]))
    assert "no ground-state multiplicity" in why


def test_real_radical_atom_in_the_worker(cheap_level, tmp_path):
    with DftWorker(THREADS, 120) as worker:
        refs = AtomReferences(cheap_level, atom_solver(worker, cheap_level), tmp_path)
        rows = run_jobs([MoleculeJob(1, *METHYL)], worker, cheap_level, refs)
    assert rows[0]["status"] == "ok" and rows[0]["method"] == "UKS"
    assert -10 < rows[0]["formation_energy_per_atom_ev"] < 0
    assert set(refs.energies_ha) == {1, 6}


class _FakeWorker:
    def __init__(self, fail_after: int | None = None):
        self.calls, self.fail_after = 0, fail_after

    def run(self, job):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("killed")  # the job is killed mid-shard
        self.calls += 1
        return {"status": "ok", "reason": "", "method": "RKS", "spin": 0, "energy_ha": -1.0, "seconds": 0.0}


def test_a_killed_shard_resumes_from_its_checkpoint(tmp_path):
    jobs = [MoleculeJob(100 + i, *METHANE, selection_index=i) for i in range(4)]
    path = tmp_path / "shard_0.parquet.partial.jsonl"
    fp = fingerprint(jobs, {"basis": "x"})
    with pytest.raises(KeyboardInterrupt):
        run_jobs(jobs, _FakeWorker(fail_after=2), None, None, Checkpoint(path, fp))
    with path.open("a") as fh:
        fh.write('{"selection_index": 2, "mol_')  # a torn line, as a kill can leave
    resumed = _FakeWorker()
    rows = run_jobs(jobs, resumed, None, None, Checkpoint(path, fp))
    assert resumed.calls == 2  # only the two molecules not yet done
    assert [r["mol_id"] for r in rows] == [100, 101, 102, 103]
    fresh = _FakeWorker()
    run_jobs(jobs, fresh, None, None, Checkpoint(path, fingerprint(jobs, {"basis": "y"})))
    assert fresh.calls == 4  # another level: the old partial file is not trusted


def test_fingerprint_sees_coordinates():
    a = [MoleculeJob(1, *METHANE)]
    b = [MoleculeJob(1, METHANE[0], METHANE[1] + 1e-3)]
    assert fingerprint(a, {}) != fingerprint(b, {})
