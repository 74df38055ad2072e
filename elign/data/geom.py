"""GEOM-Drugs from ``drugs_crude.msgpack`` (Axelrod & Gómez-Bombarelli, Sci. Data 9, 185, 2022).

File layout (as distributed inside ``drugs_crude.msgpack.tar.gz``): a stream of msgpack maps, each mapping
SMILES → molecule info. ``info["conformers"]`` is a list of dicts with ``"xyz"`` (list of
``[atomic_number, x, y, z]`` rows, Å) and ``"totalenergy"`` (Hartree), plus ``boltzmannweight``,
``geom_id``, ...; molecule-level keys include ``charge``, ``uniqueconfs``, ``totalconfs``.

Conformer selection follows EDM (Hoogeboom et al. 2022, ``build_geom_dataset.extract_conformers``): per
SMILES, in file order, argsort the conformers by ``totalenergy`` and keep the ``conformers_per_molecule``
(30) lowest, one row per conformer; ``mol_id`` is the running index of kept conformers, as EDM's.
Hydrogens are kept (EDM's ``--remove_h`` is not applied here). Differences from EDM, on purpose:

* the argsort is stable (ties keep file order, identical on every platform);
* a bad conformer (missing ``xyz``/``totalenergy``, malformed atom row, NaN coordinate) goes through
  :class:`~elign.data.errors.ErrorPolicy`; when skipped, the next-lowest valid conformer takes its place;
* the split is **by molecule**: all conformers of one SMILES land in the same split (EDM permutes
  conformers, which puts conformers of one molecule in train and test). Groups are the molecules with at
  least one kept conformer, split by :func:`~elign.data.split.random_split_labels` with seed
  the run's master seed (``seed`` in the config; :data:`SPLIT_SEED` when called directly).

The file is streamed one molecule at a time (the real file is tens of GB); only the kept conformers are
held, as compact arrays.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from elign.data.errors import ErrorPolicy
from elign.data.registry import SPLITS, SourceResult, register_source
from elign.data.split import random_split_labels
from elign.io.errors import DataFormatError
from elign.io.table import MoleculeTable

SPLIT_SEED = 0
GEOM_DOWNLOAD = (
    "download it from Harvard Dataverse, doi:10.7910/DVN/JNGTDF, file 4360331 "
    "(drugs_crude.msgpack.tar.gz, ~43 GB, MD5 7778e84c50b7cde755cca670d1f75091), and extract "
    "drugs_crude.msgpack from the archive (or let the workflow do it: rule geom_drugs_download)"
)
MAX_Z = 118


@dataclass
class _Kept:
    """Growing columns of the kept conformers (compact: arrays, not lists of dicts)."""

    z_chunks: list[np.ndarray] = field(default_factory=list)  # per molecule, (sum n,) int8
    pos_chunks: list[np.ndarray] = field(default_factory=list)  # per molecule, (sum n, 3) float32, Å
    num_atoms: array = field(default_factory=lambda: array("q"))
    molecule_index: array = field(default_factory=lambda: array("q"))
    conformer_rank: array = field(default_factory=lambda: array("q"))
    conformer_index: array = field(default_factory=lambda: array("q"))
    energy: array = field(default_factory=lambda: array("d"))
    boltzmann: array = field(default_factory=lambda: array("d"))
    geom_id: array = field(default_factory=lambda: array("q"))
    charge: array = field(default_factory=lambda: array("d"))
    smiles: list[str] = field(default_factory=list)


def iter_geom_molecules(path: Path) -> Iterator[tuple[int, str, Any]]:
    """Yield ``(molecule_index, smiles, info)`` one molecule at a time, with a tqdm bar by bytes read.

    Raises :class:`DataFormatError` naming ``path`` if the file is not a stream of msgpack maps or is
    truncated.
    """
    import msgpack
    from tqdm import tqdm

    size = path.stat().st_size
    index = 0
    with open(path, "rb") as fh, tqdm(total=size, unit="B", unit_scale=True, desc=f"GEOM {path.name}") as bar:
        unpacker = msgpack.Unpacker(fh, raw=False, max_buffer_size=0)
        for map_no in itertools.count(1):
            try:
                n_entries = unpacker.read_map_header()
            except msgpack.OutOfData:
                break
            except (msgpack.UnpackException, ValueError) as exc:
                raise DataFormatError(
                    path,
                    None,
                    f"top-level item {map_no} is not a msgpack map of SMILES → "
                    f"molecule info ({exc}); is this GEOM's drugs_crude.msgpack?",
                ) from None
            for _ in range(n_entries):
                smiles, info = _unpack_entry(unpacker, path, map_no, size)
                yield index, smiles, info
                index += 1
                bar.update(unpacker.tell() - bar.n)
        if unpacker.tell() != size:
            raise _truncated(path, unpacker.tell(), size)


def _unpack_entry(unpacker, path: Path, map_no: int, size: int) -> tuple[str, Any]:
    import msgpack

    try:
        smiles, info = unpacker.unpack(), unpacker.unpack()
    except msgpack.OutOfData:
        raise _truncated(path, unpacker.tell(), size) from None
    except (msgpack.UnpackException, ValueError) as exc:
        raise DataFormatError(path, f"map {map_no}", f"not valid msgpack ({exc})") from None
    if not isinstance(smiles, str):
        raise DataFormatError(
            path, f"map {map_no}", f"key {smiles!r} is not a SMILES string; is this GEOM's drugs_crude.msgpack?"
        )
    return smiles, info


def _truncated(path: Path, at: int, size: int) -> DataFormatError:
    return DataFormatError(
        path,
        None,
        f"file is truncated: the msgpack stream ends inside an item "
        f"(decoded {at:,} of {size:,} bytes); re-extract drugs_crude.msgpack",
    )


def conformer_xyz(conformer: Any, path: Path, record: str, errors: ErrorPolicy) -> np.ndarray | None:
    """(N, 4) float64 rows ``[Z, x, y, z]`` (Å) of one conformer, or None after reporting a bad record."""
    raw = conformer.get("xyz") if isinstance(conformer, dict) else None
    if not isinstance(raw, (list, tuple)) or len(raw) == 0:
        errors.bad_record(path, record, "missing_xyz", "conformer has no 'xyz' atom list")
        return None
    try:
        arr = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.ndim != 2 or arr.shape[1] != 4:
        bad_row = next(
            (
                i
                for i, r in enumerate(raw)
                if not (isinstance(r, (list, tuple)) and len(r) == 4 and all(isinstance(v, (int, float)) for v in r))
            ),
            0,
        )
        errors.bad_record(
            path,
            record,
            "malformed_atom_row",
            f"xyz row {bad_row} is {raw[bad_row]!r}, expected [atomic_number, x, y, z]",
        )
        return None
    z = arr[:, 0]
    bad_z = np.flatnonzero(~((z == np.round(z)) & (z >= 1) & (z <= MAX_Z)))
    if len(bad_z):
        errors.bad_record(
            path,
            record,
            "bad_atomic_number",
            f"xyz row {bad_z[0]} has atomic number {raw[bad_z[0]][0]!r}, expected an integer 1..{MAX_Z}",
        )
        return None
    bad_xyz = np.flatnonzero(~np.isfinite(arr[:, 1:]).all(axis=1))
    if len(bad_xyz):
        errors.bad_record(
            path, record, "nan_coordinate", f"xyz row {bad_xyz[0]} has a non-finite coordinate {raw[bad_xyz[0]]!r}"
        )
        return None
    return arr


def _energies(conformers: list, path: Path, smiles: str, errors: ErrorPolicy) -> np.ndarray:
    """(C,) totalenergy in Hartree; NaN (after reporting a bad record) where missing or not a number."""
    out = np.full(len(conformers), np.nan)
    for j, conf in enumerate(conformers):
        value = conf.get("totalenergy") if isinstance(conf, dict) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value):
            out[j] = value
        else:
            errors.bad_record(
                path, f"{smiles!r} conformers[{j}]", "bad_energy", f"missing or non-numeric totalenergy {value!r}"
            )
    return out


def select_conformers(
    smiles: str, info: Any, k: int, path: Path, errors: ErrorPolicy
) -> list[tuple[int, dict, np.ndarray]]:
    """The ``k`` lowest-``totalenergy`` valid conformers of one molecule, lowest first.

    Returns ``[(index in info["conformers"], conformer dict, (N, 4) [Z, x, y, z] rows in Å), ...]``.
    """
    conformers = info.get("conformers") if isinstance(info, dict) else None
    if not isinstance(conformers, list):
        errors.bad_record(path, repr(smiles), "missing_conformers", "molecule has no 'conformers' list")
        return []
    energies = _energies(conformers, path, smiles, errors)
    order = np.argsort(energies, kind="stable")[: int(np.isfinite(energies).sum())]  # NaN sorts last
    kept = []
    for j in order:
        if len(kept) == k:
            break
        xyz = conformer_xyz(conformers[j], path, f"{smiles!r} conformers[{j}]", errors)
        if xyz is not None:
            kept.append((int(j), conformers[j], xyz))
    return kept


def _optional_number(mapping: dict, key: str, missing: float) -> float:
    value = mapping.get(key) if isinstance(mapping, dict) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else missing


def _append(kept: _Kept, mol_index: int, smiles: str, info: dict, chosen: list[tuple[int, dict, np.ndarray]]) -> None:
    rows = np.concatenate([xyz for _, _, xyz in chosen])
    kept.z_chunks.append(rows[:, 0].astype(np.int8))
    kept.pos_chunks.append(rows[:, 1:].astype(np.float32))
    charge = _optional_number(info, "charge", np.nan)
    for rank, (j, conf, xyz) in enumerate(chosen):
        kept.num_atoms.append(len(xyz))
        kept.molecule_index.append(mol_index)
        kept.conformer_rank.append(rank)
        kept.conformer_index.append(j)
        kept.energy.append(float(conf["totalenergy"]))
        kept.boltzmann.append(_optional_number(conf, "boltzmannweight", np.nan))
        kept.geom_id.append(int(_optional_number(conf, "geom_id", -1)))
        kept.charge.append(charge)
        kept.smiles.append(smiles)


def _table(kept: _Kept) -> MoleculeTable:
    """Columns: molecule_index, conformer_rank (0 = lowest kept energy), conformer_index (position in the
    file's conformer list), total_energy_ha; boltzmann_weight, charge_e (NaN if absent), geom_id (-1 if
    absent) only when some conformer has them."""
    n = len(kept.num_atoms)
    columns = {
        "molecule_index": np.frombuffer(kept.molecule_index, dtype=np.int64).copy(),
        "conformer_rank": np.frombuffer(kept.conformer_rank, dtype=np.int64).copy(),
        "conformer_index": np.frombuffer(kept.conformer_index, dtype=np.int64).copy(),
        "total_energy_ha": np.frombuffer(kept.energy, dtype=np.float64).copy(),
    }
    for name, values, missing in (
        ("boltzmann_weight", kept.boltzmann, None),
        ("charge_e", kept.charge, None),
        ("geom_id", kept.geom_id, -1),
    ):
        col = np.frombuffer(values, dtype=np.float64 if missing is None else np.int64).copy()
        if (np.isfinite(col) if missing is None else col != missing).any():
            columns[name] = col
    z = np.concatenate(kept.z_chunks) if n else np.zeros(0, np.int8)
    pos = np.concatenate(kept.pos_chunks) if n else np.zeros((0, 3), np.float32)
    smiles = np.empty(n, dtype=object)
    smiles[:] = kept.smiles
    return MoleculeTable(
        np.arange(n, dtype=np.int64), np.frombuffer(kept.num_atoms, dtype=np.int64), z, pos, smiles, columns
    )


def read_geom_drugs(path: str | Path, conformers_per_molecule: int, errors: ErrorPolicy) -> tuple[MoleculeTable, int]:
    """All kept conformers of ``drugs_crude.msgpack`` (one row each) and the number of SMILES read."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GEOM-Drugs file not found: {path} (data.geom_drugs.path); {GEOM_DOWNLOAD}")
    kept, n_read = _Kept(), 0
    for mol_index, smiles, info in iter_geom_molecules(path):
        n_read = mol_index + 1
        chosen = select_conformers(smiles, info, conformers_per_molecule, path, errors)
        if chosen:
            _append(kept, mol_index, smiles, info, chosen)
    if n_read == 0:
        raise DataFormatError(path, None, "no molecules in the file; is this GEOM's drugs_crude.msgpack?")
    return _table(kept), n_read


@register_source("geom_drugs")
def load_geom_drugs(cfg, errors: ErrorPolicy, seed: int = SPLIT_SEED) -> SourceResult:
    """GEOM-Drugs conformers, split by molecule (see the module docstring).

    ``cfg``: :class:`elign.config.DataConfig`; reads ``cfg.geom_drugs``. ``seed`` defaults to
    :data:`SPLIT_SEED` (0).
    """
    gcfg = cfg.geom_drugs
    table, n_read = read_geom_drugs(gcfg.path, gcfg.conformers_per_molecule, errors)
    groups, group_of = np.unique(table.columns["molecule_index"], return_inverse=True)
    labels = random_split_labels(len(groups), gcfg.valid_fraction, gcfg.test_fraction, seed, group_of=group_of)
    group_labels = random_split_labels(len(groups), gcfg.valid_fraction, gcfg.test_fraction, seed)
    info = {
        "path": str(gcfg.path),
        "molecules_in_file": n_read,
        "molecules_kept": int(len(groups)),
        "conformers_kept": int(len(table)),
        "conformers_per_molecule": gcfg.conformers_per_molecule,
        "split": f"by molecule (all conformers of one SMILES in one split), random, seed {seed}",
        "split_seed": seed,
        "molecules_per_split": {s: int((group_labels == s).sum()) for s in SPLITS},
    }
    return SourceResult(table, labels, info)
