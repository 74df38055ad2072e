"""Inputs of the report, read leniently: a missing or unreadable file becomes a note, never a crash.

Every path is named on the command line (``elign report``). Each loader returns the data or None and
appends a line to ``notes`` saying what is missing and why, so the report can say so in place of a figure.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

log = logging.getLogger("elign.report")


@dataclass
class ReportPaths:
    """Every input file of the report, by name (model or evaluate row); None / {} = not given."""

    out_dir: str
    metrics: dict[str, str] = field(default_factory=dict)  # evaluate Parquet per name (reference too)
    dft: dict[str, str] = field(default_factory=dict)  # DFT Parquet per model
    samples: dict[str, str] = field(default_factory=dict)  # samples Parquet per model
    sample_summaries: dict[str, str] = field(default_factory=dict)  # sample-stage summary JSON per model
    statistics: str | None = None  # elign stats CSV
    pretrain_history: str | None = None
    finetune_history: str | None = None
    timing: str | None = None  # time_sampling JSON
    backbone: str | None = None  # pretrain stage's backbone.json
    aligned: str | None = None  # finetune stage's aligned.json


@dataclass
class ReportData:
    """What could be read; ``notes`` lists what could not (shown in the report)."""

    metrics: dict[str, pd.DataFrame] = field(default_factory=dict)
    dft: dict[str, pd.DataFrame] = field(default_factory=dict)
    samples: dict[str, Any] = field(default_factory=dict)  # MoleculeTable per model
    sample_summaries: dict[str, dict] = field(default_factory=dict)
    statistics: pd.DataFrame | None = None
    pretrain_history: pd.DataFrame | None = None
    finetune_history: pd.DataFrame | None = None
    timing: dict | None = None
    backbone: dict | None = None
    aligned: dict | None = None
    notes: list[str] = field(default_factory=list)
    sample_names: list[str] = field(default_factory=list)  # models named by --samples, found or not


def _read(path: str | None, what: str, reader: Callable[[str], Any], notes: list[str]):
    if path is None:
        return None
    if not Path(path).exists():
        notes.append(f"{what}: file not found ({path})")
        log.warning("%s: file not found (%s)", what, path)
        return None
    try:
        return reader(path)
    except Exception as exc:  # a report never dies on one bad input: it says which and why
        notes.append(f"{what}: unreadable ({path}: {type(exc).__name__}: {exc})")
        log.warning("%s: unreadable (%s): %s", what, path, exc)
        return None


def _read_json(path: str) -> dict:
    return json.loads(Path(path).read_text())


def _read_dft(path: str) -> pd.DataFrame:
    """The rows; ``attrs["level"]``: the DFT level of its provenance (a dict, or None)."""
    from elign.dft.results import read_results

    frame, meta = read_results(path)
    level = meta.get("level")
    frame.attrs["level"] = json.loads(level) if isinstance(level, str) else level
    return frame


def _read_samples(path: str):
    from elign.io.molecules import read_molecules

    return read_molecules(path)


def _read_timing(path: str) -> dict:
    data = _read_json(path)
    if not isinstance(data.get("models"), dict):
        raise ValueError("no 'models' mapping")
    return data


def load_inputs(paths: ReportPaths) -> ReportData:
    """Read every given input; what is missing or unreadable is recorded in ``notes``."""
    data = ReportData(sample_names=list(paths.samples))
    notes = data.notes
    for attr, reader, what in (
        ("metrics", pd.read_parquet, "metrics"),
        ("dft", _read_dft, "DFT results"),
        ("samples", _read_samples, "samples"),
        ("sample_summaries", _read_json, "sample summary"),
    ):
        for name, path in getattr(paths, attr).items():
            value = _read(path, f"{what} of {name}", reader, notes)
            if value is not None:
                getattr(data, attr)[name] = value
    data.statistics = _read(paths.statistics, "statistics table", pd.read_csv, notes)
    data.pretrain_history = _read(paths.pretrain_history, "pretraining history", pd.read_parquet, notes)
    data.finetune_history = _read(paths.finetune_history, "FED-GRPO history", pd.read_parquet, notes)
    data.timing = _read(paths.timing, "sampling timing", _read_timing, notes)
    data.backbone = _read(paths.backbone, "backbone record", _read_json, notes)
    data.aligned = _read(paths.aligned, "aligned-model record", _read_json, notes)
    if paths.timing is None:
        notes.append("sampling timing: not measured (no --timing file)")
    return data
