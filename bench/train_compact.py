"""The QM9 training split as one compact array file, and back: what travels to a lent GPU machine.

The data stage's ``train.parquet`` (83 MB, SMILES and every QM9 property) is more than a GPU segment needs
and more than the device tool carries; pretraining reads only ``mol_id``, the atom counts, the atomic numbers
and the positions. ``export`` writes those four arrays (about 24 MB, compressed); ``restore`` writes a
``train.parquet`` from them (with ``stats.json`` copied beside it) whose training-set fingerprint
(:func:`elign.training.pretrain_state.data_fingerprint`) equals the original's, so a resumed run accepts it.

    python bench/train_compact.py export results/data/qm9 .gpu/train_compact.npz
    python bench/train_compact.py restore .gpu/train_compact.npz /tmp/data/qm9
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from elign.io.molecules import read_molecules, write_molecules
from elign.io.table import MoleculeTable


def export(data_dir: Path, out: Path) -> None:
    table = read_molecules(data_dir / "train.parquet")
    stats = (data_dir / "stats.json").read_text()
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out,
        mol_id=np.asarray(table.mol_id, np.int64),
        num_atoms=np.asarray(table.num_atoms, np.int16),
        atomic_numbers=np.asarray(table.atomic_numbers, np.int8),
        positions_ang=np.asarray(table.positions_ang, np.float32),
        stats_json=np.array(stats),
    )
    print(f"{out}: {len(table)} molecules, {out.stat().st_size / 2**20:.1f} MiB")


def restore(npz: Path, data_dir: Path) -> None:
    arrays = np.load(npz)
    n = len(arrays["mol_id"])
    table = MoleculeTable(
        arrays["mol_id"],
        arrays["num_atoms"].astype(np.int64),
        arrays["atomic_numbers"],
        arrays["positions_ang"],
        np.full(n, None, dtype=object),
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    write_molecules(data_dir / "train.parquet", table)
    (data_dir / "stats.json").write_text(str(arrays["stats_json"]))
    print(f"{data_dir}/train.parquet: {n} molecules")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="action", required=True)
    e = sub.add_parser("export")
    e.add_argument("data_dir", type=Path)
    e.add_argument("out", type=Path)
    r = sub.add_parser("restore")
    r.add_argument("npz", type=Path)
    r.add_argument("data_dir", type=Path)
    args = ap.parse_args()
    export(args.data_dir, args.out) if args.action == "export" else restore(args.npz, args.data_dir)


if __name__ == "__main__":
    main()
