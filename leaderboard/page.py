"""The page: boards computed once from the rows (``collect``), rendered by Jinja2 templates (``build``).

Output, one self-contained folder that works from ``file://`` with no network: ``index.html`` (a
tab per board, inline CSS/JS, board plots inlined), ``models/<name>.html`` (a page per model),
``plots/*.png``, ``data/<board>.{csv,json}`` (downloads) and ``README.md`` (the boards as Markdown).
HTML templates autoescape; the Markdown template escapes every value it prints (``md_escape``), so
nothing read from a row reaches either page as markup.

The page is built in three steps, each its own module (issue 25: no module over 400 lines): ``page_collect``
computes the ``Page`` (a model's part in ``page_model``), ``page_render`` renders it, and this module writes
the folder (``build``). It re-exports their names, so callers import from here as before.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from pathlib import Path

from symbench.leaderboard.boards import model_file
from symbench.leaderboard.browser import phone_screenshot, take_full_screenshot
from symbench.leaderboard.downloads import board_downloads
from symbench.leaderboard.claims import CLAIMS_PATH
from symbench.leaderboard.page_collect import Page, collect
from symbench.leaderboard.page_model import SUITE_ORDER, model_context
from symbench.leaderboard.page_render import MdSafe, render_html, render_markdown, render_model
from symbench.leaderboard.rows import DEFAULT_ROWS, validate_rows_file

__all__ = ["BuildResult", "MdSafe", "Page", "SCREENSHOT_WIDTHS", "SUITE_ORDER", "build", "collect", "model_context",
           "render_html", "render_markdown", "render_model"]

log = logging.getLogger("symbench.leaderboard")

SCREENSHOT_WIDTHS = {"screenshot.png": 1400, "screenshot-390.png": 390}


@dataclass
class BuildResult:
    readme: Path
    html: Path
    plots: list[Path]
    screenshot: Path | None = None
    screenshots: list[Path] = field(default_factory=list)
    model_pages: list[Path] = field(default_factory=list)
    downloads: list[Path] = field(default_factory=list)


def build(rows_path: str | Path = DEFAULT_ROWS, out_dir: str | Path | None = None,
          reference_path: str | Path | None = None, claims_path: str | Path = CLAIMS_PATH,
          plots: bool = True, screenshot: bool = False) -> BuildResult:
    """Render one leaderboard version from its rows: README.md, index.html, models/, plots/, data/.

    Args:
        rows_path: the version's rows.jsonl (append-only, schema-validated).
        out_dir: where to write (default: the rows file's directory).
        reference_path: RobustBench reported rows (default leaderboard/robustbench_reference.jsonl).
        claims_path: the seed paper's printed numbers (leaderboard/seed_claims.json).
        plots: render the PNG plots (matplotlib, Agg).
        screenshot: also write full-page screenshot.png (1400 px) and screenshot-390.png (390 px) with
            headless Chromium.
    """
    from symbench.leaderboard.robustbench_ref import REFERENCE_PATH
    from symbench.leaderboard.site import staged_site

    rows_path = Path(rows_path)
    out = Path(out_dir) if out_dir else rows_path.parent
    errors = validate_rows_file(rows_path)
    if errors:
        raise ValueError(f"{len(errors)} invalid row(s); fix the tool that wrote them:\n" + "\n".join(errors[:10]))
    with staged_site(out, rows_path) as stage:  # a kill leaves the old site (or none), never a mix of both
        res = _build_into(stage, out, rows_path, Path(reference_path or REFERENCE_PATH), Path(claims_path), plots,
                          screenshot)

    def moved(v):  # a staged path → where it lies now
        return [moved(p) for p in v] if isinstance(v, list) else out / v.relative_to(stage) if v else v
    return BuildResult(**{f.name: moved(getattr(res, f.name)) for f in fields(res)})


def _build_into(stage: Path, out: Path, rows_path: Path, reference_path: Path, claims_path: Path, plots: bool,
                screenshot: bool) -> BuildResult:
    """Render into ``stage``, links computed for the site's final place ``out``."""
    rows_copy = None
    if rows_path.resolve().parent != out.resolve():  # the folder links its own copy: it stays self-contained
        rows_copy = out / "data" / "rows.jsonl"
        _write_if_changed(stage / "data" / "rows.jsonl", rows_path.read_text() if rows_path.is_file() else "")
    page = collect(rows_path, reference_path, claims_path, stage / "plots" if plots else None, out, rows_copy)
    readme, index = stage / "README.md", stage / "index.html"
    _write_if_changed(readme, render_markdown(page))
    _write_if_changed(index, render_html(page))
    model_pages = []
    for m in page.models:
        p = stage / "models" / f"{model_file(m['name'])}.html"
        _write_if_changed(p, render_model(page, m))
        model_pages.append(p)
    _remove_stale(stage / "models", "*.html", model_pages)
    downloads = []
    for name, text in board_downloads(page.boards, page.claims, page.cards).items():
        p = stage / "data" / name
        _write_if_changed(p, text)
        downloads.append(p)
    _remove_stale(stage / "data", "*.[cj]s*", downloads + ([stage / "data" / "rows.jsonl"] if rows_copy else []))
    log.info("wrote %s, %s, %d model page(s) and %d plot(s) from %d row(s)", out / "README.md", out / "index.html",
             len(model_pages), len(page.plots), page.n_rows)
    shots = []
    if screenshot:
        for name, width in SCREENSHOT_WIDTHS.items():
            shoot = phone_screenshot if width < 500 else take_full_screenshot  # a window is >= 500 px wide
            shots.append(shoot(index, stage / name, width))
            log.info("wrote %s", out / name)
    return BuildResult(readme, index, page.plots, shots[0] if shots else None, shots, model_pages, downloads)


def _remove_stale(folder: Path, pattern: str, keep: list[Path]) -> None:
    keep_names = {p.name for p in keep}
    for old in folder.glob(pattern):
        if old.name not in keep_names:
            old.unlink()


def _write_if_changed(path: Path, text: str) -> None:
    from symbench.bench.run.store import atomic_write_text

    if not path.is_file() or path.read_text() != text:
        atomic_write_text(path, text)
