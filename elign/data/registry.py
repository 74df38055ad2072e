"""Data sources register by name; the config's ``data.source`` picks one.

A source is ``loader(cfg: DataConfig, errors: ErrorPolicy, seed: int) -> SourceResult``: the molecules,
each one's split label and notes for ``stats.json``. ``seed`` (the run's master seed) drives random splits;
QM9 sources ignore it (EDM's split is fixed). Sources import lazily so that e.g. msgpack is only needed for GEOM.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from elign.data.errors import ErrorPolicy
from elign.io.table import MoleculeTable

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
_LOADERS: dict[str, SourceLoader] = {}
_MODULES = {
    "qm9pack": "elign.data.qm9pack",
    "figshare": "elign.data.figshare",
    "geom_drugs": "elign.data.geom",
    "files": "elign.data.files",
}


def register_source(name: str) -> Callable[[SourceLoader], SourceLoader]:
    def deco(fn: SourceLoader) -> SourceLoader:
        _LOADERS[name] = fn
        return fn

    return deco


def get_source(name: str) -> SourceLoader:
    if name not in _LOADERS and name in _MODULES:
        importlib.import_module(_MODULES[name])
    if name not in _LOADERS:
        raise KeyError(f"unknown data source {name!r} (known: {', '.join(sorted(_MODULES))})")
    return _LOADERS[name]
