"""Fixtures for the MLFF tests: offline weights from ../shared/mlff, one intra-op thread."""

from __future__ import annotations

import os

import pytest
import torch
from mlff_molecules import AIMNET2_PATH, TORCHANI_DIR


@pytest.fixture(scope="module", autouse=True)
def _one_thread_offline_weights():
    """2 shared cores: one intra-op thread is faster and steadier. torchani reads weights from ../shared.

    Module scope (not session): both are restored before tests outside tests/mlff run.
    """
    threads = torch.get_num_threads()
    saved = os.environ.get("TORCHANI_DATA_DIR")
    torch.set_num_threads(1)
    os.environ["TORCHANI_DATA_DIR"] = str(TORCHANI_DIR)
    yield
    torch.set_num_threads(threads)
    if saved is None:
        os.environ.pop("TORCHANI_DATA_DIR", None)
    else:
        os.environ["TORCHANI_DATA_DIR"] = saved


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
