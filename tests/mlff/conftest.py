"""Fixtures for the MLFF tests: offline weights from ../shared/mlff, one intra-op thread."""

from __future__ import annotations

import pytest
from mlff_molecules import AIMNET2_PATH


@pytest.fixture(scope="module", autouse=True)
def _one_thread_offline_weights(one_thread_offline_ani):
    """Every test here: one torch thread and offline ANI weights (tests/conftest.py)."""
    yield


@pytest.fixture(scope="module")
def ani2x64(shared_dir):
    from elign.mlff import get_backend

    return get_backend("ani2x", dtype="float64")


@pytest.fixture(scope="module")
def torchani_ani2x64(shared_dir):
    """torchani's ANI-2x called directly (the reference the backend must reproduce)."""
    import torchani

    return torchani.models.ANI2x(periodic_table_index=True).double()


@pytest.fixture(scope="module")
def aimnet2(shared_dir):
    from elign.mlff import get_backend

    assert AIMNET2_PATH.is_file(), f"AIMNet2 model missing: {AIMNET2_PATH}"
    return get_backend("aimnet2", model_path=AIMNET2_PATH)
