"""Bad input through the real command line (issue 14): exit code 2, one message naming file and record,
no traceback (``--debug`` shows it), nothing written or the previous outputs left as they were.

The generated cases run in-process in the *_fuzz.py tests; these few runs check what only a process can:
the exit code and what reaches stderr.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from elign.diffusion.checkpoint import save_checkpoint
from elign.diffusion.factory import build_model
from elign.model.presets import make_model_config

GOOD = "2\n\nC 0 0 0\nO 1.2 0 0\n"


def elign(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "elign.cli.main", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def files_config(*paths) -> str:
    return json.dumps({"data": {"source": "files", "files": {"paths": [str(p) for p in paths]}}})


def assert_one_message(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if ": error: " in line]
    assert len(errors) == 1, proc.stderr
    assert all(f in errors[0] for f in fragments), proc.stderr


def test_bad_xyz_count_keeps_the_previous_outputs(tmp_path):
    good, out = tmp_path / "good.xyz", tmp_path / "out"
    good.write_text(GOOD * 12)
    assert elign("prepare", "--config-json", files_config(good), "--out-dir", str(out)).returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = tmp_path / "bad.xyz"
    bad.write_text(GOOD + "1\n\nC 0 0 0\nO 1.2 0 0\n" + GOOD)  # the count of frame 2 is one too small
    proc = elign("prepare", "--config-json", files_config(bad), "--out-dir", str(out))
    assert_one_message(proc, str(bad), "record 2", "line 5")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.parametrize(
    "content, fragment",
    [
        (b"seed: 1:30\n", "seed: 1:30: YAML 1.1 reads 1:30 as the sexagesimal (base 60) number 90"),
        (b"seed: 1\n\xff\xfe\n", "not UTF-8"),
        (b"data: " + b"[" * 3000 + b"]" * 3000, "nested too deeply"),
        (b"seed: '0'\n", "seed: '0' is not of the type"),
    ],
)
def test_bad_config_file(tmp_path, content, fragment):
    path = tmp_path / "run.yaml"
    path.write_bytes(content)
    proc = elign("prepare", "--config", str(path), "--out-dir", str(tmp_path / "out"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert str(path) in proc.stderr and fragment in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()


def test_bad_checkpoint_and_debug_traceback(tmp_path):
    config = make_model_config("small_cpu", hidden_nf=8, n_layers=1)
    state = build_model(config).state_dict()
    del state[sorted(state)[0]]
    broken = save_checkpoint(tmp_path / "broken.pt", config, state)
    sample = [
        "sample",
        "--config-json",
        json.dumps({"sample": {"sizes": 3, "num_molecules": 1}}),
        "--out",
        str(tmp_path / "s.parquet"),
        "--no-progress",
    ]
    assert_one_message(
        elign(*sample, "--model", str(broken)), str(broken), "state_dict does not fit", "missing tensors"
    )
    assert_one_message(elign(*sample, "--model", str(tmp_path)), str(tmp_path), "is a folder", "broken.pt")
    (tmp_path / "cut.pt").write_bytes(broken.read_bytes()[:1000])
    debug = elign("--debug", *sample, "--model", str(tmp_path / "cut.pt"))
    assert debug.returncode == 2 and "Traceback" in debug.stderr, debug.stderr
    assert f"elign sample: error: --model: {tmp_path / 'cut.pt'}: is not a complete" in debug.stderr
    assert not any(p.name.startswith("s.") for p in tmp_path.iterdir())


def test_parquet_without_lists(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "flat.parquet"
    pq.write_table(pa.table({"mol_id": [0, 1], "atomic_numbers": [6, 8], "positions_ang": [0.0, 1.0]}), path)
    proc = elign("prepare", "--config-json", files_config(path), "--out-dir", str(tmp_path / "out"))
    assert_one_message(proc, str(path), "column 'atomic_numbers' must be a list of integers")
