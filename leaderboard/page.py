"""The page: boards computed once from the rows (``collect``), rendered by Jinja2 templates (``build``).

Output, one self-contained folder that works from ``file://`` with no network: ``index.html`` (a
tab per board, inline CSS/JS, board plots inlined), ``models/<name>.html`` (a page per model),
``plots/*.png``, ``data/<board>.{csv,json}`` (downloads) and ``README.md`` (the boards as Markdown).
HTML templates autoescape; the Markdown template escapes every value it prints (``md_escape``), so
nothing read from a row reaches either page as markup.
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

import jinja2
from markupsafe import Markup, escape

from symbench.leaderboard.boards import (LINF_EPS, L2_EPS, Board, acc_cell, clever_board, corruption_boards,
                                         defense_board, eps_board, escalation_effects, model_file, pick_rows,
                                         robust_cell, symmetry_board, threat_board, verdict_cell)
from symbench.leaderboard.board_spatial import model_spatial, spatial_board
from symbench.leaderboard.audit import audit as audit_rows, summary as audit_summary
from symbench.leaderboard.browser import phone_screenshot, take_full_screenshot
from symbench.leaderboard.cards import cards_table, model_cards, model_params
from symbench.leaderboard.downloads import board_downloads
from symbench.leaderboard.claims import CLAIMS_PATH, claims_sentence, claims_table, load_claims, match_claims
from symbench.leaderboard.plots import (PLOT_PREFIXES, plot_clever, plot_corruptions, plot_model_curves,
                                        plot_robust_vs_eps, plot_rotation_curve, plot_threat_board)
from symbench.leaderboard.rows import (DEFAULT_ROWS, _is_attack, _is_clever, _is_corrupted_adv, _is_corruption, _variant,
                                       fgsm_alone, read_jsonl, validate_rows_file)
from symbench.leaderboard.sections import check_explanations, protocol, suspect_lines, validity_summary
from symbench.leaderboard.tables import Cell, Col, Table, md_escape, pct, safe_url, sort_attr, table_markdown
from symbench.paths import package_file

log = logging.getLogger("symbench.leaderboard")

SCREENSHOT_WIDTHS = {"screenshot.png": 1400, "screenshot-390.png": 390}
SUITE_ORDER = ("standard", "adaptive", "quick", "paper", "corrupted_adv", "clever", "corruptions")


@dataclass
class Page:
    """Everything the renderings show, computed once from the rows."""

    version: str
    rows_path: Path
    rows_href: str
    rows_sha256: str
    n_rows: int
    n_hidden: int
    rows: list[dict]
    boards: list[Board]
    claims: Table
    claims_sentence: str
    cards: Table
    validity: dict
    suspect: list[tuple[str, str]]
    protocol: list[dict]
    explain: dict
    out_dir: Path
    models: list[dict] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)
    audit: list[dict] = field(default_factory=list)   # trusted rows not yet shown to hold against APGD
    audit_sentence: str = ""


def _suite_rank(r: dict) -> tuple:
    s = r["suite"]
    return (SUITE_ORDER.index(s) if s in SUITE_ORDER else len(SUITE_ORDER), s, r["threat"], float(r["eps"]))


def _pct_text(acc, n) -> str:
    c = acc_cell(acc, n, bar=False)
    return f"{c.text}% {c.sub}" if acc is not None else "–"


def model_context(name: str, rows: list[dict], cards: dict, claims: dict, explain: dict, plot: Path | None) -> dict:
    """What a model's page shows: card facts, every row of it, per attack row its cascade, checks and errors."""
    mine = [r for r in rows if r["model"] == name]
    card = {"description": "", "adversarially_trained": False, "depth": None, "training": "", "train_time": "",
            "weights": "", "flags": "", "paper": "", "notes": "", "card_clean_acc": None, **(cards.get(name) or {})}
    attack = sorted([r for r in mine if _is_attack(r)], key=_suite_rank)
    t = Table(f"rows-{name}", [Col("suite"), Col("threat"), Col("eps", True), Col("clean %", True), Col("robust %", True),
                               Col("FGSM alone %", True, narrow=False), Col("n", True), Col("verdict"),
                               Col("device", narrow=False)])
    details = []
    for i, r in enumerate(attack):
        anchor = f"row-{r['suite']}-{r['threat']}-{i}"
        t.add([Cell(r["suite"], href=f"#{anchor}", title=r["suite_id"]), Cell(r["threat"]),
               Cell(r.get("eps_display") or f"{r['eps']:g}", r["eps"]), acc_cell(r["clean_acc"], r["n"], bar=False),
               robust_cell(r), pct(fgsm_alone(r)), Cell(str(r["n"]), r["n"]), verdict_cell(r),
               Cell(r.get("device", ""))], cls=r.get("verdict", ""), attrs={"model": name},
              record={"suite": r["suite"], "threat": r["threat"], "eps": r["eps"]})
        eq = r.get("equivariance") or {}
        eq_keys = list(dict.fromkeys(k for v in eq.values() for k in (v or {})))
        orbit = r.get("orbit")
        details.append({
            "anchor": anchor, "title": f"{r['suite']} · {r['threat']} {r.get('eps_display') or r['eps']}",
            "verdict": r.get("verdict", "unchecked"), "suite_id": r["suite_id"], "n": r["n"], "seed": r.get("seed"),
            "ckpt": (r.get("ckpt_sha256") or "–")[:12],
            "device": r.get("device", ""), "data_source": r.get("data_source", ""), "commit": r.get("commit", ""),
            "created": r.get("created", ""), "clean": _pct_text(r["clean_acc"], r["n"]),
            "robust": _pct_text(r["robust_acc"], r["n"]),
            "base": (f"{r['base_model']}: clean {_pct_text(r.get('base_clean_acc'), r['n'])}, robust "
                     f"{_pct_text(r['base_robust_acc'], r['n'])}") if r.get("base_model") else "",
            "cascade": [(a["label"], f"{100 * a['acc_after']:.1f}%") for a in r.get("attacks") or []],
            "escalation": ({"robust": _pct_text(r["escalated_robust_acc"], r["n"]),
                            "surrogate": (r.get("escalation") or {}).get("surrogate") or "none",
                            "effects": escalation_effects(r)} if r.get("escalated_robust_acc") is not None else
                           {"skipped": r["escalation_skipped"]} if r.get("escalation_skipped") else None),
            "checks": [{"name": k, "status": c.get("status", ""), "detail": c.get("detail", ""),
                        "fails_when": (explain.get(k) or {}).get("fails_when", ""),
                        "why": (explain.get(k) or {}).get("why", "")}
                       for k, c in sorted((r.get("checks") or {}).items())],
            "equivariance": [(which, {k: f"{v[k]:.3f}" if v.get(k) is not None else "–" for k in eq_keys})
                             for which, v in eq.items() if v],
            "eq_keys": eq_keys,
            "orbit": {"summary": (f"correct on every one of {len(orbit.get('transforms') or [])} copies "
                                  f"({', '.join(orbit.get('transforms') or [])}): {100 * orbit['clean_acc']:.1f}% without "
                                  f"and {100 * orbit['robust_acc']:.1f}% with {orbit.get('attack')} "
                                  f"{orbit.get('params') or ''} on each copy (n={orbit['n']}); accuracy per copy under the "
                                  "attack:"),
                      "per": [(k, f"{100 * v:.1f}") for k, v in (orbit.get("per_transform") or {}).items()]}
            if orbit else None,
        })
    extra = []
    clever = [r for r in mine if _is_clever(r)]
    if clever:
        ct = Table(f"clever-{name}", [Col("norm"), Col("radius", True), Col("median", True), Col("q1", True),
                                      Col("q3", True), Col("min", True), Col("max", True), Col("images scored", True)])
        for r in clever:
            c = r["clever"]
            ct.add([Cell(r["threat"])] + [Cell(f"{v:.4g}" if v is not None else "–", v) for v in
                                          (r["eps"], c.get("median"), c.get("q1"), c.get("q3"), c.get("min"), c.get("max"))]
                   + [Cell(str(c.get("n_scored", 0)), c.get("n_scored", 0))])
        extra.append(("CLEVER", "An estimate, not a certificate: a sampled extreme-value estimate of a lower bound on the "
                      "smallest adversarial perturbation, capped at the sampling radius.", ct))
    corr = [r for r in mine if _is_corruption(r)]
    if corr:
        extra.append(("CIFAR-10-C" + (" (generated)" if all(str(r.get("data_source", "")).startswith("generated:")
                                                            for r in corr) else ""),
                      "Accuracy % per corruption and severity (no attack); the means are over severities.",
                      _grid(f"c10c-{name}", corr, lambda v: v.split("/", 1), "severity")))
    cadv = [r for r in mine if _is_corrupted_adv(r)]
    if cadv:
        extra.append(("Corrupted + attacked", "Robust accuracy % on corrupted images (severity in the variant) per eps.",
                      _grid(f"cadv-{name}", cadv, lambda v: (v, None), "eps")))
    extra += model_spatial(name, rows, set())  # no links: the page is its own model's
    sha = card.get("sha256") or next((r.get("ckpt_sha256") for r in reversed(mine) if r.get("ckpt_sha256")), "") or ""
    fam = card.get("family") or next((r.get("family") for r in mine if r.get("family")), "")
    grp = card.get("group") or next((r.get("group") for r in mine if r.get("group")), "")
    return {"name": name, "card": card, "family": fam, "group": grp, "params": model_params(name, cards, rows),
            "sha256": sha, "rows_table": t, "details": details, "extra": extra, "plot": plot.name if plot else None}


def _grid(tid: str, rows: list[dict], split, col_name: str) -> Table:
    """A line per corruption, a column per severity (or eps), from one model's rows."""
    cells: dict[str, dict[str, float]] = {}
    cols: list[str] = []
    for r in rows:
        line, col = split(_variant(r))
        if col is None:
            col = r.get("eps_display") or f"{r['eps']:g}"
        cells.setdefault(line, {})[col] = r["robust_acc"]
        if col not in cols:
            cols.append(col)
    cols = sorted(cols, key=lambda c: (c == "mean", float(c) if re.fullmatch(r"[\d.]+", c) else 0, c))
    t = Table(tid, [Col("corruption")] + [Col(f"{col_name} {c}" if c != "mean" else "mean", True) for c in cols])
    for line, vals in cells.items():
        t.add([Cell(line.replace("_", " "))] + [pct(vals.get(c)) for c in cols])
    return t


def collect(rows_path: Path, reference_path: Path, claims_path: Path, plot_dir: Path | None,
            out_dir: Path | None = None, rows_copy: Path | None = None) -> Page:
    """Every board, table and model page from the rows (``rows_copy``: the copy the page links to)."""
    out_dir = out_dir or rows_path.parent
    all_rows = [r for r in read_jsonl(rows_path) if r.get("kind", "measured") == "measured"]
    rows, hidden = pick_rows(all_rows)
    refs = read_jsonl(reference_path)
    claims = load_claims(claims_path)
    names = list(dict.fromkeys(r["model"] for r in rows))
    cards = model_cards(sorted(set(names) | {c["model"] for c in claims.get("claims", [])}))
    pages = set(names)
    explain = check_explanations()
    plots: dict[str, list[Path]] = {"eps": [], "clever": [], "corruptions": [], "rotation": []}
    model_plots: dict[str, Path] = {}
    if plot_dir is not None:
        plot_dir.mkdir(parents=True, exist_ok=True)
        plots["eps"] = plot_robust_vs_eps(rows, refs, claims, cards, plot_dir)
        plots["clever"] = plot_clever(rows, plot_dir)
        plots["corruptions"] = plot_corruptions(rows, plot_dir)
        plots["rotation"] = plot_rotation_curve(rows, cards, plot_dir)
        for m in names:
            p = plot_model_curves(m, rows, claims, plot_dir)
            if p is not None:
                model_plots[m] = p
    boards = [threat_board(rows, refs, cards, pages, "linf", LINF_EPS, "linf", "Linf 8/255", "8/255"),
              threat_board(rows, refs, cards, pages, "l2", L2_EPS, "l2", "L2 0.5", "0.5"),
              eps_board(rows, cards, pages, plots["eps"]), symmetry_board(rows, cards, pages),
              spatial_board(rows, cards, pages, plots["rotation"], _spatial_findings(rows_path, pages)),
              *corruption_boards(rows, cards, pages, claims, plots["corruptions"]),
              clever_board(rows, cards, pages, plots["clever"]), defense_board(rows, cards, pages)]
    found = rows_path.parent / "findings.json"  # written by `symbench leaderboard findings` from the store
    if found.is_file():
        from symbench.leaderboard import findings

        boards.insert(2, findings.board(json.loads(found.read_text()), pages))
    boards = [b for b in boards if any(r.attrs.get("reported") != "1" for t in [b.table] + [t for _, _, t in b.extra]
                                       for r in t.rows)]  # a board needs our rows (ranked or listed apart)
    if plot_dir is not None:
        for b in boards:
            if b.id in ("linf", "l2"):  # the reported rows the board shows before a reader asks for all
                recs = [r.record for r in b.table.rows if "more" not in r.cls.split()]
                p = plot_threat_board(recs, f"CIFAR-10, {b.title}: robust accuracy per model (per-example worst case)",
                                      plot_dir / f"board_{b.id}.png")
                if p is not None:
                    b.plots.append(p)
                    plots.setdefault("boards", []).append(p)
        fresh = {p.name for ps in plots.values() for p in ps} | {p.name for p in model_plots.values()}
        for old in plot_dir.glob("*.png"):  # plots of data that no longer qualifies
            if old.name.startswith(PLOT_PREFIXES) and old.name not in fresh:
                old.unlink()
    matches = match_claims(claims, [r for r in rows if _is_attack(r)])
    audited = audit_rows(all_rows)
    raw = rows_path.read_bytes() if rows_path.is_file() else b""
    models = [model_context(m, rows, cards, claims, explain, model_plots.get(m)) for m in sorted(names)]
    return Page(version=rows_path.parent.name if re.fullmatch(r"v\d+", rows_path.parent.name) else "",
                rows_path=rows_copy or rows_path,
                rows_href=Path(os.path.relpath((rows_copy or rows_path).resolve(), out_dir.resolve())).as_posix(),
                rows_sha256=hashlib.sha256(raw).hexdigest(), n_rows=len(all_rows), n_hidden=hidden, rows=rows,
                boards=boards, claims=claims_table(claims, matches), claims_sentence=claims_sentence(matches),
                cards=cards_table(sorted(names), cards, rows), validity=validity_summary(rows),
                suspect=suspect_lines(rows), protocol=protocol(rows), explain=explain, out_dir=out_dir, models=models,
                plots=[p for ps in plots.values() for p in ps] + list(model_plots.values()),
                audit=[e for e in audited if e["status"] in ("unaudited", "failed")], audit_sentence=audit_summary(audited))


def _spatial_findings(rows_path: Path, pages: set[str]) -> Board | None:
    """The spatial pairs (written by `symbench leaderboard findings --spec ...findings_spatial.toml`), if published."""
    found = rows_path.parent / "findings_spatial.json"
    if not found.is_file():
        return None
    from symbench.leaderboard import findings

    return findings.board(json.loads(found.read_text()), pages, board_id="spatial_findings", title="Spatial findings")


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
