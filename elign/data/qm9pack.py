"""QM9 from the PyPI package ``qm9pack`` (MIT; by QM9's first author): all 130,831 characterized molecules.

The package ships CSV files (``qm9pack/data/qm9_part{1,2,3}.csv`` + ``qm9_polarizability.csv``) with
B3LYP/6-31G(2df,p) coordinates in Å, SMILES, InChI and every QM9 property. We read them directly (its
``get_data`` needs ``pkg_resources``) and parse the stringified coordinate/charge lists in one vectorized
pass. Property columns are renamed to ``elign.data.qm9_columns`` (units in the names).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pandas as pd

from elign.data.errors import ErrorPolicy
from elign.data.qm9_columns import QM9_SCALAR_COLUMNS
from elign.data.registry import SourceResult, register_source
from elign.data.split import QM9_TOTAL, edm_qm9_split_labels
from elign.elements import atomic_number
from elign.io.table import MoleculeTable

CSV_PARTS = ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv")
POLARIZABILITY_CSV = "qm9_polarizability.csv"
# qm9pack column → our column (same order as QM9_SCALAR_COLUMNS).
_SCALAR_SOURCE = (
    "RotA_GHz",
    "RotB_GHz",
    "RotC_GHz",
    "Dipole_debye",
    "Polarizability_bohr3",
    "HOMO_au",
    "LUMO_au",
    "HOMO_LUMO_gap_au",
    "R2_bohr2",
    "ZPVE_au",
    "InternalEnergy_0K_au",
    "InternalEnergy_298K_au",
    "Enthalphy_298K_au",
    "GibbsFreeEnergy_298K_au",
    "Heatcapacity_Cv_cal_mol_K",
)
_TENSOR_SOURCE = ("A_xx", "A_xy", "A_yy", "A_xz", "A_yz", "A_zz")
_REQUIRED = ("Index", "SMILES", "InChi", "N_atoms", "Elements", "XYZ_Ang", "Mulliken_pop", "Harmonic_Freq_cmi")
_NUMBER_LIST = re.compile(r"[\[\]\s']")


def qm9pack_data_dir() -> Path:
    """Folder holding qm9pack's CSV files; a clear error if the package is not installed."""
    # find_spec does not execute the package (its __init__ imports pkg_resources, gone from new setuptools).
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("data.source 'qm9pack' needs the PyPI package qm9pack: pip install qm9pack==1.0.3")
    return Path(spec.submodule_search_locations[0]) / "data"


def read_qm9pack_frame(data_dir: Path | None = None) -> pd.DataFrame:
    """All qm9pack rows (one per molecule) joined with the polarizability tensor, sorted by QM9 index."""
    data_dir = data_dir or qm9pack_data_dir()
    parts = []
    for name in CSV_PARTS:
        path = data_dir / name
        if not path.exists():
            raise FileNotFoundError(f"qm9pack file missing: {path} (reinstall qm9pack)")
        parts.append(pd.read_csv(path, engine="pyarrow"))
    frame = pd.concat(parts, ignore_index=True)
    missing = [c for c in _REQUIRED + _SCALAR_SOURCE if c not in frame.columns]
    if missing:
        raise ValueError(f"{data_dir}: qm9pack CSV lacks columns {missing}")
    tensor_path = data_dir / POLARIZABILITY_CSV
    if tensor_path.exists():
        tensor = pd.read_csv(tensor_path, engine="pyarrow")
        frame = frame.merge(tensor, on="XYZ_file", how="left")
    return frame.sort_values("Index", kind="stable").reset_index(drop=True)


def _strip_lists(strings: pd.Series) -> list[str]:
    return [_NUMBER_LIST.sub("", s).strip(",") for s in strings.astype(str)]


def _count_numbers(stripped: list[str]) -> np.ndarray:
    return np.array([0 if not s else s.count(",") + 1 for s in stripped], dtype=np.int64)


def _parse_number_lists(
    strings: pd.Series, expected_counts: np.ndarray | None, what: str, path: str, mol_ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Flatten stringified lists like ``[[x,y,z],...]`` into one float64 array, checked per molecule.

    expected_counts: (M,) numbers per molecule, or None to accept what is there.
    Returns (flat values (sum counts,) float64, counts (M,)).
    """
    stripped = _strip_lists(strings)
    counts = _count_numbers(stripped)
    if expected_counts is not None and not np.array_equal(counts, expected_counts):
        bad = np.flatnonzero(counts != expected_counts)[0]
        raise ValueError(
            f"{path}: molecule {mol_ids[bad]}: {what} has {counts[bad]} numbers, expected {expected_counts[bad]}"
        )
    text = ",".join(s for s in stripped if s)
    values = np.array(text.split(","), dtype=np.float64) if text else np.zeros(0)
    return values, counts


def _parse_elements(elements: pd.Series) -> tuple[np.ndarray, list[str | None]]:
    """(A,) atomic numbers from strings like ``['C','H']``; per molecule the first unknown symbol or None."""
    symbols = [s.strip("[]").replace("'", "").split(",") for s in elements.astype(str)]
    lookup: dict[str, int] = {}
    z_all, unknown = [], []
    for syms in symbols:
        bad = None
        for s in syms:
            if s not in lookup:
                try:
                    lookup[s] = atomic_number(s)
                except KeyError:
                    lookup[s] = -1
            if lookup[s] < 0 and bad is None:
                bad = s
        unknown.append(bad)
        z_all.extend(lookup[s] for s in syms)
    return np.array(z_all, dtype=np.int64), unknown


def qm9pack_table(frame: pd.DataFrame, errors: ErrorPolicy, path: str = "qm9pack") -> MoleculeTable:
    """Convert qm9pack rows to a :class:`MoleculeTable`; bad rows go through ``errors``."""
    mol_ids = frame["Index"].to_numpy(np.int64)
    n_atoms = frame["N_atoms"].to_numpy(np.int64)
    z, unknown = _parse_elements(frame["Elements"])
    counts_z = np.array([s.count(",") + 1 for s in frame["Elements"].astype(str)])
    if len(z) != int(counts_z.sum()) or not np.array_equal(counts_z, n_atoms):
        bad = np.flatnonzero(counts_z != n_atoms)[0]
        raise ValueError(f"{path}: molecule {mol_ids[bad]}: {counts_z[bad]} elements for N_atoms={n_atoms[bad]}")
    xyz = _parse_number_lists(frame["XYZ_Ang"], 3 * n_atoms, "XYZ_Ang", path, mol_ids)[0].reshape(-1, 3)
    charges = _parse_number_lists(frame["Mulliken_pop"], n_atoms, "Mulliken_pop", path, mol_ids)[0]
    freqs, n_freqs = _parse_number_lists(frame["Harmonic_Freq_cmi"], None, "Harmonic_Freq_cmi", path, mol_ids)
    keep = np.ones(len(frame), dtype=bool)
    atom_mol = np.repeat(np.arange(len(frame)), n_atoms)
    nan_mol = np.zeros(len(frame), dtype=bool)
    nan_mol[atom_mol[~np.isfinite(xyz).all(axis=1)]] = True
    for i in np.flatnonzero(nan_mol | np.array([u is not None for u in unknown])):
        kind, problem = (
            ("unknown_element", f"unknown element symbol {unknown[i]!r}")
            if unknown[i] is not None
            else ("nan_coordinate", "non-finite coordinate")
        )
        errors.bad_record(path, int(mol_ids[i]), kind, problem)
        keep[i] = False
    offsets = np.concatenate([[0], np.cumsum(n_atoms)])
    columns = {ours: frame[src].to_numpy(np.float64) for ours, src in zip(QM9_SCALAR_COLUMNS, _SCALAR_SOURCE)}
    for src in _TENSOR_SOURCE:
        if src in frame.columns:
            columns[f"alpha_{src[2:]}_bohr3"] = frame[src].to_numpy(np.float64)
    columns["mulliken_charges_e"] = _split_object(charges, offsets)
    columns["harmonic_freqs_cm1"] = _split_object(freqs, np.concatenate([[0], np.cumsum(n_freqs)]))
    columns["inchi"] = frame["InChi"].astype(object).to_numpy()
    table = MoleculeTable(mol_ids, n_atoms, z, xyz, frame["SMILES"].astype(object).to_numpy(), columns)
    return table if keep.all() else table.take(np.flatnonzero(keep))


def _split_object(flat: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Object array whose entries are float64 arrays: ``flat`` cut at ``offsets`` ((M+1,))."""
    pieces = np.split(flat, offsets[1:-1])
    out = np.empty(len(pieces), dtype=object)
    out[:] = [np.asarray(p, dtype=np.float64) for p in pieces]
    return out


@register_source("qm9pack")
def load_qm9pack(cfg, errors: ErrorPolicy, seed: int = 0) -> SourceResult:
    """All characterized QM9 molecules with EDM's split labels (see :mod:`elign.data.split`).

    ``seed`` is not used: QM9's split is EDM's fixed rule, whatever the run's seed.
    """
    data_dir = qm9pack_data_dir()
    frame = read_qm9pack_frame(data_dir)
    all_ids = frame["Index"].to_numpy(np.int64)
    if len(np.unique(all_ids)) != len(all_ids):
        raise ValueError(f"{data_dir}: duplicate QM9 indices in qm9pack")
    table = qm9pack_table(frame, errors, path=str(data_dir))
    labels = edm_qm9_split_labels(table.mol_id, all_ids)
    info = {
        "qm9pack_dir": str(data_dir),
        "rows_in_package": int(len(frame)),
        "uncharacterized_excluded": int(QM9_TOTAL - len(frame)),
    }
    return SourceResult(table, labels, info)
