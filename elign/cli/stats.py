"""``elign stats``: the statistics table (each model against the baseline) from metrics and DFT Parquets.

``elign stats --metrics pretrained=results/metrics/qm9/pretrained.parquet --metrics aligned=... --dft
pretrained=results/dft/qm9/pretrained.parquet --dft aligned=... --out results/report/qm9/statistics.csv
--markdown results/report/qm9/statistics.md --config-json '{"seed": 0, "report": {...}}'``

Columns and method: :mod:`elign.stats.compare` (bootstrap seed = seed + report.seed_offset).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from elign.cli.options import add_config_options, named_path, resolve_config
from elign.config import ConfigError

log = logging.getLogger("elign.stats")


def named_paths(pairs: list[tuple[str, str]] | None, flag: str) -> dict[str, str]:
    """``[(name, path), ...]`` -> dict in the given order; a name given twice is an error."""
    out: dict[str, str] = {}
    for name, path in pairs or []:
        if name in out:
            raise ConfigError(f"{flag} {name}=...: given twice")
        out[name] = path
    return out


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="statistics of each model against the baseline (bootstrap CIs, Welch, Mann-Whitney)")
    add_config_options(p)
    p.add_argument(
        "--metrics",
        action="append",
        type=named_path,
        metavar="NAME=PATH",
        help="per-molecule metrics Parquet of a model (evaluate stage); repeat per model",
    )
    p.add_argument(
        "--dft",
        action="append",
        type=named_path,
        metavar="MODEL=PATH",
        help="DFT results Parquet of a model (dft-gather); repeat per model",
    )
    p.add_argument(
        "--samples",
        action="append",
        type=named_path,
        metavar="MODEL=PATH",
        help="sample summary JSON of a model (sample stage): a model sampled with the baseline's seed, batch size "
        "and molecule count gets paired tests too (its DFT rows as well, when they hold the baseline's mol_ids); "
        "repeat per model",
    )
    p.add_argument("--out", required=True, help="statistics CSV, e.g. results/report/qm9/statistics.csv")
    p.add_argument("--markdown", default=None, help="also a Markdown table (default: <out stem>.md)")
    p.set_defaults(run=run)


def read_metric_frames(paths: dict[str, str]):
    import pandas as pd

    frames = {}
    for name, path in paths.items():
        if not Path(path).exists():
            raise FileNotFoundError(f"metrics file not found: {path} (from --metrics {name}=...)")
        frames[name] = pd.read_parquet(path)
    return frames


def read_dft_frames(paths: dict[str, str]):
    from elign.dft.results import read_results

    frames = {}
    for name, path in paths.items():
        try:
            frames[name] = read_results(path)[0]
        except ValueError as exc:
            raise ConfigError(f"--dft {name}=...: {exc}") from None
    return frames


def read_sample_summaries(paths: dict[str, str]) -> dict[str, dict]:
    import json

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
    from elign.stats.paired import DESIGN_KEYS, paired_design

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


def run(args: argparse.Namespace) -> int:
    from elign.io.atomic import atomic_path, write_text_atomic
    from elign.stats import BootstrapSettings, markdown_table, statistics_table

    cfg = resolve_config(args)
    rc = cfg.report
    metrics = read_metric_frames(named_paths(args.metrics, "--metrics"))
    dft = read_dft_frames(named_paths(args.dft, "--dft"))
    if not metrics and not dft:
        raise ConfigError("nothing to compare: pass --metrics NAME=PATH and/or --dft MODEL=PATH")
    bs = BootstrapSettings(rc.n_bootstrap, rc.confidence, rc.ci_method, cfg.seed + rc.seed_offset, rc.power)
    try:
        summaries = read_sample_summaries(named_paths(args.samples, "--samples"))
        paired = paired_models(metrics, summaries, rc.baseline_model, dft)
        table = statistics_table(metrics, dft, rc.baseline_model, bs, paired_models=paired)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, index=False)
    md = args.markdown or str(Path(args.out).with_suffix(".md"))
    write_text_atomic(md, markdown_table(table))
    log.info(
        "%d rows (%d metrics x models vs %s) -> %s", len(table), table["metric"].nunique(), rc.baseline_model, args.out
    )
    return 0
