"""The ``elign`` command line: stage dispatch, config resolution, clear errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml

from elign.cli.main import main
from elign.config import schema_yaml


def _elign(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "elign.cli.main", *args], capture_output=True, text=True, cwd=cwd)


def test_config_schema_to_stdout(capsys):
    assert main(["config-schema", "--out", "-"]) == 0
    assert capsys.readouterr().out == schema_yaml()


def test_bad_config_key_is_one_clear_message(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"data": {"max_atoms": 3}}))
    proc = _elign("prepare", "--config", str(bad), "--out-dir", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert "data.max_atoms: unknown key" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_bad_config_json(tmp_path):
    proc = _elign("prepare", "--config-json", "{not json", "--out-dir", str(tmp_path))
    assert proc.returncode == 2 and "--config-json is not valid JSON" in proc.stderr


def test_prepare_with_config_files_and_json_override(tmp_path, repo_root):
    override = json.dumps({"data": {"subset": {"train": 3, "valid": 2, "test": 1}}})
    proc = _elign(
        "prepare",
        "--config",
        str(repo_root / "config/config.yaml"),
        "--config-json",
        override,
        "--out-dir",
        str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["split_sizes"] == {"train": 3, "valid": 2, "test": 1}


def test_missing_input_file_is_named(tmp_path):
    cfg = json.dumps({"data": {"source": "files", "files": {"paths": [str(tmp_path / "missing.sdf")]}}})
    proc = _elign("prepare", "--config-json", cfg, "--out-dir", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert "missing.sdf" in proc.stderr and "Traceback" not in proc.stderr
