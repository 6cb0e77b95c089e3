"""The renderings of a ``Page``: index.html and a page per model (Jinja2, autoescaped) and README.md (every
value escaped by ``md_escape``, except tables already rendered as Markdown, ``MdSafe``).

Split out of ``page.py`` (issue 25: no module over 400 lines); ``page`` re-exports these names.
"""
from __future__ import annotations

import base64
import os
import re
from pathlib import Path

import jinja2
from markupsafe import Markup, escape

from symbench.leaderboard.page_collect import Page
from symbench.leaderboard.tables import md_escape, safe_url, sort_attr, table_markdown
from symbench.paths import package_file


class MdSafe(str):
    """Markdown already escaped (a rendered table): printed as is by the Markdown template."""


def _code(text) -> Markup:
    """Escape text, turning `backticks` into <code>."""
    parts = str(escape(str(text))).split("`")
    return Markup("".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts)))


def _wbr(text) -> Markup:
    """Escape text and allow a line break after each underscore (long model names on a phone)."""
    return Markup(str(escape(str(text))).replace("_", "_<wbr>"))


def _env(markdown: bool = False) -> jinja2.Environment:
    loader = jinja2.FileSystemLoader(str(package_file("symbench.leaderboard", "templates")))
    if markdown:
        return jinja2.Environment(loader=loader, autoescape=False, keep_trailing_newline=True,
                                  undefined=jinja2.StrictUndefined,
                                  finalize=lambda v: v if isinstance(v, MdSafe) else md_escape("" if v is None else v))
    env = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters.update(code=_code, safe_url=safe_url, wbr=_wbr)
    env.globals.update(sort_attr=sort_attr)
    return env


def _common(page: Page) -> dict:
    return {"version": page.version, "rows_sha256": page.rows_sha256, "n_rows": page.n_rows, "n_hidden": page.n_hidden,
            "validity": page.validity, "suspect": page.suspect, "protocol": page.protocol, "explain": page.explain,
            "audit": page.audit, "audit_sentence": page.audit_sentence}


def render_html(page: Page) -> str:
    images = {p.name: "data:image/png;base64," + base64.b64encode(p.read_bytes()).decode()
              for b in page.boards for p in b.plots}
    measured = [r for b in page.boards for r in b.table.rows if r.attrs.get("reported") != "1"]
    filters = {k: sorted({r.attrs.get(k, "") for r in measured} - {""}) for k in ("family", "group", "verdict")}
    return _env().get_template("index.html.j2").render(
        **_common(page), rows_href=page.rows_href, boards=page.boards, claims=page.claims,
        claims_sentence=page.claims_sentence, cards=page.cards, filters=filters, images=images)


def render_model(page: Page, m: dict) -> str:
    href = Path(os.path.relpath(page.rows_path.resolve(), (page.out_dir / "models").resolve())).as_posix()
    return _env().get_template("model.html.j2").render(**_common(page), rows_href=href, m=m)


def render_markdown(page: Page) -> str:
    def not_more(r):  # the reported rows the page shows before a reader asks for all
        return "more" not in r.cls.split()

    md_tables = {b.id: MdSafe(table_markdown(b.table, keep=not_more)) for b in page.boards}
    md_extra = {b.id: [MdSafe(table_markdown(t, keep=not_more)) for _, _, t in b.extra] for b in page.boards}
    text = _env(markdown=True).get_template("README.md.j2").render(
        **_common(page), rows_href=page.rows_href, boards=page.boards, md_tables=md_tables, md_extra=md_extra,
        claims_sentence=page.claims_sentence, md_claims=MdSafe(table_markdown(page.claims)),
        md_cards=MdSafe(table_markdown(page.cards)))
    return re.sub(r"\n{3,}", "\n\n", text).rstrip() + "\n"
