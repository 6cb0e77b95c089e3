"""Tables: one model (``Cell``, ``Col``, ``Row``, ``Table``) rendered three ways.

HTML comes from the Jinja2 templates (autoescaped: a cell holds text and structured extras, never
HTML); Markdown and the CSV/JSON downloads come from pandas frames built here. Every string that
reaches the Markdown page goes through ``md_escape``, so a check detail holding ``<img onerror=...>``
arrives as text, not as HTML GitHub would render.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

import pandas as pd


@dataclass
class Cell:
    text: str
    sort: float | str | None = None        # value the page sorts by (None: the text)
    title: str = ""                        # hover text
    href: str | None = None                # link (relative to the page)
    badge: str | None = None               # verdict badge class: trusted | suspect | unchecked | reported
    details: tuple[tuple[str, str, str], ...] = ()  # (check, status, detail) shown on click
    ci: tuple[float, float, float] | None = None    # (value, low, high) in [0,1], drawn as an interval bar
    sub: str = ""                          # second, smaller line (e.g. the 95% interval)
    sub_narrow_only: bool = False          # the sub repeats a wide column: shown only on a phone, where that is hidden

    @property
    def shown_sub(self) -> str:
        """The second line where every column is shown (Markdown, CSV, a wide page)."""
        return "" if self.sub_narrow_only else self.sub

    @property
    def plain(self) -> str:
        """The cell as one line of text (Markdown, CSV)."""
        return f"{self.text} {self.shown_sub}".strip() if self.shown_sub else self.text


@dataclass
class Col:
    header: str
    num: bool = False
    help: str = ""
    narrow: bool = True    # shown on a 390 px screen (else hidden there, still in the downloads)


@dataclass
class Row:
    cells: list[Cell]
    cls: str = ""                                      # CSS class ("suspect", "reported", ...)
    attrs: dict[str, str] = field(default_factory=dict)  # data-* attributes the filters read
    record: dict = field(default_factory=dict)          # raw values for the CSV/JSON download


@dataclass
class Table:
    id: str
    cols: list[Col]
    rows: list[Row] = field(default_factory=list)
    default_sort: tuple[int, str] | None = None          # (column, "asc"|"desc"), applied before rendering

    def add(self, cells: list[Cell], cls: str = "", attrs: dict | None = None, record: dict | None = None) -> None:
        if len(cells) != len(self.cols):
            raise ValueError(f"table {self.id}: {len(cells)} cells for {len(self.cols)} columns")
        self.rows.append(Row(cells, cls, dict(attrs or {}), dict(record or {})))

    def sorted_rows(self) -> list[Row]:
        """Rows in the table's default order (the order both the HTML and the Markdown show first)."""
        if not self.default_sort:
            return list(self.rows)
        col, order = self.default_sort
        return sorted(self.rows, key=lambda r: sort_key(r.cells[col], self.cols[col].num), reverse=(order == "desc"))


def pct(x) -> Cell:
    """An accuracy in [0,1] shown in percent (one decimal)."""
    if x is None:
        return Cell("–", float("nan"))
    return Cell(f"{100 * x:.1f}", round(100 * x, 4))


def num(x, fmt="{:.4g}") -> Cell:
    if x is None:
        return Cell("–", float("nan"))
    return Cell(fmt.format(x), x)


def sort_key(c: Cell, numeric: bool):
    v = c.sort if c.sort is not None else c.text
    if numeric:
        try:
            f = float(v)
        except (TypeError, ValueError):
            return -math.inf
        return -math.inf if math.isnan(f) else f
    return str(v).lower()


def sort_attr(c: Cell) -> str:
    """The ``data-v`` attribute the page's sorter reads ('' for a missing number)."""
    v = c.sort
    if v is None:
        return c.text
    if isinstance(v, float) and math.isnan(v):
        return ""
    return str(v)


_MD = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "\\|", "[": "\\[", "]": "\\]",
                     "\n": " ", "\r": " "})


def md_escape(s) -> str:
    """Text for a Markdown page: HTML-escaped (GitHub renders raw HTML) and safe inside a table cell.

    Backticks stay: a code span shows HTML literally, so they can only change how text looks.
    """
    return str(s).translate(_MD)


def safe_url(url: str | None) -> str:
    """The URL if it is relative or http(s) (never ``javascript:`` or ``data:`` from a row), else ''."""
    if not url:
        return ""
    u = str(url).strip()
    scheme = urlsplit(u).scheme.lower()
    if scheme in ("http", "https") or (not scheme and not u.startswith("//")):
        return quote(u, safe=":/#?=&%+.,~-_@!$*;")
    return ""


def _md_cell(c: Cell) -> str:
    href = safe_url(c.href)
    text = md_escape(c.plain)
    return f"[{md_escape(c.text)}]({href})" + (f" {md_escape(c.shown_sub)}" if c.shown_sub else "") if href else text


def records_frame(t: Table) -> pd.DataFrame:
    """The raw values behind the table (the CSV/JSON download), in its default order."""
    return pd.DataFrame([r.record for r in t.sorted_rows()])


def table_markdown(t: Table, keep=None) -> str:
    """A GitHub Markdown table written from the pandas frame (no ``tabulate`` needed), every cell escaped.

    ``keep``: a predicate on rows (e.g. leave out the reported rows a reader must ask for).
    """
    rows = [r for r in t.sorted_rows() if keep is None or keep(r)]
    if not rows:
        return "_(no rows yet)_\n"
    df = pd.DataFrame([[_md_cell(c) for c in r.cells] for r in rows], columns=[md_escape(c.header) for c in t.cols])
    out = ["| " + " | ".join(df.columns) + " |", "|" + "|".join("---:" if c.num else "---" for c in t.cols) + "|"]
    out += ["| " + " | ".join(line) + " |" for line in df.itertuples(index=False)]
    return "\n".join(out) + "\n"
