"""Synthetic report inputs, written once per session (see report_artifacts.py), and the report built from them."""

from __future__ import annotations

import pytest
from report_artifacts import cli_args, write_artifacts


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> dict:
    return write_artifacts(tmp_path_factory.mktemp("report_inputs"))


@pytest.fixture(scope="session")
def report_dir(artifacts, tmp_path_factory):
    """The stats stage then the report stage, through the command line, as the workflow runs them."""
    from elign.cli.main import main

    out = tmp_path_factory.mktemp("report")
    metrics_dft = [
        x
        for flag, key in (("--metrics", "metrics"), ("--dft", "dft"))
        for name, path in artifacts[key].items()
        if name != "reference"
        for x in (flag, f"{name}={path}")
    ]
    cfg = '{"seed": 1, "report": {"n_bootstrap": 500, "example_molecules": 6}}'
    assert main(["stats", "--config-json", cfg, *metrics_dft, "--out", str(out / "statistics.csv")]) == 0
    assert main(["report", "--config-json", cfg, *cli_args(artifacts, out, out / "statistics.csv")]) == 0
    return out
