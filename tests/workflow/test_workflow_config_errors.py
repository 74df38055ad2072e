"""The workflow's config errors (issue 14): the bad key's file is named, and the loader, the schema and
Snakemake agree on a quoted number; nested --config values are read as typed (issue 29)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_config_rules_property import KEYS as MUTATED_KEYS  # noqa: E402
from test_config_rules_property import VALUES as MUTATED_VALUES  # noqa: E402
from test_config_rules_property import nested  # noqa: E402

TREE = ("Snakefile", "workflow", "config", "envs", "models")  # the default run reads models/qm9-small


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


def test_empty_config_file_is_no_override_for_elign(fresh):
    """Issue 29: an experiment without overrides is valid for elign. Snakemake itself refuses an empty
    --configfile before the Snakefile runs (snakemake.common.configfile.load_configfile): write {} there."""
    from elign.config import load_config

    (fresh / "empty.yaml").write_text("")
    (fresh / "braces.yaml").write_text("{}\n")
    assert load_config(fresh / "config/config.yaml", fresh / "empty.yaml") == load_config(fresh / "config/config.yaml")
    assert dry_run(fresh, "--configfile", "braces.yaml").returncode == 0


def _dft_commands(out: str) -> list[str]:
    return sorted(line.split(":", 1)[1].strip() for line in out.splitlines() if "Shell command: elign dft " in line)


def test_nested_config_flag_reads_yaml_scalars_like_a_configfile(fresh):
    """Snakemake parses a nested --config value with YAML's BaseLoader (every scalar a string): the Snakefile
    reads it as typed, so the DFT rule gets the same params (and reruns) as with the same --configfile."""
    (fresh / "dft3.yaml").write_text("dft: {molecules_per_model: 3, guided_molecules: null}\n")
    smoke = ("--forceall", "--printshellcmds", "--configfile", "config/experiments/smoke.yaml")
    by_file = dry_run(fresh, *smoke, "dft3.yaml")
    by_flag = dry_run(fresh, *smoke, "--config", "dft={molecules_per_model: 3, guided_molecules: null}")
    assert by_file.returncode == 0 and by_flag.returncode == 0, by_flag.stderr + by_flag.stdout
    commands = _dft_commands(by_flag.stdout)
    assert commands and commands == _dft_commands(by_file.stdout)
    assert '"molecules_per_model": 3,' in commands[0] and '"guided_molecules": null' in commands[0], commands[0]
    bad = dry_run(fresh, *smoke, "--config", "dft={molecules_per_model: 9}", "sample={batch_size: 1:30}")
    out = bad.stdout + bad.stderr
    assert bad.returncode != 0
    assert "dft.molecules_per_model, sample.num_molecules: 9 DFT molecules per model, but each model samples 8" in out
    assert "sample.batch_size: 1:30: YAML 1.1 reads 1:30 as the sexagesimal (base 60) number 90" in out


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations=st.lists(st.tuples(st.sampled_from(MUTATED_KEYS), MUTATED_VALUES), min_size=1, max_size=2))
def test_mutated_configs_fail_the_dry_run_by_key_or_pass_it(fresh, mutations):
    """Issue 29, through Snakemake: a smoke config mutated at one or two keys (tests/test_config_rules_property.py)
    either stops the dry run with a message naming a mutated key, or the dry run of the whole DAG succeeds."""
    import yaml

    from elign.config import ConfigError, deep_merge, load_config, validate_config

    base = load_config(fresh / "config/config.yaml", fresh / "config/experiments/smoke.yaml").model_dump(mode="json")
    override: dict = {}
    for path, value in mutations:
        override = deep_merge(override, nested(path, value))
    try:
        validate_config(deep_merge(base, override))
        accepted = True
    except ConfigError:
        accepted = False
    (fresh / "mutant.yaml").write_text(yaml.safe_dump(override))
    proc = dry_run(fresh, "--configfile", "config/config.yaml", "config/experiments/smoke.yaml", "mutant.yaml")
    out = proc.stdout + proc.stderr
    if accepted:
        assert proc.returncode == 0, out[-2000:]
    else:
        assert proc.returncode != 0 and any(".".join(p) in out for p, _ in mutations), out[-2000:]
