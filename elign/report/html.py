"""The report pages: ``report.md`` (Markdown, images linked relatively) and ``index.html`` (self-contained).

Both lead with the headline table (:mod:`elign.report.headline`). ``index.html`` holds the tables as HTML and
the figures embedded as base64 PNG (or linked relatively when ``embed`` is false); it needs no other file to be
read, and no network. It is laid out for a laptop screen: the page is at most 1200 px wide, every table takes
that width with fixed column widths and wraps its cells, and the metric table has one column per set.
"""

from __future__ import annotations

import base64
import html
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

import elign
from elign.io.atomic import write_text_atomic

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; padding: 0 1em; color: #222;
       overflow-wrap: anywhere; }
table { border-collapse: collapse; font-size: 0.8em; margin: 0.8em 0; width: 100%; table-layout: fixed; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.4em; text-align: right; vertical-align: top;
         overflow-wrap: anywhere; }
th { background: #f2f2f2; font-weight: 600; } td:first-child, th:first-child { text-align: left; }
table.long th:first-child { width: 34%; }
#headline-table { font-size: 0.78em; } #headline-table th:first-child { width: 9%; }
#headline-table td span { display: block; } #headline-table .v { font-size: 1.2em; font-weight: 600; }
#headline-table .d, #headline-table .p { color: #555; font-size: 0.92em; }
p.caption, figcaption { font-size: 0.85em; color: #555; } p.stamp { font-size: 0.8em; color: #777; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
.notes li { color: #a33; }
.verdict { font-size: 1.05em; font-weight: 600; }
"""


def _stamp() -> str:
    from elign.io.provenance import git_sha

    now = datetime.now(UTC).isoformat(timespec="seconds")
    return f"elign {elign.__version__}, git {git_sha()}, generated {now}"


def write_report_md(
    out: Path, title: str, headline_md: str, metrics: pd.DataFrame, statistics_md: str | None, result
) -> Path:
    """``report.md``: the headline table first, then notes, metric table, statistics table, figures."""
    parts = [f"# {title}\n", f"_{_stamp()}_\n"] + ([f"{result.models}\n"] if result.models else [])
    parts += [f"**{result.verdict}**\n"] if result.verdict else []
    parts += ["## Headline\n", headline_md]
    if result.notes:
        parts += ["## Notes\n", "\n".join(f"- {n}" for n in result.notes) + "\n"]
    parts += [
        "## Metrics\n",
        "One column per set: the data reference and each model's samples; DFT rows cover "
        "the DFT subset (means over successful rows).\n",
        metrics.to_markdown(index=False) + "\n",
    ]
    for section, intro, frame in result.sections:
        parts += [f"## {section}\n", intro + "\n", frame.to_markdown(index=False) + "\n"]
    parts += ["## Statistics\n", statistics_md or "_No statistics table (not given or unreadable)._\n"]
    parts.append("## Figures\n")
    for file, fig_title, caption in result.figures:
        parts.append(f"### {fig_title}\n\n![{fig_title}]({file})\n\n{caption}\n")
    path = out / "report.md"
    write_text_atomic(path, "\n".join(parts))
    return path


def _image(out: Path, file: str, alt: str, embed: bool) -> str:
    path = out / file
    if embed and path.exists():
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        src = f"data:image/png;base64,{data}"
    else:
        src = html.escape(file)
    return f'<img src="{src}" alt="{html.escape(alt)}">'


def _table_html(frame: pd.DataFrame, css_id: str, classes: str | None = None) -> str:
    return frame.to_html(index=False, escape=True, border=0, table_id=css_id, na_rep="–", classes=classes)


def write_index_html(
    out: Path,
    title: str,
    headline: str,
    metrics: pd.DataFrame,
    statistics: pd.DataFrame | None,
    statistics_method: str,
    result,
    embed: bool,
) -> Path:
    """``index.html``: the headline table on the first screen, then the rest of ``report.md`` (tables as HTML,
    images embedded or linked). Tables take the page width and wrap their cells: no horizontal scrolling."""
    e = html.escape
    body = [f"<h1>{e(title)}</h1>"] + ([f'<p class="models">{e(result.models)}</p>'] if result.models else [])
    body += [f'<p class="verdict">{e(result.verdict)}</p>'] if result.verdict else []
    body += [headline, f'<p class="stamp">{e(_stamp())}</p>']
    if result.notes:
        body.append('<h2>Notes</h2><ul class="notes">' + "".join(f"<li>{e(n)}</li>" for n in result.notes) + "</ul>")
    body += ["<h2>Metrics</h2>", _table_html(metrics, "metrics-table", "long")]
    for section, intro, frame in result.sections:
        body += [f"<h2>{e(section)}</h2>", f"<p>{e(intro)}</p>", _table_html(frame, f"{section.lower()}-table")]
    body.append("<h2>Statistics</h2>")
    if statistics is None:
        body.append("<p>No statistics table (not given or unreadable).</p>")
    else:
        body += [f"<p>{e(statistics_method)}</p>", _table_html(statistics, "statistics-table")]
    body.append("<h2>Figures</h2>")
    for file, fig_title, caption in result.figures:
        body.append(
            f'<figure id="{e(file)}"><h3>{e(fig_title)}</h3>{_image(out, file, fig_title, embed)}'
            f"<figcaption>{e(caption)}</figcaption></figure>"
        )
    page = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{e(title)}</title>'
        f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
    path = out / "index.html"
    write_text_atomic(path, page)
    return path
