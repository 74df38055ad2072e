"""Shared pieces of the DFT tests: small molecules, cheap levels, QM9 rows, PySCF threads.

The machine running the suite has few cores shared with other jobs: every PySCF call here uses one
OpenMP thread (``pyscf.lib.num_threads(1)`` in-process, ``DftWorker(threads=1)`` in children).
"""

from __future__ import annotations

import pytest
from dft_molecules import THREADS

from elign.dft.level import DftLevel


@pytest.fixture(autouse=True, scope="session")
def _pyscf_threads():
    from pyscf import lib

    lib.num_threads(THREADS)


@pytest.fixture(scope="session")
def cheap_level() -> DftLevel:
    """sto-3g: for plumbing tests (seconds, not minutes)."""
    return DftLevel(basis="sto-3g")


@pytest.fixture(scope="session")
def qm9_level() -> DftLevel:
    """QM9's level: b3lypg / 6-31G(2df,p) (Gaussian's definition), density fitting, grid 3."""
    return DftLevel()


@pytest.fixture(scope="session")
def qm9_first_rows():
    """The first 30 QM9 molecules (qm9pack), with their properties (u0_ha, zpve_ha, ...)."""
    import pandas as pd

    from elign.data.errors import ErrorPolicy
    from elign.data.qm9pack import qm9pack_data_dir, qm9pack_table

    return qm9pack_table(pd.read_csv(qm9pack_data_dir() / "qm9_part1.csv", nrows=30), ErrorPolicy())
