"""Fixtures for the FED-GRPO tests: one intra-op thread, offline ANI-2x weights, tiny models."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def _one_thread_offline_weights(one_thread_offline_ani):
    """Every test here: one torch thread and offline ANI weights (tests/conftest.py)."""
    yield


@pytest.fixture(scope="module")
def tiny64():
    from rl_toys import tiny_model

    return tiny_model(torch.float64)
