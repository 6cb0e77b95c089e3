"""The spatial board (issue 24): worst-case rotations and translations, the accuracy-vs-angle curve, spatial + Linf.

Ranked: the ``spatial`` suite (Engstrom et al. 2019's grid, ±30° in 31 rotations × ±3 px in 5 × 5
translations = 775 transforms, plus their worst-of-10 random tries) at the largest n two models share;
a model's robust accuracy is the worst case over the grid *and* the random tries, the random-10 number
(the paper's second number) beside it. Rows of another suite or n are listed apart. Below the ranking:
the ``rotation_curve`` rows (worst case within ±θ, one column per θ) and the ``spatial_linf`` rows
(grid, then APGD-CE on each example's k highest-loss transforms: an upper bound). A threat with no
rows says so in the board's note instead of showing an empty table.
"""
from __future__ import annotations

from pathlib import Path

from symbench.leaderboard.board_common import (Board, _attrs, acc_cell, apart_reason, interval, model_cell, n_cell,
                                               rank_bands, rank_cell, split_protocol, verdict_cell)
from symbench.leaderboard.tables import Cell, Col, Table

SPATIAL_SUITE = "spatial"


def _measured(rows: list[dict], threat: str) -> list[dict]:
    return [r for r in rows if r.get("kind", "measured") == "measured" and r["threat"] == threat
            and r.get("robust_acc") is not None and not r.get("variant")]


def spatial_rows(rows: list[dict]) -> dict[str, dict]:
    """Per model its ``spatial``-threat row: the ``spatial`` suite's when it has one, and the largest n."""
    cands: dict[str, dict] = {}
    for r in _measured(rows, "spatial"):
        k = r["model"]
        if k not in cands or (r["suite"] == SPATIAL_SUITE, r["n"]) > (cands[k]["suite"] == SPATIAL_SUITE, cands[k]["n"]):
            cands[k] = r
    return cands


def rotation_rows(rows: list[dict]) -> dict[str, dict[float, dict]]:
    """model → θ (degrees) → its ``rotation`` row (largest n)."""
    out: dict[str, dict[float, dict]] = {}
    for r in _measured(rows, "rotation"):
        got = out.setdefault(r["model"], {})
        t = float(r["eps"])
        if t not in got or r["n"] >= got[t]["n"]:
            got[t] = r
    return out


def _sp(r: dict) -> dict:
    return r.get("spatial") or {}


def _spatial_cols() -> list[Col]:
    return [Col("rank", True, "rank band by robust accuracy (ties where 95% intervals overlap)"), Col("model"),
            Col("robust %", True, "correct on the clean image, every grid point and every random try (the worst of "
                "both); 95% Wilson interval underneath"),
            Col("random-10 %", True, "worst of 10 random (angle, tx, ty) tries per example alone: the paper's second "
                "number (a weaker attack than the grid)"),
            Col("grid %", True, "the exhaustive grid alone (exact over the grid)", narrow=False),
            Col("grid size", True, "transforms per example", narrow=False),
            Col("clean %", True, narrow=False), Col("verdict"), Col("n", True), Col("suite", narrow=False)]


def _spatial_record(r: dict, listed: str, band=(None, None), why: str = "") -> dict:
    s = _sp(r)
    return {"listed": listed, **({"why": why} if why else {}), "rank_best": band[0], "rank_worst": band[1],
            "model": r["model"], "threat": r["threat"], "eps": r["eps"], "eps_display": r.get("eps_display"),
            "robust_acc": r["robust_acc"], "grid_acc": s.get("grid_acc"), "random_acc": s.get("random_acc"),
            "random_tries": s.get("random_tries"), "grid_size": s.get("grid_size"), "clean_acc": r["clean_acc"],
            "n": r["n"], "suite": r["suite"], "suite_id": r.get("suite_id"), "verdict": r.get("verdict"),
            "failing_checks": [k for k, c in (r.get("checks") or {}).items() if c.get("status") == "fail"],
            "device": r.get("device"), "created": r.get("created")}


def _spatial_cells(r: dict, first: Cell, pages: set[str]) -> list[Cell]:
    s = _sp(r)
    rnd = acc_cell(s.get("random_acc"), r["n"], bar=False)
    if s.get("random_tries"):
        rnd.title = f"worst of {s['random_tries']} random tries per example; {rnd.title}"
    size = s.get("grid_size")
    return [first, model_cell(r["model"], pages), acc_cell(r["robust_acc"], r["n"]), rnd,
            acc_cell(s.get("grid_acc"), r["n"], bar=False),
            Cell(str(size) if size else "–", size if size else float("nan")),
            acc_cell(r["clean_acc"], r["n"], bar=False), verdict_cell(r), n_cell(r),
            Cell(r["suite"], title=r.get("suite_id") or "")]


def rotation_table(rot: dict[str, dict[float, dict]], pages: set[str]) -> Table:
    thetas = sorted({t for got in rot.values() for t in got})
    t = Table("spatial_rotation", [Col("model")] + [Col(f"±{th:g}°", True, "worst-case accuracy over every whole-degree "
                                                         f"rotation within ±{th:g}° (95% interval on hover)")
                                                     for th in thetas] + [Col("n", True)],
              default_sort=(len(thetas), "desc") if thetas else None)
    for m in sorted(rot):
        got = rot[m]
        ns = sorted({r["n"] for r in got.values()})
        cells = [model_cell(m, pages)]
        for th in thetas:
            r = got.get(th)
            c = acc_cell(r["robust_acc"], r["n"], bar=False) if r else Cell("–", float("nan"))
            c.sub = ""
            cells.append(c)
        cells.append(Cell("/".join(map(str, ns)), ns[-1]))
        t.add(cells, attrs={"model": m}, record={"model": m, "n": ns[-1], **{
            f"acc@{th:g}": (got[th]["robust_acc"] if th in got else None) for th in thetas}})
    return t


def spatial_linf_table(rows: list[dict], cards: dict, pages: set[str]) -> Table:
    t = Table("spatial_linf", [Col("model"), Col("eps"), Col("robust %", True, "grid, then the attack on each "
                                                                  "example's k highest-loss transforms: an upper bound"),
                               Col("grid alone %", True), Col("k", True, "transforms attacked per example"),
                               Col("clean %", True, narrow=False), Col("verdict"), Col("n", True)],
              default_sort=(2, "desc"))
    for r in sorted(_measured(rows, "spatial_linf"), key=lambda r: (r["model"], r["eps"])):
        b = r.get("spatial_linf") or {}
        t.add([model_cell(r["model"], pages), Cell(r.get("eps_display") or f"{r['eps']:g}", r["eps"]),
               acc_cell(r["robust_acc"], r["n"]), acc_cell(b.get("grid_acc"), r["n"], bar=False),
               Cell(str(b.get("k", "–")), b.get("k") or float("nan")), acc_cell(r["clean_acc"], r["n"], bar=False),
               verdict_cell(r), n_cell(r)], cls=r.get("verdict", ""), attrs=_attrs(r["model"], r, cards),
              record={"model": r["model"], "eps": r["eps"], "eps_display": r.get("eps_display"),
                      "robust_acc": r["robust_acc"], "grid_acc": b.get("grid_acc"), "k": b.get("k"),
                      "attack": b.get("attack"), "bound": b.get("bound"), "clean_acc": r["clean_acc"], "n": r["n"],
                      "suite_id": r.get("suite_id"), "verdict": r.get("verdict")})
    return t


def spatial_board(rows: list[dict], cards: dict, pages: set[str], plots: list[Path] | None = None,
                  findings: Board | None = None) -> Board:
    """Worst case over ±30° rotations and ±3 px translations, ranked; the angle curve and spatial + Linf below."""
    cands = spatial_rows(rows)
    ranked, apart, n_rank = split_protocol(cands, SPATIAL_SUITE)
    t = Table("spatial", _spatial_cols(), default_sort=(2, "desc"))
    rs = sorted(ranked.values(), key=lambda r: -r["robust_acc"])
    vals = [(r["robust_acc"], *interval(r["robust_acc"], r["n"])) for r in rs]
    for r, v, band in zip(rs, vals, rank_bands(vals)):
        tied = [x["model"] for x, v2 in zip(rs, vals) if x is not r and v2[1] <= v[2] and v2[2] >= v[1]]
        t.add(_spatial_cells(r, rank_cell(band, tied), pages), cls="ranked " + r.get("verdict", ""),
              attrs=_attrs(r["model"], r, cards), record=_spatial_record(r, "ranked", band))
    t_apart = Table("spatial-apart", t.cols, default_sort=t.default_sort)
    for m, r in sorted(apart.items(), key=lambda kv: -kv[1]["robust_acc"]):
        why = apart_reason(r, SPATIAL_SUITE, n_rank)
        t_apart.add(_spatial_cells(r, Cell("–", float("nan"), title="not ranked: " + why), pages),
                    cls="apart " + r.get("verdict", ""), attrs=_attrs(m, r, cards),
                    record=_spatial_record(r, "apart", why=why))
    rot = rotation_rows(rows)
    linf = spatial_linf_table(rows, cards, pages)
    missing = []
    if not cands:
        missing.append("no `spatial` row yet (run `symbench bench --model NAME --suite spatial --n 1000`)")
    if not rot:
        missing.append("no `rotation_curve` row yet (`--suite rotation_curve`)")
    if not linf.rows:
        missing.append("no `spatial_linf` row yet (`--suite spatial_linf`, for the adversarially trained models)")
    note = ("Engstrom et al. 2019's protocol: every rotation within ±30° (31 values) combined with every translation "
            "within ±3 px (5 × 5), bilinear interpolation, zeros outside the image; an example counts as robust only if "
            "it is classified correctly under every one of the 775 grid transforms and every one of 10 seeded random "
            "tries. Robust % is that worst case (exact over the grid; a finer-grid spot check fails a row the grid "
            "over-reports by more than 2 points); random-10 % is the random tries alone, the paper's weaker second "
            "number. These are not Lp threats: the rows rank against each other only. The defended models "
            "(`<model>+equi_defense`, seed 2) are left out: each of their forwards runs the defense's 5 steps over 6 "
            "views (31 base passes, most with a backward) and draws fresh noise, so the 775-transform grid at n = 1000 "
            "is ~24 million base passes per draw, 5-9 CPU-hours per model per draw here, and a randomized model "
            "needs several draws to be scored honestly."
            + (" Not yet measured: " + "; ".join(missing) + "." if missing else ""))
    board = Board("spatial", "Spatial", "What does a small rotation or shift do to the model, in the worst case?", note,
                  t, plots=list(plots or []), headline="robust %",
                  protocol=(f"Ranked: suite `spatial` (±30°, ±3 px, grid of 775 + 10 random tries) at n = {n_rank} "
                            "test images." if n_rank else "No `spatial` suite row yet: nothing is ranked."))
    if t_apart.rows:
        board.extra.append(("Not ranked: another suite or another n", "Spatial rows measured under another suite or on "
                            "another number of images.", t_apart))
    if rot:
        board.extra.append(("Accuracy vs rotation angle (suite rotation_curve)", "Worst-case accuracy over every "
                            "whole-degree rotation within ±θ (rotations only, no translation; the multiples of 90° "
                            "exact). θ = 0 is the clean accuracy; a P4-invariant model keeps its 90° point.",
                            rotation_table(rot, pages)))
    if linf.rows:
        board.extra.append(("Spatial + Linf (suite spatial_linf)", "The grid, then APGD-CE at Linf eps on each "
                            "example's k highest-loss grid transforms; robust only if all survive. An upper bound on "
                            "the combined worst case (only k of 775 transforms are attacked).", linf))
    if findings is not None and (findings.table.rows or findings.note):
        board.extra.append(("Paired on the same examples", findings.note, findings.table))
    return board


def model_spatial(name: str, rows: list[dict], pages: set[str]) -> list[tuple[str, str, Table]]:
    """A model page's spatial section: its spatial rows, its angle curve, its spatial + Linf rows."""
    mine = [r for r in rows if r["model"] == name]
    out = []
    sp = sorted(_measured(mine, "spatial"), key=lambda r: (r["suite"] != SPATIAL_SUITE, -r["n"]))
    if sp:
        t = Table(f"spatial-{name}", _spatial_cols()[1:])
        for r in sp:
            t.add(_spatial_cells(r, Cell(""), pages)[1:], cls=r.get("verdict", ""), attrs={"model": name},
                  record=_spatial_record(r, "model"))
        out.append(("Spatial (±30°, ±3 px)", "Worst case over the 775-transform grid and 10 random tries (robust %), "
                    "the random tries alone beside it.", t))
    rot = rotation_rows(mine)
    if rot:
        out.append(("Accuracy vs rotation angle", "Worst-case accuracy over every whole-degree rotation within ±θ.",
                    rotation_table(rot, pages)))
    lt = spatial_linf_table(mine, {}, pages)
    if lt.rows:
        out.append(("Spatial + Linf", "Grid, then APGD-CE on the k highest-loss transforms: an upper bound.", lt))
    return out


__all__ = ["SPATIAL_SUITE", "model_spatial", "rotation_rows", "rotation_table", "spatial_board",
           "spatial_linf_table", "spatial_rows"]
