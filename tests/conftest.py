"""Shared fixtures: paths to the repository and to ../shared (read-only data for tests)."""

from __future__ import annotations

import os
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


@pytest.fixture(scope="module")
def one_thread_offline_ani(shared_dir):
    """One intra-op thread (2 shared cores: faster and steadier) and torchani's weights from ../shared.

    Module scope: both are restored after the module, before tests that do not ask for this run.
    """
    import torch

    threads = torch.get_num_threads()
    saved = os.environ.get("TORCHANI_DATA_DIR")
    torch.set_num_threads(1)
    os.environ["TORCHANI_DATA_DIR"] = str(shared_dir / "mlff" / "torchani")
    yield
    torch.set_num_threads(threads)
    if saved is None:
        os.environ.pop("TORCHANI_DATA_DIR", None)
    else:
        os.environ["TORCHANI_DATA_DIR"] = saved
