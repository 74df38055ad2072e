"""index.html reads on a laptop screen (~1366 px) without horizontal scrolling.

No browser here, so the test checks the two things that decide it: (1) the CSS caps the page width and makes
every table take that width with fixed column widths and wrapping cells (then no table can be wider than the
page), and (2) in every table, every word fits the width its column gets, so cells wrap between words and
nothing is broken inside a number. Text widths are estimated generously: 0.62 em per character (system-ui
digits and lowercase are ~0.55 em) at each table's font size.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from elign.report.html import STYLE

PAGE_PX = 1200  # body max-width (CSS below); a 1366 px screen leaves room for margins and a scrollbar
BODY_PADDING_PX = 16  # 1em each side
BASE_FONT_PX = 16.0
EM_PER_CHAR = 0.62
CELL_PADDING_EM = 0.8  # 0.4em each side
# (table font size in em of the body, first-column width fraction or None for equal columns)
LAYOUT = {"headline-table": (0.78 * 1.2, 0.09), "metrics-table": (0.8, 0.34)}
DEFAULT_LAYOUT = (0.8, None)


class _Tables(HTMLParser):
    """Cells of every table: {table id: [[cell text chunks, ...] per row]} (chunks split at tags)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[list[str]]]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._table = a.get("id") or f"table-{len(self.tables)}"
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []
            self.tables[self._table][-1].append(self._cell)

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None
        elif tag in ("td", "th"):
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None and data.strip():
            self._cell.append(data)


def _column_widths_px(n_cols: int, first_fraction: float | None) -> list[float]:
    inner = PAGE_PX - 2 * BODY_PADDING_PX
    if first_fraction is None or n_cols == 1:
        return [inner / n_cols] * n_cols
    return [inner * first_fraction] + [inner * (1 - first_fraction) / (n_cols - 1)] * (n_cols - 1)


def overflowing_words(page: str) -> list[str]:
    """Words wider than their column, as 'table id, column: word (needed px > available px)'."""
    parser = _Tables()
    parser.feed(page)
    problems = []
    for table_id, rows in parser.tables.items():
        font_em, first = LAYOUT.get(table_id, DEFAULT_LAYOUT)
        px_per_char = BASE_FONT_PX * font_em * EM_PER_CHAR
        n_cols = max(len(r) for r in rows)
        widths = _column_widths_px(n_cols, first)
        for row in rows:
            for j, chunks in enumerate(row):
                available = widths[j] - CELL_PADDING_EM * BASE_FONT_PX * font_em
                for word in " ".join(chunks).split():
                    if len(word) * px_per_char > available:
                        problems.append(
                            f"{table_id}, column {j}: {word!r} ({len(word) * px_per_char:.0f} px > {available:.0f} px)"
                        )
    return problems


def test_css_caps_the_page_and_fixes_table_widths():
    css = " ".join(STYLE.split())
    assert f"max-width: {PAGE_PX}px" in css
    table_rule = re.search(r"(?:^| )table \{([^}]*)\}", css).group(1)
    assert "width: 100%" in table_rule and "table-layout: fixed" in table_rule
    assert "overflow-wrap: anywhere" in re.search(r"th, td \{([^}]*)\}", css).group(1)
    assert "max-width: 100%" in re.search(r"figure img \{([^}]*)\}", css).group(1)
    assert "#headline-table th:first-child { width: 9%; }" in css
    assert "table.long th:first-child { width: 34%; }" in css


def test_every_word_of_every_table_fits_its_column(report_dir):
    page = (report_dir / "index.html").read_text()
    assert 'class="dataframe long" id="metrics-table"' in page  # the metric table is the long one
    assert overflowing_words(page) == []


def test_the_check_catches_a_wide_table(artifacts):
    """The old layout: one metric table row per set, a column per metric (17 columns of long names)."""
    import pandas as pd

    from elign.report.tables import display, metric_table

    frames = {n: pd.read_parquet(p) for n, p in artifacts["metrics"].items()}
    wide = display(metric_table(frames, {}, None)).to_html(index=False, table_id="wide")
    assert any(p.startswith("wide, column") for p in overflowing_words(wide))
