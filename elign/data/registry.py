"""Data sources register by name; the config's ``data.source`` picks one.

A source is ``loader(cfg: DataConfig, errors: ErrorPolicy, seed: int) -> SourceResult``: the molecules,
each one's split label and notes for ``stats.json``. ``seed`` (the run's master seed) drives random splits;
QM9 sources ignore it (EDM's split is fixed). The names live in :data:`elign.registries.DATA_SOURCES`, where a
built-in source is declared with its module: sources import lazily, so that e.g. msgpack is only needed for GEOM.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from elign.data.errors import ErrorPolicy
from elign.io.table import MoleculeTable
from elign.registries import DATA_SOURCES

SPLITS = ("train", "valid", "test")


@dataclass
class SourceResult:
    """table: M molecules; split: (M,) str labels in SPLITS; info: JSON-able notes for stats.json."""

    table: MoleculeTable
    split: np.ndarray
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.split = np.asarray(self.split, dtype=object)
        if len(self.split) != len(self.table):
            raise ValueError("one split label per molecule is required")
        bad = set(self.split.tolist()) - set(SPLITS)
        if bad:
            raise ValueError(f"split labels must be one of {SPLITS}, got {sorted(map(str, bad))}")


SourceLoader = Callable[["DataConfig", ErrorPolicy, int], SourceResult]  # noqa: F821 (DataConfig: elign.config)


def register_source(name: str) -> Callable[[SourceLoader], SourceLoader]:
    """Decorator: register a loader as data source ``name`` (the value of ``data.source``)."""
    return DATA_SOURCES.decorator(name)


def get_source(name: str) -> SourceLoader:
    """The loader registered as ``name`` (importing a built-in's module first); KeyError listing the names."""
    return DATA_SOURCES.get(name)
