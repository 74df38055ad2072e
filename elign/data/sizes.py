"""Molecule sizes to sample or train on: the data stage's size histogram (stats.json) and draws from it.

NumPy and JSON only (no torch): the sample, finetune and DFT stages all read sizes through here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["load_size_histogram", "sizes_from_histogram", "resolve_sizes", "stage_histogram"]


def sizes_from_histogram(histogram: Mapping[int | str, int], n: int, seed: int) -> list[int]:
    """n atom counts drawn i.i.d. from a {size: count} histogram (keys may be strings, as in stats.json)."""
    keys = np.array([int(k) for k in histogram], dtype=np.int64)
    counts = np.array([float(v) for v in histogram.values()], dtype=np.float64)
    if keys.size == 0 or (counts < 0).any() or counts.sum() <= 0 or (keys[counts > 0] < 1).any():
        raise ValueError(f"not a usable atom-count histogram: {dict(histogram)}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x51A3]))
    return rng.choice(keys, size=int(n), p=counts / counts.sum()).tolist()


def load_size_histogram(stats_path: str | Path, split: str = "train") -> dict[int, int]:
    """``splits.<split>.num_atoms_histogram`` of the data stage's stats.json as {size: count}."""
    stats_path = Path(stats_path)
    if not stats_path.is_file():
        raise FileNotFoundError(f"stats file {stats_path} does not exist")
    try:
        hist = json.loads(stats_path.read_text())["splits"][split]["num_atoms_histogram"]
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{stats_path}: no splits.{split}.num_atoms_histogram ({exc})") from None
    return {int(k): int(v) for k, v in hist.items()}


def resolve_sizes(
    spec: str | int | Sequence[int], num_molecules: int, seed: int, histogram: Mapping[int | str, int] | None = None
) -> list[int]:
    """Atom counts of the molecules to sample: 'histogram' (drawn with ``seed``), one size, or a list
    (its length must be ``num_molecules``)."""
    if isinstance(spec, str):
        if spec != "histogram":
            raise ValueError(f"sizes must be 'histogram', an integer or a list, got {spec!r}")
        if histogram is None:
            raise ValueError("sizes='histogram' needs the training histogram (stats.json)")
        return sizes_from_histogram(histogram, num_molecules, seed)
    if isinstance(spec, (int, np.integer)):
        sizes = [int(spec)] * int(num_molecules)
    else:
        sizes = [int(v) for v in spec]
        if len(sizes) != num_molecules:
            raise ValueError(f"sizes lists {len(sizes)} atom counts but num_molecules is {num_molecules}")
    if any(v < 1 for v in sizes):
        raise ValueError(f"atom counts must be >= 1, got {min(sizes)}")
    return sizes


def stage_histogram(stats_path: str | Path | None, required_by: str | None = None) -> dict[int, int] | None:
    """The training size histogram of a stage's ``--stats`` file (None when no file was passed).

    required_by: the setting that needs it (e.g. ``"finetune.sizes"``): then a missing ``--stats`` is a
    ConfigError. A file without the histogram is a ConfigError either way.
    """
    from elign.config import ConfigError

    if stats_path is None:
        if required_by is not None:
            raise ConfigError(f"{required_by} is 'histogram': pass --stats results/data/<dataset>/stats.json")
        return None
    try:
        return load_size_histogram(stats_path)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
