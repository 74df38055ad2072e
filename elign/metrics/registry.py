"""Metrics by name: ``@register_metric("name")`` on a per-molecule function; ``evaluate.metrics`` picks them.

The built-in columns of :func:`elign.metrics.evaluate.evaluate_table` (EDM stability, RDKit validity,
uniqueness and novelty, MLFF energy and forces, relaxation) are always there. A registered metric adds its own:
``fn(batch: MetricBatch) -> MetricValues``, one value per molecule in each of its columns and a status per
molecule (``"ok"``, or why it could not score that molecule, with a reason: a molecule that cannot be scored
gets NaN, never a made-up number). The evaluate stage writes the columns, ``<name>_status`` and
``<name>_reason`` into the per-molecule Parquet and the mean of each column over the scored molecules,
``<column>_mean``, into the summary. Names live in :data:`elign.registries.METRICS` (docs/extending.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from elign.io.table import MoleculeTable
from elign.mlff.base import MLFFBackend
from elign.registries import METRICS

__all__ = ["MetricBatch", "MetricValues", "register_metric", "get_metric", "run_metric"]

STATUS_OK = "ok"


@dataclass(frozen=True)
class MetricBatch:
    """What a metric sees: the M molecules, which of them are usable samples (``sample_ok`` (M,) bool: the
    others failed in sampling and must not be scored), and the MLFF backend of the evaluation (or None)."""

    table: MoleculeTable
    sample_ok: np.ndarray
    backend: MLFFBackend | None = None


@dataclass
class MetricValues:
    """columns: name → (M,) float values (NaN where not scored); status: (M,) "ok" or why not (None = all
    scored); reason: (M,) text, "" where ok (None = none given)."""

    columns: dict[str, np.ndarray]
    status: np.ndarray | None = None
    reason: np.ndarray | None = None


MetricFunction = Callable[[MetricBatch], MetricValues]


def register_metric(name: str) -> Callable[[MetricFunction], MetricFunction]:
    """Decorator: register ``fn(batch) -> MetricValues`` as metric ``name`` (a value of ``evaluate.metrics``)."""
    return METRICS.decorator(name)


def get_metric(name: str) -> MetricFunction:
    return METRICS.get(name)


def run_metric(name: str, batch: MetricBatch) -> dict[str, np.ndarray]:
    """The per-molecule columns of metric ``name``: its own, ``<name>_status`` and ``<name>_reason``. ValueError
    (naming the metric) for a column of the wrong length, a value for an unscored molecule, a molecule marked ok
    without a value, or a value for a molecule whose sample failed."""
    out = get_metric(name)(batch)
    m = len(batch.table)
    status = np.full(m, STATUS_OK, dtype=object) if out.status is None else np.asarray(out.status, dtype=object)
    reason = np.full(m, "", dtype=object) if out.reason is None else np.asarray(out.reason, dtype=object)
    if status.shape != (m,) or reason.shape != (m,):
        raise ValueError(f"metric {name!r}: status and reason need one entry per molecule ({m})")
    ok = status == STATUS_OK
    if (ok & ~np.asarray(batch.sample_ok, bool)).any():
        raise ValueError(f"metric {name!r} scores a molecule whose sample failed: give it a status instead")
    columns = {}
    for column, values in out.columns.items():
        v = np.asarray(values, dtype=np.float64)
        if v.shape != (m,):
            raise ValueError(f"metric {name!r}: column {column!r} has shape {v.shape}, expected ({m},)")
        if (np.isfinite(v) & ~ok).any() or (ok & ~np.isfinite(v)).any():
            raise ValueError(f"metric {name!r}: column {column!r} must have a value exactly where the status is ok")
        columns[column] = v
    return {**columns, f"{name}_status": status, f"{name}_reason": reason}
