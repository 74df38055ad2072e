"""The workflow's config errors (issue 14): the bad key's file is named, and the loader, the schema and
Snakemake agree on a quoted number and on an empty config file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TREE = ("Snakefile", "workflow", "config", "envs")


@pytest.fixture(scope="module")
def fresh(tmp_path_factory, repo_root) -> Path:
    root = tmp_path_factory.mktemp("workflow_config")
    for name in TREE:
        src = repo_root / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, root / name)
    return root


def dry_run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(
        [str(Path(sys.executable).parent / "snakemake"), "-n", "--cores", "1", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    "content, expected",
    [
        ("data:\n  files:\n    valid_fraction: 0.6\n    test_fraction: 0.5\n", "leaves no molecules to train on"),
        ("seed: '0'\n", "seed: '0' is not of the type the schema allows"),
        ("pretrain:\n  atom_decoder: [H, Xx]\n", "unknown element symbol 'Xx'"),
    ],
)
def test_bad_value_names_its_file(fresh, content, expected):
    (fresh / "override.yaml").write_text(content)
    proc = dry_run(fresh, "--configfile", "override.yaml")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and expected in out, out
    assert f"[in {fresh / 'override.yaml'}]" in out, out


def test_empty_config_file_is_refused_by_both(fresh):
    from elign.config import ConfigError, load_config

    (fresh / "empty.yaml").write_text("")
    proc = dry_run(fresh, "--configfile", "empty.yaml")
    assert proc.returncode != 0
    with pytest.raises(ConfigError, match="empty"):
        load_config(fresh / "empty.yaml")
