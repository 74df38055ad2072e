"""config/experiments/qm9_paper.yaml is the paper's FED-GRPO, row for row of docs/paper_config.md."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from elign.config import load_config

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "paper_config.md"


def table_rows() -> list[tuple[str, object]]:
    text = DOC.read_text()
    body = text.split("<!-- paper-config-table:start -->")[1].split("<!-- paper-config-table:end -->")[0]
    rows = []
    for line in body.strip().splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        key, value = re.fullmatch(r"`(.+)`", cells[1]).group(1), re.fullmatch(r"`(.+)`", cells[2]).group(1)
        rows.append((key, yaml.safe_load(value)))
    return rows


def _get(config: dict, dotted: str):
    node = config
    for part in dotted.split("."):
        node = node[part]
    return node


def test_every_row_of_the_table_is_the_resolved_paper_config():
    rows = table_rows()
    assert len(rows) >= 30
    resolved = load_config(REPO / "config/config.yaml", REPO / "config/experiments/qm9_paper.yaml").model_dump(
        mode="json"
    )
    wrong = [(k, v, _get(resolved, k)) for k, v in rows if _get(resolved, k) != v]
    assert not wrong, f"qm9_paper.yaml differs from docs/paper_config.md: {wrong}"


def test_the_table_covers_every_trajectory_key_of_finetune():
    """A new FED-GRPO key must get a row (with its source) or be named as a non-setting in the doc."""
    covered = {k.split(".")[1] for k, _ in table_rows()}
    named_elsewhere = {
        "eval_every",
        "eval_molecules",
        "eval_relax_steps",
        "device",
        "checkpoint_every",
        "minibatch_steps",
        "max_batch_edges",
        "mlff",
    }
    keys = set(load_config().finetune.model_dump())
    assert keys - covered - named_elsewhere == set()


def test_the_table_catches_a_drift():
    resolved = load_config(REPO / "config/config.yaml", REPO / "config/experiments/qm9_paper.yaml").model_dump(
        mode="json"
    )
    resolved["finetune"]["lr"] = 1e-5
    assert any(_get(resolved, k) != v for k, v in table_rows())
