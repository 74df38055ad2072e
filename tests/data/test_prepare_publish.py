"""``elign prepare`` publishes its four files together (issue 14: a half-updated folder).

Generated failures, at any of the four writes (or in the input), leave the previous run's train/valid/
test/stats exactly as they were and no temporary file; a run that succeeds replaces all four, and they
agree with each other.
"""

from __future__ import annotations

import json
import os
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import elign.data.prepare as prepare_mod
from elign.config import validate_config
from elign.io.errors import DataFormatError
from elign.io.molecules import read_molecules, read_provenance

OUTPUTS = ["stats.json", "test.parquet", "train.parquet", "valid.parquet"]


def xyz_text(n: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        pos = np.array([[0.0, 0.0, 0.0], [1.1 + 0.01 * i, 0.0, 0.0], [0.0, 1.2, 0.1 * rng.random()]])
        frames.append("3\nframe\n" + "".join(f"{s} {x:.6f} {y:.6f} {z:.6f}\n" for s, (x, y, z) in zip("CON", pos)))
    return "".join(frames)


def config(path, seed: int):
    return validate_config(
        {"seed": seed, "data": {"source": "files", "dataset": "fuzz", "files": {"paths": [str(path)]}}}
    )


@pytest.fixture(scope="module")
def previous(tmp_path_factory):
    """A folder holding a complete earlier run, and the bytes of its four files."""
    root = tmp_path_factory.mktemp("publish")
    src = root / "old.xyz"
    src.write_text(xyz_text(20, seed=1))
    out = root / "out"
    prepare_mod.prepare(config(src, seed=1), out)
    return root, out, {name: (out / name).read_bytes() for name in OUTPUTS}


@settings(max_examples=max(20, settings().max_examples // 4))  # each example is a whole prepare run
@given(fail_at=st.integers(1, 4), partial=st.booleans(), n=st.integers(5, 30), seed=st.integers(0, 50))
def test_a_failed_run_leaves_the_previous_set(previous, fail_at, partial, n, seed):
    root, out, before = previous
    src = root / "new.xyz"
    src.write_text(xyz_text(n, seed))
    calls = []
    real_write, real_json = prepare_mod.write_molecules, prepare_mod.json_text

    def failing_write(path, table, meta):
        calls.append(path)
        if len(calls) == fail_at:
            if partial:
                path.write_bytes(b"PAR1 half a file")
            raise OSError("disk full")
        real_write(path, table, meta)

    def failing_json(obj):
        raise OSError("disk full")

    with (
        mock.patch.object(prepare_mod, "write_molecules", failing_write),
        mock.patch.object(prepare_mod, "json_text", failing_json if fail_at == 4 else real_json),
    ):
        with pytest.raises(OSError, match="disk full"):
            prepare_mod.prepare(config(src, seed), out)
    assert sorted(os.listdir(out)) == OUTPUTS  # no temporary file left
    assert {name: (out / name).read_bytes() for name in OUTPUTS} == before


@settings(max_examples=max(20, settings().max_examples // 4))
@given(bad_frame=st.integers(0, 9), seed=st.integers(0, 50))
def test_bad_input_leaves_the_previous_set(previous, bad_frame, seed):
    root, out, before = previous
    frames = xyz_text(10, seed).split("3\nframe\n")[1:]
    frames[bad_frame] = frames[bad_frame].replace("C ", "Xx ", 1)
    src = root / "bad.xyz"
    src.write_text("".join("3\nframe\n" + f for f in frames))
    with pytest.raises(DataFormatError, match=rf"bad.xyz, record {bad_frame + 1}: line \d+: unknown element"):
        prepare_mod.prepare(config(src, seed), out)
    assert sorted(os.listdir(out)) == OUTPUTS
    assert {name: (out / name).read_bytes() for name in OUTPUTS} == before


@settings(max_examples=max(10, settings().max_examples // 10))
@given(n=st.integers(5, 30), seed=st.integers(0, 50))
def test_a_successful_run_replaces_all_four_consistently(tmp_path_factory, n, seed):
    root = tmp_path_factory.mktemp("ok")
    src, out = root / "in.xyz", root / "out"
    src.write_text(xyz_text(n, seed))
    stats = prepare_mod.prepare(config(src, seed), out)
    assert sorted(os.listdir(out)) == OUTPUTS
    assert json.loads((out / "stats.json").read_text()) == stats
    sizes = {s: len(read_molecules(out / f"{s}.parquet")) for s in ("train", "valid", "test")}
    assert stats["split_sizes"] == sizes and sum(sizes.values()) == n
    hashes = {read_provenance(out / f"{s}.parquet")["config_hash"] for s in sizes}
    assert hashes == {stats["provenance"]["config_hash"]}
