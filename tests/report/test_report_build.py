"""``elign report`` from complete synthetic artifacts: every file, tables and images in index.html."""

from __future__ import annotations

import base64
import re

import pandas as pd
import pytest
from report_artifacts import MODELS
from report_artifacts import cli_args as _cli_args

from elign.cli.main import main
from elign.config import ReportConfig
from elign.report import FIGURES, ReportPaths, build_report
from elign.report.molecules import pick_examples

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def expected_files() -> list[str]:
    return (
        [f.file for f in FIGURES]
        + [f"molecules_{m}.png" for m in MODELS]
        + ["headline.csv", "metrics_table.csv", "metrics_table.md", "report.md", "index.html"]
    )


def test_every_file_is_written(report_dir):
    for name in expected_files():
        path = report_dir / name
        assert path.exists() and path.stat().st_size > 0, name
        if name.endswith(".png"):
            assert path.read_bytes()[:8] == PNG_MAGIC, name
    assert not list(report_dir.glob(".*.tmp"))  # atomic writes leave no temp files


def test_index_html_holds_both_tables_and_every_image(report_dir):
    page = (report_dir / "index.html").read_text()
    assert 'id="metrics-table"' in page and 'id="statistics-table"' in page
    metrics = page[page.index('id="metrics-table"') :]
    metrics = metrics[: metrics.index("</table>")]
    for name in ("reference", *MODELS):  # one column per set
        assert f"<th>{name}</th>" in metrics
    assert "aligned vs pretrained" in page and "guided vs pretrained" in page
    pngs = [n for n in expected_files() if n.endswith(".png")]
    embedded = re.findall(r'<figure id="([^"]+)"><h3>[^<]*</h3><img src="data:image/png;base64,([^"]+)"', page)
    assert sorted(f for f, _ in embedded) == sorted(pngs)
    for file, data in embedded:
        assert base64.b64decode(data) == (report_dir / file).read_bytes(), file
    assert "Notes" not in page  # complete inputs: nothing to report missing


def test_report_md_has_the_tables_and_links_every_figure(report_dir):
    md = (report_dir / "report.md").read_text()
    assert md.startswith("# elign report")
    assert md.index("## Headline") < md.index("## Metrics") < md.index("## Statistics")
    assert "aligned vs pretrained" in md
    for name in expected_files():
        if name.endswith(".png"):
            assert f"]({name})" in md, name


def test_metric_table_rows_and_columns(report_dir, artifacts):
    from elign.metrics.evaluate import summarize

    table = pd.read_csv(report_dir / "metrics_table.csv").set_index("model")
    assert list(table.index) == ["reference", *MODELS]
    for name in ("reference", *MODELS):
        want = summarize(pd.read_parquet(artifacts["metrics"][name]), name)
        assert table.loc[name, "validity"] == pytest.approx(want["validity"])
        assert table.loc[name, "mlff_force_rms_ev_per_ang_mean"] == pytest.approx(want["force_rms_ev_per_ang_mean"])
    assert (table.loc["guided", "dft_ok"], table.loc["guided", "dft_failed"]) == (0, 6)
    assert (table.loc["aligned", "dft_ok"], table.loc["aligned", "dft_failed"]) == (5, 1)
    assert pd.isna(table.loc["guided", "dft_force_rms_ev_per_ang_mean"])
    assert table.loc["guided", "sampling_seconds_per_molecule"] == pytest.approx(0.06)
    assert table.loc["guided", "sampling_time_ratio_vs_pretrained"] == pytest.approx(3.0)
    assert pd.isna(table.loc["reference", "dft_ok"])


def test_all_failed_dft_model_is_named_in_the_caption(report_dir):
    page = (report_dir / "index.html").read_text()
    caption = re.search(r'<figure id="dft_force_rms.png">.*?<figcaption>(.*?)</figcaption>', page, re.S).group(1)
    assert "guided: no successful rows (6 failed)" in caption
    assert "pretrained" not in caption  # the others were drawn


def test_examples_put_valid_molecules_first():
    frame = pd.DataFrame({"valid": [False, True, False, True, True]})
    assert pick_examples(5, frame, 4) == [1, 3, 4, 0]
    assert pick_examples(5, None, 2) == [0, 1]
    assert pick_examples(5, frame.iloc[:3], 2) == [0, 1]  # rows that do not match: file order


def test_images_can_be_linked_instead_of_embedded(artifacts, tmp_path):
    paths = ReportPaths(
        out_dir=str(tmp_path),
        metrics=dict(artifacts["metrics"]),
        samples={"aligned": str(artifacts["samples"]["aligned"])},
    )
    build_report(paths, ReportConfig(embed_images=False, example_molecules=2), title="linked")
    page = (tmp_path / "index.html").read_text()
    assert "data:image/png" not in page
    assert '<img src="mlff_force_rms.png"' in page and '<img src="molecules_aligned.png"' in page


def test_backbone_section_puts_the_card_beside_this_runs_samples(artifacts, tmp_path):
    import json

    backbone = tmp_path / "backbone.json"
    backbone.write_text(
        json.dumps(
            {
                "kind": "shipped",
                "name": "qm9-small",
                "sha256": "ab" * 32,
                "weights": "models/qm9-small/weights.pt",
                "card": {
                    "metrics": {
                        "num_molecules": 1000,
                        "seed": 7,
                        "atom_stability": 0.96,
                        "molecule_stability": 0.55,
                        "validity": 0.81,
                        "uniqueness": 0.97,
                        "novelty": 0.6,
                    },
                    "training": {"steps": 90000, "epochs": 57.6, "train_seconds": 36000.0},
                },
            }
        )
    )
    out = tmp_path / "report"
    assert main(["report", *_cli_args(artifacts, out), "--backbone", str(backbone)]) == 0
    md = (out / "report.md").read_text()
    assert "## Backbone" in md and "90,000 steps = 57.6 epochs" in md
    card_row = next(line for line in md.splitlines() if "backbone card (1000 molecules, seed 7)" in line)
    assert "55.0 %" in card_row and "96.0 %" in card_row
    assert any(line.startswith("| this run: pretrained samples") for line in md.splitlines())
    assert 'id="backbone-table"' in (out / "index.html").read_text()


def test_pretrain_figure_shows_in_training_stability_beside_the_loss(tmp_path):
    from PIL import Image

    from elign.report.plots import plot_pretrain_loss

    steps = [100, 200, 300, 400]
    history = pd.DataFrame(
        {
            "step": steps,
            "loss": [0.2, 0.1, 0.08, 0.07],
            "eval_molecules": [None, 32, None, 32],
            "eval_atom_stability": [None, 0.4, None, 0.6],
            "eval_molecule_stability": [None, 0.0, None, 0.1],
            "eval_validity": [None, 0.2, None, 0.3],
        }
    )
    assert plot_pretrain_loss(history, tmp_path / "two.png", 50) == []
    assert plot_pretrain_loss(history.iloc[:, :2], tmp_path / "one.png", 50) == []
    two, one = Image.open(tmp_path / "two.png").size, Image.open(tmp_path / "one.png").size
    assert two[0] == 2 * one[0] and two[1] == one[1]  # a second panel, for the evaluations


def test_the_report_opens_with_what_pretrained_and_aligned_are(artifacts, tmp_path):
    """One sentence under the title names the backbone and the aligned model with their cards; a shipped aligned
    model also gets its card's paired comparison as a section."""
    import json

    backbone, aligned = tmp_path / "backbone.json", tmp_path / "aligned.json"
    backbone.write_text(json.dumps({"kind": "shipped", "name": "qm9-small", "sha256": "ab" * 32}))
    entry = {"backbone": 2.5, "aligned": 2.3, "paired_diff": -0.2, "paired_ci_low": -0.3, "paired_ci_high": -0.1}
    stable = {"backbone": 0.1, "aligned": 0.12, "paired_diff": 0.02, "paired_ci_low": 0.0, "paired_ci_high": 0.04}
    card = {
        "path": "models/qm9-small-elign/card.md",
        "summary": "FED-GRPO at the paper's settings, ANI-2x for UMA, on the small backbone qm9-small.",
        "training": {"iterations": 100, "optimizer_steps": 2400, "train_seconds": 34200.0, "wall_seconds": 36000.0},
        "comparison": {
            "num_molecules": 1000,
            "seed": 9,
            "paired": {
                "force_rms_ev_per_ang": {**entry, "paired_p": 1e-5, "n_pairs": 1000},
                "molecule_stable": {**stable, "paired_p": 0.04, "n_pairs": 1000},
            },
        },
    }
    aligned.write_text(json.dumps({"kind": "shipped", "name": "qm9-small-elign", "sha256": "cd" * 32, "card": card}))
    out = tmp_path / "report"
    args = [*_cli_args(artifacts, out), "--backbone", str(backbone), "--aligned", str(aligned)]
    assert main(["report", *args]) == 0
    md = (out / "report.md").read_text().splitlines()
    opening = next(line for line in md if line.startswith('"pretrained" is'))
    assert opening == (
        '"pretrained" is the shipped backbone qm9-small (models/qm9-small/card.md); "aligned" is the shipped model '
        "qm9-small-elign (models/qm9-small-elign/card.md): FED-GRPO at the paper's settings, ANI-2x for UMA, on "
        "the small backbone qm9-small."
    )
    assert md.index(opening) < next(i for i, line in enumerate(md) if line.startswith("## "))  # the first screen
    assert "## Aligned model" in md
    assert "100 FED-GRPO iterations, 2400 optimizer steps, 9.5 h of training (10.0 h wall)." in "\n".join(md)
    force = next(line for line in md if line.startswith("| MLFF force RMS"))
    cells = [c.strip() for c in force.strip("|").split("|")]
    assert cells == ["MLFF force RMS", "2.5", "2.3", "-0.2 [-0.3, -0.1] eV/Å", "1e-05", "1000"]
    assert "2 [0, 4] points" in next(line for line in md if line.startswith("| molecule stability"))
    assert '<p class="models">&quot;pretrained&quot; is the shipped backbone' in (out / "index.html").read_text()


def test_the_opening_sentence_for_fedgrpo_trained_in_the_run():
    from elign.report.models_text import models_sentence

    settings = {"iterations": 40, "prompts_per_iteration": 4, "rollouts_per_prompt": 8, "shared_prefix_steps": 980}
    text = models_sentence(
        {"kind": "train", "steps": 1200},
        {"kind": "train", "settings": {**settings, "reference_prefix": True}, "mlff": "ani2x"},
    )
    assert text == (
        '"pretrained" is a backbone trained in this run (1,200 steps); "aligned" is FED-GRPO trained in this run '
        "from it: 40 iterations of 4 × 8 rollouts branching after 980 shared reverse steps (the frozen pretrained "
        "network on the shared steps), ani2x rewards."
    )
    assert models_sentence(None, None) == ""
