"""Shared fixtures: paths to the repository and to ../shared (read-only data for tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.exists():
        pytest.fail(f"../shared not found beside the checkout ({SHARED}); tests need its data files")
    return SHARED


TINY_QM9_MOLECULES = 64


@pytest.fixture(scope="session")
def tiny_qm9_dir(tmp_path_factory) -> Path:
    """A data-stage folder with ``train.parquet`` = the first 64 QM9 molecules (qm9pack; written once)."""

    out = tmp_path_factory.mktemp("tiny_qm9")
    import pandas as pd

    from elign.data.errors import ErrorPolicy
    from elign.data.qm9pack import qm9pack_data_dir, qm9pack_table
    from elign.io.molecules import write_molecules

    frame = pd.read_csv(qm9pack_data_dir() / "qm9_part1.csv", nrows=TINY_QM9_MOLECULES)
    table = qm9pack_table(frame, ErrorPolicy())
    table.columns = {}
    write_molecules(out / "train.parquet", table)
    return out
