"""``elign evaluate``: per-molecule metrics of a sample set or a data split; ``elign summarize``: one table."""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from elign.cli.options import add_config_options, resolve_config

log = logging.getLogger("elign.evaluate")


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="stability, validity/uniqueness/novelty and MLFF energy/forces per molecule")
    add_config_options(p)
    p.add_argument("--input", required=True, help="molecule Parquet: samples or a data split")
    p.add_argument("--name", required=True, help="row name in the summary, e.g. pretrained or qm9_test")
    p.add_argument("--train", required=True, help="training split Parquet (novelty reference)")
    p.add_argument("--out", required=True, help="per-molecule metrics Parquet")
    p.add_argument("--summary", required=True, help="summary JSON of this set")
    p.add_argument("--max-molecules", type=int, default=None, help="evaluate only the first N molecules")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (the MLFF); default: torch's")
    p.set_defaults(run=run)


def _training_keys(train_path: str, mode: str) -> set[str]:
    from elign.io.molecules import read_molecules
    from elign.metrics.chemistry import evaluate_chemistry, training_keys

    train = read_molecules(train_path)
    if mode == "geometry":
        return {k for k in evaluate_chemistry(train).keys if k is not None}
    return training_keys(s for s in train.smiles if s is not None)


def _backend(cfg):
    import torch

    from elign.mlff import get_backend

    m = cfg.evaluate.mlff
    device = ("cuda" if torch.cuda.is_available() else "cpu") if m.device == "auto" else m.device
    options = {k: v for k, v in {"model_path": m.model_path, "model": m.model, "model_index": m.model_index,
                                 "workers": m.workers, "time_limit_s": m.time_limit_s,
                                 "electronic_temperature_k": m.electronic_temperature_k}.items() if v is not None}
    return get_backend(m.backend, device=device, dtype=m.dtype, batch_size=m.batch_size, **options)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from elign.io.atomic import atomic_path, write_json_atomic
    from elign.io.molecules import read_molecules
    from elign.io.provenance import provenance
    from elign.metrics.evaluate import evaluate_table, summarize

    cfg = resolve_config(args)
    if args.threads is not None:
        import torch

        torch.set_num_threads(max(1, args.threads))
    t0 = time.perf_counter()
    table = read_molecules(args.input)
    if args.max_molecules is not None:
        table = table.take(np.arange(min(args.max_molecules, len(table))))
    keys = _training_keys(args.train, cfg.evaluate.novelty_reference)
    log.info("%s: %d molecules; %d training keys (%.1f s)", args.name, len(table), len(keys), time.perf_counter() - t0)
    backend = _backend(cfg)
    frame = evaluate_table(table, backend, keys)
    row = summarize(frame, args.name)
    row["seconds"] = round(time.perf_counter() - t0, 2)
    row["mlff_backend"] = backend.describe()
    meta = provenance({"seed": cfg.seed, "evaluate": cfg.evaluate.model_dump(mode="json")}, seed=cfg.seed,
                      stage="evaluate", input=args.input)
    with atomic_path(args.out) as tmp:
        frame.to_parquet(tmp, index=False)
    write_json_atomic(args.summary, {**row, "provenance": {k: v for k, v in meta.items() if k != "config_json"}})
    log.info("summary: %s", json.dumps({k: v for k, v in row.items() if k != "mlff_backend"}, default=str))
    return 0


def add_summarize_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="collect evaluate summaries into one table (CSV + Markdown)")
    p.add_argument("--summaries", nargs="+", required=True, help="summary JSON files, one per model")
    p.add_argument("--csv", required=True)
    p.add_argument("--markdown", required=True)
    p.set_defaults(run=run_summarize)


COLUMNS = ("model", "num_molecules", "atom_stability", "molecule_stability", "validity", "uniqueness",
           "valid_and_unique", "novelty", "mlff_ok_fraction", "formation_energy_per_atom_ev_mean",
           "force_rms_ev_per_ang_mean", "force_rms_ev_per_ang_sem", "mlff_failures")


def run_summarize(args: argparse.Namespace) -> int:
    import pandas as pd

    from elign.io.atomic import atomic_path, write_text_atomic

    rows = []
    for path in args.summaries:
        if not Path(path).exists():
            raise FileNotFoundError(f"summary not found: {path}")
        rows.append(json.loads(Path(path).read_text()))
    table = pd.DataFrame(rows)[[c for c in COLUMNS if c in rows[0]]]
    with atomic_path(args.csv) as tmp:
        table.to_csv(tmp, index=False)
    write_text_atomic(args.markdown, table.to_markdown(index=False, floatfmt=".4f") + "\n")
    print(table.to_string(index=False))
    return 0
