"""The evaluate and summarize stages: per-molecule metrics of one molecule set, and the table of all sets.

``elign evaluate`` (:func:`run_evaluate`) scores a sample set or a data split with :mod:`elign.metrics`
(EDM's stability, RDKit validity/uniqueness/novelty, MLFF energy and forces, and the MLFF relaxation of
``evaluate.relax``) and writes the per-molecule Parquet and a summary JSON (with provenance). A data split
can be cut to a seeded random subset (seed = ``seed + evaluate.reference_seed_offset``, file order kept).
``elign summarize`` (:func:`summarize_files`) joins the summaries into one CSV / Markdown table.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from elign.config import ElignConfig
from elign.io.atomic import atomic_path, write_json_atomic, write_text_atomic
from elign.io.molecules import read_molecules
from elign.io.provenance import provenance
from elign.metrics.chemistry import evaluate_chemistry, training_keys
from elign.metrics.evaluate import SUMMARY_COLUMNS, evaluate_table, random_subset, summarize, summary_columns
from elign.mlff.registry import backend_from_config
from elign.mlff.relax import FireSettings

log = logging.getLogger("elign.evaluate")

__all__ = ["EvaluateRequest", "run_evaluate", "summarize_files", "SUMMARY_COLUMNS"]


@dataclass(frozen=True)
class EvaluateRequest:
    """One evaluate job: molecules in, metrics Parquet and summary JSON out."""

    input: str | Path
    name: str
    train: str | Path
    out: str | Path
    summary: str | Path
    max_molecules: int | None = None


def reference_keys(train_path: str | Path, mode: str, bond_rules: str = "qm9") -> set[str]:
    """Novelty keys of the training split: canonical SMILES, or our geometry-derived keys."""
    train = read_molecules(train_path)
    if mode == "geometry":
        return {k for k in evaluate_chemistry(train, single_bonds_only=bond_rules == "geom").keys if k is not None}
    return training_keys(s for s in train.smiles if s is not None)


def relax_settings(cfg: ElignConfig) -> FireSettings | None:
    """FIRE settings of ``evaluate.relax`` (None when disabled)."""
    relax = cfg.evaluate.relax
    return FireSettings(**relax.model_dump(exclude={"enabled"})) if relax.enabled else None


def run_evaluate(cfg: ElignConfig, req: EvaluateRequest) -> dict:
    """Score ``req.input``; write the metrics Parquet and the summary JSON; return the summary row."""
    t0 = time.perf_counter()
    table = read_molecules(req.input)
    subset = None
    if req.max_molecules is not None:
        seed = cfg.seed + cfg.evaluate.reference_seed_offset
        subset = {"molecules": min(req.max_molecules, len(table)), "of": len(table), "seed": seed}
        table = table.take(random_subset(len(table), req.max_molecules, seed))
    keys = reference_keys(req.train, cfg.evaluate.novelty_reference, cfg.evaluate.bond_rules)
    log.info("%s: %d molecules; %d training keys (%.1f s)", req.name, len(table), len(keys), time.perf_counter() - t0)
    backend = backend_from_config(cfg.evaluate.mlff)
    frame = evaluate_table(table, backend, keys, relax_settings(cfg), cfg.evaluate.bond_rules, cfg.evaluate.metrics)
    row = summarize(frame, req.name)
    if subset is not None:
        row["subset"] = subset
    if "relax_seconds" in frame.attrs:
        row["relax_seconds"] = round(frame.attrs["relax_seconds"], 2)
    row["seconds"] = round(time.perf_counter() - t0, 2)
    row["mlff_backend"] = backend.describe()
    meta = provenance(
        {"seed": cfg.seed, "evaluate": cfg.evaluate.model_dump(mode="json")},
        seed=cfg.seed,
        stage="evaluate",
        input=req.input,
    )
    with atomic_path(req.out) as tmp:
        frame.to_parquet(tmp, index=False)
    write_json_atomic(req.summary, {**row, "provenance": {k: v for k, v in meta.items() if k != "config_json"}})
    log.info("summary: %s", json.dumps({k: v for k, v in row.items() if k != "mlff_backend"}, default=str))
    if "relax_seconds" in row:
        log.info(
            "relaxation: %d molecules in %.1f s (FIRE, at most %d steps)",
            row["relax_num_scored"],
            row["relax_seconds"],
            cfg.evaluate.relax.max_steps,
        )
    return row


def summarize_files(summaries: list[str | Path], csv: str | Path, markdown: str | Path) -> pd.DataFrame:
    """One row per summary JSON (:data:`SUMMARY_COLUMNS`), written as CSV and Markdown; returns the table."""
    rows = []
    for path in summaries:
        if not Path(path).exists():
            raise FileNotFoundError(f"summary not found: {path}")
        rows.append(json.loads(Path(path).read_text()))
    table = pd.DataFrame(rows)[summary_columns(rows[0])]
    with atomic_path(csv) as tmp:
        table.to_csv(tmp, index=False)
    write_text_atomic(markdown, table.to_markdown(index=False, floatfmt=".4f") + "\n")
    return table
