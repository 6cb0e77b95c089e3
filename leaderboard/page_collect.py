"""Every board, table and model page computed once from the rows (``collect``), into a ``Page``.

Split out of ``page.py`` (issue 25: no module over 400 lines); ``page`` re-exports ``Page`` and ``collect``.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from symbench.leaderboard.boards import (LINF_EPS, L2_EPS, Board, clever_board, corruption_boards, defense_board,
                                         eps_board, pick_rows, symmetry_board, threat_board)
from symbench.leaderboard.board_spatial import spatial_board
from symbench.leaderboard.board_threat import plotted_records
from symbench.leaderboard.audit import audit as audit_rows, summary as audit_summary
from symbench.leaderboard.cards import cards_table, model_cards
from symbench.leaderboard.claims import claims_sentence, claims_table, load_claims, match_claims
from symbench.leaderboard.page_model import model_context
from symbench.leaderboard.plots import (PLOT_PREFIXES, plot_clever, plot_corruptions, plot_model_curves,
                                        plot_robust_vs_eps, plot_rotation_curve, plot_threat_board)
from symbench.leaderboard.rows import _is_attack, read_jsonl
from symbench.leaderboard.sections import check_explanations, protocol, suspect_lines, validity_summary
from symbench.leaderboard.tables import Table


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
            if b.id in ("linf", "l2"):
                title = f"CIFAR-10, {b.title}: robust accuracy per model (per-example worst case)"
                p = plot_threat_board(plotted_records(b), title, plot_dir / f"board_{b.id}.png")
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
                audit=[e for e in audited if e["status"] in ("unaudited", "failed")],
                audit_sentence=audit_summary(audited))


def _spatial_findings(rows_path: Path, pages: set[str]) -> Board | None:
    """The spatial pairs (written by `symbench leaderboard findings --spec ...findings_spatial.toml`), if published."""
    found = rows_path.parent / "findings_spatial.json"
    if not found.is_file():
        return None
    from symbench.leaderboard import findings

    return findings.board(json.loads(found.read_text()), pages, board_id="spatial_findings", title="Spatial findings")
