"""The stats stage: the statistics table (each model against the baseline) from metrics and DFT Parquets.

Inputs are named files (``{name: path}``): per-molecule metrics (evaluate stage), DFT results (dft-gather) and
sample summaries (sample stage); a model sampled with the baseline's noise design gets paired tests too.
Columns and method: :mod:`elign.stats.compare` (bootstrap seed = seed + report.seed_offset).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from elign.config import ConfigError, ElignConfig
from elign.dft.results import read_results
from elign.io.atomic import atomic_path, write_text_atomic
from elign.stats import BootstrapSettings, markdown_table, statistics_table
from elign.stats.paired import DESIGN_KEYS, paired_design

log = logging.getLogger("elign.stats")


def read_metric_frames(paths: dict[str, str]) -> dict[str, pd.DataFrame]:
    frames = {}
    for name, path in paths.items():
        if not Path(path).exists():
            raise FileNotFoundError(f"metrics file not found: {path} (from --metrics {name}=...)")
        frames[name] = pd.read_parquet(path)
    return frames


def read_dft_frames(paths: dict[str, str]) -> dict[str, pd.DataFrame]:
    frames = {}
    for name, path in paths.items():
        try:
            frames[name] = read_results(path)[0]
        except ValueError as exc:
            raise ConfigError(f"--dft {name}=...: {exc}") from None
    return frames


def read_sample_summaries(paths: dict[str, str]) -> dict[str, dict]:
    out = {}
    for name, path in paths.items():
        try:
            out[name] = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"sample summary not found: {path} (from --samples {name}=...)") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--samples {name}={path}: not JSON ({exc})") from None
        if not isinstance(out[name], dict):
            raise ConfigError(f"--samples {name}={path}: expected a JSON object")
    return out


def paired_models(metrics: dict, summaries: dict[str, dict], baseline: str, names=()) -> list[str]:
    """The models sampled with the baseline's noise (logged, with why not): with both metrics frames, their rows
    must match row by row (:func:`elign.stats.paired.paired_design`); a model in ``names`` (e.g. DFT only)
    without them needs only the sample summaries' design keys to match."""
    out = []
    for name in dict.fromkeys([*metrics, *names]):
        if name == baseline:
            continue
        if name in metrics and baseline in metrics:
            ok, why = paired_design(summaries.get(baseline), summaries.get(name), metrics[baseline], metrics[name])
        else:
            a, b = summaries.get(baseline), summaries.get(name)
            ok = bool(a and b) and all(a.get(k) is not None and a.get(k) == b.get(k) for k in DESIGN_KEYS)
            why = "same sample design (no metrics to compare row by row)" if ok else "no matching sample summaries"
        log.info("%s vs %s: %s (%s)", name, baseline, "paired" if ok else "unpaired", why)
        if ok:
            out.append(name)
    return out


def run_stats(
    cfg: ElignConfig,
    metrics_paths: dict[str, str],
    dft_paths: dict[str, str],
    sample_paths: dict[str, str],
    out: str,
    markdown: str | None = None,
) -> pd.DataFrame:
    """Write the statistics CSV ``out`` and its Markdown table (default: ``<out stem>.md``); returns the table."""
    rc = cfg.report
    metrics = read_metric_frames(metrics_paths)
    dft = read_dft_frames(dft_paths)
    if not metrics and not dft:
        raise ConfigError("nothing to compare: pass --metrics NAME=PATH and/or --dft MODEL=PATH")
    bs = BootstrapSettings(rc.n_bootstrap, rc.confidence, rc.ci_method, cfg.seed + rc.seed_offset, rc.power)
    try:
        summaries = read_sample_summaries(sample_paths)
        paired = paired_models(metrics, summaries, rc.baseline_model, dft)
        table = statistics_table(metrics, dft, rc.baseline_model, bs, paired_models=paired)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    with atomic_path(out) as tmp:
        table.to_csv(tmp, index=False)
    write_text_atomic(markdown or str(Path(out).with_suffix(".md")), markdown_table(table))
    log.info("%d rows (%d metrics x models vs %s) -> %s", len(table), table["metric"].nunique(), rc.baseline_model, out)
    return table
