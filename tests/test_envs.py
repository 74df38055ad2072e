"""environment.yml and envs/*.yaml pin the same packages as pyproject.toml."""

from __future__ import annotations

import re
import tomllib

import pytest
import yaml


def _pins(requirements: list[str]) -> dict[str, str]:
    pins = {}
    for req in requirements:
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(==|>=)\s*([^\s;]+)", req.strip())
        if m:
            pins[m.group(1).lower()] = m.group(3)
    return pins


def _env_pip(path) -> list[str]:
    env = yaml.safe_load(path.read_text())
    pip = [d for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert pip, f"{path}: no pip section"
    return pip[0]["pip"]


@pytest.fixture(scope="module")
def project(repo_root):
    data = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]
    return _pins(data["dependencies"]), _pins(data["optional-dependencies"]["test"])


def test_environment_yml_matches_pyproject(repo_root, project):
    deps, test = project
    env = _pins(_env_pip(repo_root / "environment.yml"))
    expected = {**deps, **test, "torch": "2.13.0"}  # the env pins the CPU build `make` installs
    assert env == expected


def test_rule_envs_match_pyproject(repo_root, project):
    deps, _ = project
    files = sorted((repo_root / "envs").glob("*.yaml"))
    assert files
    for path in files:
        env = _pins(_env_pip(path))
        # UMA's env swaps mace-torch for fairchem-core (they need different e3nn): the one allowed extra.
        extra = {"fairchem-core"} if path.name == "uma.yaml" else set()
        assert not extra or "mace-torch" not in env, "uma.yaml must not install mace-torch"
        for name, version in env.items():
            if name in extra:
                continue
            want = "2.13.0" if name == "torch" else deps.get(name)
            assert want == version, f"{path.name}: {name}=={version} but pyproject pins {want}"
        assert "-e .." in _env_pip(path), f"{path.name} must install elign itself"


def test_every_rule_env_exists(repo_root):
    for smk in (repo_root / "workflow/rules").glob("*.smk"):
        for rel in re.findall(r'conda:\s*\n\s*"([^"]+)"', smk.read_text()):
            assert (smk.parent / rel).resolve().exists(), f"{smk.name}: conda env {rel} missing"
