"""Benchmark the data stage on the full QM9 from qm9pack.

Prints wall time per phase (read CSV, parse, split, write) and the end-to-end `prepare` time, plus the
ratio of our vectorized parser against a straightforward per-row reference parser (ast.literal_eval per
molecule, as one would write it first) run on the same rows in the same process.

    .venv/bin/python bench/prepare.py [--rows 20000]
"""

from __future__ import annotations

import argparse
import ast
import tempfile
import time

import numpy as np

from elign.config import validate_config
from elign.data.errors import ErrorPolicy
from elign.data.prepare import prepare
from elign.data.qm9pack import qm9pack_table, read_qm9pack_frame
from elign.elements import atomic_number


def reference_parse(frame) -> list[tuple[np.ndarray, np.ndarray]]:
    """The obvious per-row parser: literal_eval of each stringified list."""
    out = []
    for elements, xyz in zip(frame["Elements"], frame["XYZ_Ang"]):
        z = np.array([atomic_number(s) for s in ast.literal_eval(elements)])
        out.append((z, np.array(ast.literal_eval(xyz), dtype=np.float64)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20000, help="rows for the parser comparison")
    args = ap.parse_args()
    t = time.perf_counter()
    frame = read_qm9pack_frame()
    t_read = time.perf_counter() - t
    t = time.perf_counter()
    table = qm9pack_table(frame, ErrorPolicy())
    t_parse = time.perf_counter() - t
    print(f"read CSV: {t_read:.2f} s; parse {len(table)} molecules: {t_parse:.2f} s")

    sub = frame.iloc[: args.rows]
    t = time.perf_counter()
    ours = qm9pack_table(sub, ErrorPolicy())
    t_ours = time.perf_counter() - t
    t = time.perf_counter()
    ref = reference_parse(sub)
    t_ref = time.perf_counter() - t
    assert np.allclose(np.concatenate([r[1] for r in ref]), ours.positions_ang, atol=1e-6)
    print(
        f"parser on {args.rows} rows: ours {t_ours:.2f} s, per-row reference {t_ref:.2f} s, "
        f"speed-up {t_ref / t_ours:.1f}x"
    )

    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        stats = prepare(validate_config({}), out)
        total = time.perf_counter() - t
    print(f"elign prepare (full QM9, qm9pack): {total:.1f} s; split sizes {stats['split_sizes']}")


if __name__ == "__main__":
    main()
