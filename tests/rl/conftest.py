"""Fixtures for the FED-GRPO tests: one intra-op thread, offline ANI-2x weights, tiny models."""

from __future__ import annotations

import os

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def _one_thread_offline_weights(shared_dir):
    """2 shared cores: one thread. torchani reads its weights from ../shared (restored afterwards)."""
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


@pytest.fixture(scope="module")
def tiny64():
    from rl_toys import tiny_model

    return tiny_model(torch.float64)
