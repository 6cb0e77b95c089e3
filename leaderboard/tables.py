"""Tables: one model (``Cell``, ``Col``, ``Table``), two renderings (markdown and sortable HTML)."""
from __future__ import annotations

import html
import math
from dataclasses import dataclass, field


@dataclass
class Cell:
    text: str
    sort: float | str | None = None   # value the page sorts by (None: the text)
    title: str = ""                   # hover text (HTML only)
    html: str | None = None           # pre-rendered HTML (else escaped text)


@dataclass
class Col:
    header: str
    num: bool = False
    help: str = ""


@dataclass
class Table:
    id: str
    cols: list[Col]
    rows: list[list[Cell]] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)   # per-row CSS class ("suspect", ...)
    default_sort: tuple[int, str] | None = None          # (column, "asc"|"desc")

    def add(self, cells: list[Cell], cls: str = "") -> None:
        self.rows.append(cells)
        self.classes.append(cls)


def pct(x) -> Cell:
    if x is None:
        return Cell("–", float("nan"))
    return Cell(f"{100 * x:.1f}", round(100 * x, 4))


def num(x, fmt="{:.4g}") -> Cell:
    if x is None:
        return Cell("–", float("nan"))
    return Cell(fmt.format(x), x)


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def table_markdown(t: Table) -> str:
    if not t.rows:
        return "_(no rows yet)_\n"
    rows = t.rows
    if t.default_sort:
        col, order = t.default_sort
        rows = sorted(rows, key=lambda cs: _sort_key(cs[col], t.cols[col].num), reverse=(order == "desc"))
    out = ["| " + " | ".join(_md_escape(c.header) for c in t.cols) + " |",
           "|" + "|".join("---:" if c.num else "---" for c in t.cols) + "|"]
    out += ["| " + " | ".join(_md_escape(c.text) for c in cs) + " |" for cs in rows]
    return "\n".join(out) + "\n"


def _sort_key(c: Cell, numeric: bool):
    v = c.sort if c.sort is not None else c.text
    if numeric:
        try:
            f = float(v)
        except (TypeError, ValueError):
            return -math.inf
        return -math.inf if math.isnan(f) else f
    return str(v).lower()


def table_html(t: Table) -> str:
    if not t.rows:
        return '<p class="empty">(no rows yet)</p>'
    ds = f' data-default-sort="{t.default_sort[0]}:{t.default_sort[1]}"' if t.default_sort else ""
    head = "".join(f'<th data-type="{"num" if c.num else "text"}"'
                   + (f' title="{html.escape(c.help)}"' if c.help else "") + f">{html.escape(c.header)}</th>"
                   for c in t.cols)
    body = []
    for cs, cls in zip(t.rows, t.classes):
        tds = []
        for c, col in zip(cs, t.cols):
            attrs = ""
            if c.sort is not None:
                v = c.sort
                if isinstance(v, float) and math.isnan(v):
                    v = ""
                attrs += f' data-v="{html.escape(str(v))}"'
            if c.title:
                attrs += f' title="{html.escape(c.title)}"'
            if col.num:
                attrs += ' class="n"'
            tds.append(f"<td{attrs}>{c.html if c.html is not None else html.escape(c.text)}</td>")
        body.append(f'<tr class="row {cls}">' + "".join(tds) + "</tr>")
    return (f'<div class="scroll"><table class="sortable" id="{t.id}"{ds}><thead><tr>{head}</tr></thead>\n<tbody>\n'
            + "\n".join(body) + "\n</tbody></table></div>")
