"""Shared fixtures: paths to the repository and to ../shared (read-only data for tests)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

# Property-based tests (the *_fuzz.py modules): "ci" runs a fixed, reproducible set of examples per test;
# ELIGN_HYPOTHESIS_PROFILE=explore draws 10x more, fresh each run.
settings.register_profile(
    "ci",
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "explore",
    max_examples=2000,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("ELIGN_HYPOTHESIS_PROFILE", "ci"))


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


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory) -> Path:
    """A folder for the files one property-based test writes (module scope: hypothesis reruns the test body)."""
    return tmp_path_factory.mktemp("fuzz")


def check_clear_error(exc: BaseException, path, record: int | None = None, line: int | None = None) -> str:
    """Assert ``exc`` is one clear input error: one line naming the file (and record, line); returns the message."""
    from elign.io.errors import DataFormatError

    assert isinstance(exc, DataFormatError), f"{type(exc).__name__}: {exc}"
    msg = str(exc)
    assert "\n" not in msg and "Traceback" not in msg, msg
    where = f"{path}, record {record}: " if record is not None else f"{path}: "
    assert msg.startswith(where), f"expected {where!r} at the start of {msg!r}"
    if line is not None:
        assert msg.startswith(f"{where}line {line}: "), f"expected line {line} in {msg!r}"
    assert len(msg) > len(where) + 10, f"no problem stated in {msg!r}"
    return msg


@pytest.fixture(scope="session")
def clear_error():
    """:func:`check_clear_error`, for test modules in any folder."""
    return check_clear_error


@pytest.fixture()
def one_torch_thread():
    """Tiny models on a shared CPU: one torch thread avoids oversubscription stalls (restored afterwards).
    A module uses it for every test with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
