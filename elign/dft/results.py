"""The DFT artifact: one row per molecule (failures included), a fixed Parquet schema, gather + summary.

Columns (units in the names): selection_index, target_num_atoms, mol_id, num_atoms, atomic_numbers,
positions_ang, status (ok / scf_not_converged / timeout / error), reason, method (RKS/UKS), spin (2S),
s2 (<S^2>, UKS only), scf_converged, cycles, scf_solver (diis, or diis+newton when DIIS needed the
second-order rescue), num_basis, energy_ha, energy_ev, formation_energy_per_atom_ev,
forces_ev_per_ang ((N, 3) per row), force_rms_ev_per_ang (RMS over atoms of |F|), force_max_ev_per_ang,
seconds (wall time of that molecule); and the DFT relaxation of :mod:`elign.dft.relax` (relax_status: skipped
unless requested; relax_reason, relax_steps, relax_energy_ha, relaxation_energy_kcal_mol, relax_heavy_rmsd_ang,
relaxed_positions_ang, relax_seconds). Energies and forces are NaN / null unless status is ok.
Provenance (level, shard i of n, selection fingerprint) is in the schema metadata under ``elign``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from elign.io.atomic import atomic_path
from elign.io.molecules import METADATA_KEY, read_tagged_parquet

STATUSES = ("ok", "scf_not_converged", "timeout", "error")
VEC3_F32 = pa.list_(pa.list_(pa.float32(), 3))
VEC3_F64 = pa.list_(pa.list_(pa.float64(), 3))
SCHEMA = pa.schema(
    [
        ("selection_index", pa.int32()),
        ("target_num_atoms", pa.int16()),
        ("mol_id", pa.int64()),
        ("num_atoms", pa.int16()),
        ("atomic_numbers", pa.list_(pa.int8())),
        ("positions_ang", VEC3_F32),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("method", pa.string()),
        ("spin", pa.int8()),
        ("s2", pa.float64()),
        ("scf_converged", pa.bool_()),
        ("cycles", pa.int32()),
        ("scf_solver", pa.string()),
        ("num_basis", pa.int32()),
        ("energy_ha", pa.float64()),
        ("energy_ev", pa.float64()),
        ("formation_energy_per_atom_ev", pa.float64()),
        ("forces_ev_per_ang", VEC3_F64),
        ("force_rms_ev_per_ang", pa.float64()),
        ("force_max_ev_per_ang", pa.float64()),
        ("seconds", pa.float64()),
        ("relax_status", pa.string()),
        ("relax_reason", pa.string()),
        ("relax_steps", pa.int32()),
        ("relax_energy_ha", pa.float64()),
        ("relaxation_energy_kcal_mol", pa.float64()),
        ("relax_heavy_rmsd_ang", pa.float64()),
        ("relaxed_positions_ang", VEC3_F64),
        ("relax_seconds", pa.float64()),
    ]
)


def rows_to_arrow(rows: list[dict], provenance: dict | None = None) -> pa.Table:
    """Rows (dicts with the schema's keys; extra keys are ignored) -> a table with :data:`SCHEMA`."""
    columns = {f.name: [_clean(r.get(f.name)) for r in rows] for f in SCHEMA}
    table = pa.Table.from_pydict(columns, schema=SCHEMA)
    return table.replace_schema_metadata({METADATA_KEY: json.dumps(provenance or {}).encode()})


def _clean(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_results(path: str | os.PathLike, rows: list[dict], provenance: dict | None = None) -> None:
    """Write the rows atomically (temp file + rename), zstd-compressed."""
    with atomic_path(path) as tmp:
        pq.write_table(rows_to_arrow(rows, provenance), tmp, compression="zstd")


def read_results(path: str | os.PathLike) -> tuple[pd.DataFrame, dict]:
    """(frame, provenance) of a DFT results file."""
    return read_tagged_parquet(Path(path), SCHEMA.names, "DFT results file")


def gather(paths: list[str | os.PathLike]) -> tuple[pa.Table, dict]:
    """Concatenate shard files of one model (checked: shards 0..n-1 once each, one selection, one level)."""
    tables, metas = [], []
    for p in paths:
        if not Path(p).exists():
            raise FileNotFoundError(f"DFT shard not found: {p}")
        t = pq.read_table(p)
        tables.append(t.cast(SCHEMA.with_metadata(t.schema.metadata)))
        metas.append(json.loads((t.schema.metadata or {}).get(METADATA_KEY, b"{}")))
    shards = sorted(int(m.get("shard", -1)) for m in metas)
    ofs = sorted({int(m.get("of", -1)) for m in metas})
    if len(ofs) != 1 or shards != list(range(ofs[0])):
        raise ValueError(f"shard files do not form one complete set: shards {shards} of {ofs}")
    for key in ("selection_fingerprint", "level"):
        if len({json.dumps(m.get(key), sort_keys=True) for m in metas}) != 1:
            raise ValueError(f"shard files disagree on {key}: they come from different runs")
    table = pa.concat_tables([t.replace_schema_metadata(None) for t in tables]).sort_by("selection_index")
    meta = {k: v for k, v in metas[0].items() if k not in ("shard", "created_utc")}
    meta["gathered_shards"] = len(paths)
    return table.replace_schema_metadata({METADATA_KEY: json.dumps(meta).encode()}), meta


def status_counts(frame: pd.DataFrame) -> dict[str, int]:
    counts = frame["status"].value_counts().to_dict()
    return {s: int(counts.get(s, 0)) for s in STATUSES} | {k: int(v) for k, v in counts.items() if k not in STATUSES}


def summarize(frame: pd.DataFrame) -> dict:
    """Counts and means over the ok rows (NaN when there are none)."""
    ok = frame[frame["status"] == "ok"]

    def stat(col: str, fn) -> float:
        v = ok[col].dropna().to_numpy(dtype=float)
        return float(fn(v)) if len(v) else math.nan

    return {
        "num_molecules": int(len(frame)),
        "status_counts": status_counts(frame),
        "exact_size_pairs": int((frame["num_atoms"] == frame["target_num_atoms"]).sum()),
        "force_rms_ev_per_ang_mean": stat("force_rms_ev_per_ang", np.mean),
        "force_rms_ev_per_ang_median": stat("force_rms_ev_per_ang", np.median),
        "formation_energy_per_atom_ev_mean": stat("formation_energy_per_atom_ev", np.mean),
        "seconds_total": float(frame["seconds"].fillna(0).sum()),
        **relax_summary(frame),
    }


def relax_summary(frame: pd.DataFrame) -> dict:
    """DFT relaxation: status counts of the molecules it was asked for, steps and energies over converged ones."""
    asked = frame[frame["relax_status"].notna() & (frame["relax_status"] != "skipped")]
    if asked.empty:
        return {}
    ok = asked[asked["relax_status"] == "ok"]

    def mean(col: str) -> float:
        v = ok[col].dropna().to_numpy(dtype=float)
        return float(v.mean()) if len(v) else math.nan

    return {
        "relax_status_counts": {str(k): int(v) for k, v in asked["relax_status"].value_counts().items()},
        "relax_steps_mean": mean("relax_steps"),
        "relaxation_energy_kcal_mol_mean": mean("relaxation_energy_kcal_mol"),
        "relax_heavy_rmsd_ang_mean": mean("relax_heavy_rmsd_ang"),
        "relax_seconds_total": float(asked["relax_seconds"].fillna(0).sum()),
    }
