"""``elign report``: the report folder: tables (CSV + Markdown), PNG figures, ``report.md`` and ``index.html``.

Files written into ``out_dir`` (fixed names, so a workflow can declare them):
``headline.csv`` (the numbers of the headline table: one row per set and metric, with Δ, interval and p),
``metrics_table.csv``, ``metrics_table.md``, the PNGs of :data:`FIGURES`, ``molecules_{model}.png`` per
model named by ``--samples``, ``report.md`` and ``index.html`` (self-contained: HTML tables, images
embedded as base64 unless ``report.embed_images`` is false). Both pages lead with the headline table
(:mod:`elign.report.headline`).

A figure whose inputs are missing or empty says so in the image. Should drawing still fail, the figure
becomes a placeholder with the error and the failure is listed under "Notes" (and logged): the report is
always complete, and never silent about what it could not show.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from elign.config import ReportConfig
from elign.io.atomic import atomic_path, write_text_atomic
from elign.report import plots
from elign.report.headline import Headline, build_headline, dft_level_text, headline_html, headline_markdown
from elign.report.inputs import ReportData, ReportPaths, load_inputs
from elign.report.models_text import aligned_section, models_sentence
from elign.report.molecules import example_grid
from elign.report.tables import backbone_section, display_long, metric_table
from elign.report.verdict import power_table, verdict
from elign.stats.compare import METRICS
from elign.stats.display import display_table, markdown_table, method_line

log = logging.getLogger("elign.report")
SPECS = {s.key: s for s in METRICS}


@dataclass(frozen=True)
class Figure:
    file: str
    title: str
    caption: str


FIGURES = (
    Figure("pretrain_loss.png", "Pretraining loss", "EDM L2 ε-loss against the optimizer step."),
    Figure(
        "finetune_curves.png",
        "FED-GRPO training",
        "Per-iteration rewards, MLFF statistics of the rollouts "
        "(before the update) and training quantities of FED-GRPO.",
    ),
    Figure("mlff_force_rms.png", "MLFF force RMS", "Per-molecule RMS of |F| from the MLFF (evaluate stage)."),
    Figure(
        "mlff_energy_per_atom.png",
        "MLFF formation energy per atom",
        "Per-molecule MLFF formation energy per atom (evaluate stage).",
    ),
    Figure(
        "mlff_relaxation_energy.png",
        "MLFF relaxation energy",
        "Per-molecule E(sample) − E(relaxed) with the evaluation MLFF (FIRE, evaluate.relax; a lower bound where "
        "the step cap stopped the relaxation).",
    ),
    Figure("dft_force_rms.png", "DFT force RMS", "Per-molecule RMS of |F| from PySCF on the DFT subset."),
    Figure(
        "dft_energy_per_atom.png",
        "DFT formation energy per atom",
        "Per-molecule DFT formation energy per atom on the DFT subset.",
    ),
    Figure("sizes.png", "Molecule sizes", "Atom counts per molecule of each set."),
    Figure("sampling_time.png", "Sampling time", "Seconds per sampled molecule per model."),
)


@dataclass
class ReportResult:
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    figures: list[tuple[str, str, str]] = field(default_factory=list)  # (file, title, caption)
    sections: list[tuple[str, str, pd.DataFrame]] = field(default_factory=list)  # (title, intro, table)
    verdict: str = ""  # the opening sentences (elign.report.verdict)
    models: str = ""  # what "pretrained" and "aligned" are (elign.report.models_text)


def _values(frames: dict[str, pd.DataFrame], names, key: str) -> dict:
    """Per-molecule values of metric ``key`` for each name (None when the input or its column is missing)."""
    return {n: (SPECS[key].extract(frames[n]) if n in frames else None) for n in names}


def _sizes(data: ReportData, paths: ReportPaths) -> dict:
    names = list(dict.fromkeys([*paths.metrics, *paths.samples]))
    out = {}
    for n in names:
        if n in data.metrics and "num_atoms" in data.metrics[n]:
            out[n] = data.metrics[n]["num_atoms"].to_numpy()
        else:
            out[n] = data.samples[n].num_atoms if n in data.samples else None
    return out


def _figure_jobs(data: ReportData, paths: ReportPaths, cfg: ReportConfig) -> dict[str, Callable[[Path], list[str]]]:
    dpi, bins = cfg.dpi, cfg.histogram_bins

    def dist(frames, names, key, empty):
        spec = SPECS[key]
        return lambda p: plots.plot_distributions(
            _values(frames, names, key), p, dpi, spec.label, f"{spec.label} ({spec.unit})", bins, empty
        )

    return {
        "pretrain_loss.png": lambda p: plots.plot_pretrain_loss(data.pretrain_history, p, dpi),
        "finetune_curves.png": lambda p: plots.plot_finetune(data.finetune_history, p, dpi),
        "mlff_force_rms.png": dist(data.metrics, paths.metrics, "mlff_force_rms_ev_per_ang", "no MLFF results"),
        "mlff_energy_per_atom.png": dist(
            data.metrics, paths.metrics, "mlff_formation_energy_per_atom_ev", "no MLFF results"
        ),
        "mlff_relaxation_energy.png": dist(
            data.metrics, paths.metrics, "relaxation_energy_kcal_mol", "no relaxation results"
        ),
        "dft_force_rms.png": dist(data.dft, paths.dft, "dft_force_rms_ev_per_ang", "no DFT results"),
        "dft_energy_per_atom.png": dist(data.dft, paths.dft, "dft_formation_energy_per_atom_ev", "no DFT results"),
        "sizes.png": lambda p: plots.plot_sizes(_sizes(data, paths), p, dpi),
        "sampling_time.png": lambda p: plots.plot_sampling_time(data.timing, data.sample_summaries, p, dpi),
    }


def _safely(draw: Callable[[Path], list[str]], path: Path, title: str, dpi: int, notes: list[str]) -> list[str]:
    """Draw one figure; returns its remarks (what it could not show)."""
    try:
        return list(draw(path))
    except Exception as exc:  # the report goes on; the failure is shown, listed and logged
        log.exception("figure %s failed", path.name)
        why = f"figure failed: {type(exc).__name__}: {exc}"
        notes.append(f"{path.name}: {why}")
        with plots.figure(path, dpi) as axes:
            axes[0, 0].set_title(title)
            plots.placeholder(axes[0, 0], why)
        return [why]


def _caption(text: str, remarks: list[str]) -> str:
    return f"{text} Not shown: {'; '.join(remarks)}." if remarks else text


def _tables(data: ReportData, out: Path, result: ReportResult) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    try:
        table = metric_table(data.metrics, data.dft, data.timing)
    except Exception as exc:
        log.exception("metric table failed")
        result.notes.append(f"metric table failed: {type(exc).__name__}: {exc}")
        table = pd.DataFrame({"model": list(data.metrics)})
    with atomic_path(out / "metrics_table.csv") as tmp:
        table.to_csv(tmp, index=False)
    write_text_atomic(out / "metrics_table.md", display_long(table).to_markdown(index=False) + "\n")
    result.files += [out / "metrics_table.csv", out / "metrics_table.md"]
    return table, data.statistics


def _headline(data: ReportData, table: pd.DataFrame, cfg: ReportConfig, out: Path, result: ReportResult) -> Headline:
    """The headline table (its numbers also as ``headline.csv``); a failure is noted, never fatal."""
    try:
        levels = {json.dumps(f.attrs.get("level"), sort_keys=True) for f in data.dft.values()}
        if len(levels) > 1:
            result.notes.append(f"the DFT results disagree on the level: {sorted(levels)}")
        level = dft_level_text(json.loads(levels.pop())) if len(levels) == 1 else None
        headline = build_headline(table, data.statistics, data.timing, cfg.baseline_model, cfg.confidence, level)
    except Exception as exc:
        log.exception("headline table failed")
        result.notes.append(f"headline table failed: {type(exc).__name__}: {exc}")
        headline = build_headline(
            table[["model"]] if "model" in table else pd.DataFrame({"model": []}),
            None,
            None,
            cfg.baseline_model,
            cfg.confidence,
        )
    with atomic_path(out / "headline.csv") as tmp:
        headline.long.to_csv(tmp, index=False)
    result.files.append(out / "headline.csv")
    return headline


def _verdict(statistics: pd.DataFrame | None, cfg: ReportConfig, result: ReportResult) -> None:
    """The opening sentences and the DFT power section; a failure is noted, never fatal."""
    try:
        result.verdict = verdict(statistics, cfg.baseline_model, cfg.confidence)
        power = power_table(statistics, cfg.baseline_model)
    except Exception as exc:
        log.exception("verdict failed")
        result.notes.append(f"DFT verdict failed: {type(exc).__name__}: {exc}")
        return
    if power is not None:
        intro = (
            "The paired DFT tests: pairs of the same mol_id and sampling noise with both sides converged, the SD of "
            "their differences, and the smallest difference the two-sided paired t test detects at alpha = "
            f"{1 - cfg.confidence:.2g} with {100 * cfg.power:g} % power (noncentral t)."
        )
        result.sections.insert(0, ("DFT: pairs and power", intro, power))


def _statistics_views(statistics: pd.DataFrame | None, notes: list[str]):
    """(Markdown, display frame, method line) of the statistics table; Nones when absent or malformed (noted)."""
    if statistics is None:
        return None, None, ""
    try:
        return markdown_table(statistics), display_table(statistics), method_line(statistics)
    except Exception as exc:
        notes.append(f"statistics table malformed: {type(exc).__name__}: {exc}")
        return None, None, ""


def build_report(paths: ReportPaths, cfg: ReportConfig, title: str = "elign report") -> ReportResult:
    """Read the inputs, write every table, figure and page into ``paths.out_dir``; return what was written."""
    from elign.report.html import write_index_html, write_report_md

    out = Path(paths.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = load_inputs(paths)
    result = ReportResult(notes=list(data.notes))
    table, statistics = _tables(data, out, result)
    headline = _headline(data, table, cfg, out, result)
    _verdict(statistics, cfg, result)
    backbone = backbone_section(data.backbone, data.metrics.get("pretrained"))
    if backbone is not None:
        result.sections.append(("Backbone", *backbone))
    result.models = models_sentence(data.backbone, data.aligned)
    if (aligned := aligned_section(data.aligned)) is not None:
        result.sections.append(("Aligned model", *aligned))
    jobs = _figure_jobs(data, paths, cfg)
    for fig in FIGURES:
        remarks = _safely(jobs[fig.file], out / fig.file, fig.title, cfg.dpi, result.notes)
        result.files.append(out / fig.file)
        result.figures.append((fig.file, fig.title, _caption(fig.caption, remarks)))
    for name in data.sample_names:
        file, fig_title = f"molecules_{name}.png", f"Example molecules: {name}"
        said = _safely(
            lambda p, n=name: [
                example_grid(n, data.samples.get(n), data.metrics.get(n), cfg.example_molecules, p, cfg.dpi)
            ],
            out / file,
            fig_title,
            cfg.dpi,
            result.notes,
        )
        result.files.append(out / file)
        result.figures.append((file, fig_title, f"{'; '.join(said)} (RDKit 2D depictions; bonds by EDM's rule)."))
    stats_md, stats_html, stats_method = _statistics_views(statistics, result.notes)
    long = display_long(table)
    result.files.append(write_report_md(out, title, headline_markdown(headline), long, stats_md, result))
    result.files.append(
        write_index_html(out, title, headline_html(headline), long, stats_html, stats_method, result, cfg.embed_images)
    )
    log.info("report: %d files in %s; %d notes", len(result.files), out, len(result.notes))
    return result
