"""Run a list of molecules through the DFT worker, with a checkpoint so a killed shard resumes.

Checkpoint: ``<out>.partial.jsonl`` beside the shard's output. Line 1 is {"fingerprint": ...} (a hash of
the level and of the shard's molecules: ids, elements, coordinates); every finished molecule (any status)
appends one JSON line, flushed and fsynced. A rerun with the same fingerprint skips the molecules already
there (a torn last line from a kill is dropped); a different fingerprint (other level, other samples)
discards the file. When the shard is done, its Parquet file is written atomically and the partial file
removed: a shard's output exists only complete. Snakemake reruns only shards whose output is missing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from elign.dft.atoms import AtomReferences
from elign.dft.worker import DftWorker

log = logging.getLogger("elign.dft")


@dataclass
class MoleculeJob:
    """One molecule to compute. atomic_numbers (N,) int; positions_ang (N, 3) float32 Å; relax_max_steps: a DFT
    geometry optimization after the single point with at most this many steps (0 = none)."""

    mol_id: int
    atomic_numbers: np.ndarray
    positions_ang: np.ndarray
    selection_index: int = 0
    target_num_atoms: int = 0
    extra: dict = field(default_factory=dict)
    relax_max_steps: int = 0

    def base_row(self) -> dict:
        return {
            "selection_index": int(self.selection_index),
            "target_num_atoms": int(self.target_num_atoms),
            "mol_id": int(self.mol_id),
            "num_atoms": len(self.atomic_numbers),
            "atomic_numbers": np.asarray(self.atomic_numbers).astype(int).tolist(),
            "positions_ang": np.asarray(self.positions_ang, dtype=np.float32).tolist(),
            **self.extra,
        }


def fingerprint(jobs: list[MoleculeJob], level_fields: dict) -> str:
    """sha256 of the level and of each molecule's id, relaxation cap, elements and coordinates (float32 bytes)."""
    h = hashlib.sha256(json.dumps(level_fields, sort_keys=True).encode())
    for j in jobs:
        h.update(np.int64(j.mol_id).tobytes())
        if j.relax_max_steps:  # (no bytes without relaxation: checkpoints written before it stay valid)
            h.update(b"relax" + np.int64(j.relax_max_steps).tobytes())
        h.update(np.asarray(j.atomic_numbers, dtype=np.int64).tobytes())
        h.update(np.asarray(j.positions_ang, dtype=np.float32).tobytes())
    return h.hexdigest()


class Checkpoint:
    """Append-only JSON-lines record of the finished rows of one shard (see module)."""

    def __init__(self, path: str | os.PathLike, fingerprint: str):
        self.path = Path(path)
        self.fingerprint = fingerprint
        self.rows: dict[int, dict] = self._load()
        self._rewrite()

    def _load(self) -> dict[int, dict]:
        if not self.path.exists():
            return {}
        rows: dict[int, dict] = {}
        with self.path.open() as fh:
            lines = fh.read().split("\n")
        try:
            header = json.loads(lines[0])
        except (json.JSONDecodeError, IndexError):
            header = {}
        if header.get("fingerprint") != self.fingerprint:
            log.warning("%s belongs to another job (level or molecules changed): starting this shard afresh", self.path)
            return {}
        for line in lines[1:]:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                break  # a torn line from a kill: everything after it is untrusted
            rows[int(row["selection_index"])] = row
        return rows

    def _rewrite(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w") as fh:
            fh.write(json.dumps({"fingerprint": self.fingerprint}) + "\n")
            for row in self.rows.values():
                fh.write(json.dumps(row) + "\n")
        os.replace(tmp, self.path)

    def add(self, row: dict) -> None:
        self.rows[int(row["selection_index"])] = row
        with self.path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def compute_row(
    job: MoleculeJob, worker: DftWorker, level, atoms: AtomReferences | None, init_guess: str = "minao"
) -> dict:
    """The result row of one molecule: the worker's single point + formation energy per atom. A timeout or
    a dead worker leaves only status/reason/seconds: the other columns get their empty values, and method /
    spin the ones the electron count fixed."""
    from elign.dft.pyscf_runner import electron_spin, empty_row
    from elign.dft.relax import empty_relax_row

    z = np.asarray(job.atomic_numbers, dtype=np.int64)
    result = worker.run(("molecule", z, np.asarray(job.positions_ang, dtype=np.float64), level, init_guess))
    row = {**job.base_row(), **empty_row(), **empty_relax_row(), "formation_energy_per_atom_ev": float("nan"), **result}
    if "method" not in result and len(z):
        spin = electron_spin(z, level.charge)[1]
        row.update(method="UKS" if spin else "RKS", spin=spin)
    if row["status"] == "ok" and atoms is not None:
        value, why = atoms.formation_energy_per_atom_ev(row["energy_ha"], job.atomic_numbers)
        row["formation_energy_per_atom_ev"] = value
        row["reason"] = why
    if job.relax_max_steps > 0:
        row.update(relax_row(job, worker, level, row["status"]))
    return row


def relax_row(job: MoleculeJob, worker: DftWorker, level, single_point_status: str) -> dict:
    """The relax_* columns of one molecule (:mod:`elign.dft.relax`): skipped when its single point failed; the
    worker's wall-clock net for it is the single point's times (relax_max_steps + 1), as each step is one."""
    from elign.dft.relax import empty_relax_row

    if single_point_status != "ok":
        return empty_relax_row("skipped", f"the single point failed ({single_point_status}): no relaxation")
    z = np.asarray(job.atomic_numbers, dtype=np.int64)
    x = np.asarray(job.positions_ang, dtype=np.float64)
    limit_s = worker.time_limit_s * (job.relax_max_steps + 1)
    result = worker.run(("relax", z, x, level, int(job.relax_max_steps)), time_limit_s=limit_s)
    if "relax_status" not in result:  # the worker's own timeout / error row
        return empty_relax_row(result["status"], result.get("reason", "")) | {"relax_seconds": result["seconds"]}
    seconds = result.pop("seconds", float("nan"))
    return {**result, "relax_seconds": seconds}


def run_jobs(
    jobs: list[MoleculeJob],
    worker: DftWorker,
    level,
    atoms: AtomReferences | None,
    checkpoint: Checkpoint | None = None,
    init_guess: str = "minao",
) -> list[dict]:
    """Rows for ``jobs`` in order; rows already in ``checkpoint`` are reused, new ones appended to it."""
    rows = []
    for n, job in enumerate(jobs):
        done = checkpoint.rows.get(int(job.selection_index)) if checkpoint is not None else None
        if done is not None and int(done["mol_id"]) == int(job.mol_id):
            rows.append(done)
            continue
        row = compute_row(job, worker, level, atoms, init_guess)
        log.info(
            "[%d/%d] mol %d (%d atoms): %s %s %.1f s",
            n + 1,
            len(jobs),
            job.mol_id,
            len(job.atomic_numbers),
            row["status"],
            row.get("reason", ""),
            row.get("seconds", float("nan")),
        )
        if checkpoint is not None:
            checkpoint.add(row)
        rows.append(row)
    return rows
