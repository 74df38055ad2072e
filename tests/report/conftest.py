"""Synthetic report inputs, written once per session (see report_artifacts.py)."""

from __future__ import annotations

import pytest

from report_artifacts import write_artifacts


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> dict:
    return write_artifacts(tmp_path_factory.mktemp("report_inputs"))
