"""The threat boards (Linf 8/255, L2 0.5): AutoAttack ``standard`` rows ranked at one n; other suites and n
listed apart; RobustBench's reported numbers in a table of their own."""
from __future__ import annotations

from symbench.leaderboard.board_common import (SUITE_STRENGTH, Board, interval, rank_bands, n_cell, _close, acc_cell,
                                               headline_acc, robust_cell, verdict_cell, rank_cell, model_cell, _attrs,
                                               split_protocol, paper_cell, architecture, extra_data_cell, params_cell,
                                               reported_params_of, _about_cols, _about_cells, _record, apart_table)
from symbench.leaderboard.rows import _is_attack
from symbench.leaderboard.tables import Cell, Col, Table


def strongest_rows(rows: list[dict], threat: str, eps: float) -> dict[str, dict]:
    """model → its row at (threat, eps) from the strongest suite it has (largest n within it)."""
    out: dict[str, dict] = {}
    for suite in SUITE_STRENGTH:
        for r in rows:
            if (r["suite"] == suite and _is_attack(r) and r["threat"] == threat and _close(r["eps"], eps)
                    and r["model"] not in out):
                best = max((x for x in rows if x["suite"] == suite and x["model"] == r["model"] and _is_attack(x)
                            and x["threat"] == threat and _close(x["eps"], eps)), key=lambda x: x["n"])
                out[r["model"]] = best
    return out


REPORTED_FEW = 6  # reported rows shown by default on a threat board; the rest behind "all"


def reported_shown(refs: list[dict], best_measured: float | None) -> set[str]:
    """Reported rows visible before a reader asks for all: the best, the best without extra data, the
    weakest few that still beat our best model (the nearest comparison) and the undefended Standard."""
    if not refs:
        return set()
    by = sorted(refs, key=lambda r: -r["robust_acc"])
    keep = {by[0]["model"]}
    own = [r for r in by if not r.get("additional_data")]
    if own:
        keep.add(own[0]["model"])
    above = [r for r in by if best_measured is None or r["robust_acc"] >= best_measured]
    keep |= {r["model"] for r in above[-(REPORTED_FEW - 3):]}
    keep |= {r["model"] for r in refs if r["model"].split(":")[-1] == "Standard"}
    return keep


def threat_board(rows: list[dict], refs: list[dict], cards: dict, pages: set[str], threat: str, eps: float,
                 board_id: str, title: str, eps_text: str) -> Board:
    """One threat's board: ranks the AutoAttack ``standard`` rows at the ranking n; every other model's strongest row
    (another suite, another n) is listed apart, and RobustBench's reported numbers in a table of their own."""
    ranked, apart, n_rank = split_protocol(strongest_rows(rows, threat, eps), "standard")
    refs = [r for r in refs if r["threat"] == threat and r.get("robust_acc") is not None and _close(r["eps"], eps)]
    t = Table(board_id, [Col("rank", True, "rank band from 95% intervals: models whose intervals overlap share it"),
                         Col("model"), *_about_cols(),
                         Col("clean %", True, "accuracy on the unperturbed test images, 95% interval underneath",
                             narrow=False),  # a phone shows rank, model, robust and verdict
                         Col("robust %", True, "per-example worst case over every attack of the suite, 95% Wilson "
                             "interval underneath and as a bar"),
                         Col("verdict", help="validity checks; click to see each"),
                         Col("n", True, "test images", narrow=False)],
              default_sort=(10, "desc"))
    models = sorted(ranked, key=lambda m: -headline_acc(ranked[m])[0])
    vals = []
    for m in models:
        acc = headline_acc(ranked[m])[0]
        lo, hi = interval(acc, ranked[m]["n"])
        vals.append((acc, lo, hi))
    for m, v, band in zip(models, vals, rank_bands(vals)):
        r = ranked[m]
        tied = [o for o, v2 in zip(models, vals) if o != m and v2[1] <= v[2] and v2[2] >= v[1]]
        t.add([rank_cell(band, tied), model_cell(m, pages), *_about_cells(m, r, cards, rows),
               acc_cell(r["clean_acc"], r["n"], bar=False), robust_cell(r), verdict_cell(r), n_cell(r)],
              cls="ranked " + r.get("verdict", "unchecked"), attrs=_attrs(m, r, cards),
              record={"listed": "ranked", "rank_best": band[0], "rank_worst": band[1], **_record(m, r, cards, rows),
                      "robust_low": v[1], "robust_high": v[2], "headline_robust_acc": v[0],
                      "escalated": headline_acc(r)[1]})
    board = Board(board_id, title, f"Who is most robust at {threat.upper() if threat == 'l2' else 'Linf'} "
                  f"eps {eps_text}?",
                  "Ranked by robust accuracy; the rank is a band, and models whose 95% intervals overlap share it "
                  "(statistically tied). Models measured only with another suite (`quick`; `adaptive` for test-time "
                  "defenses) or on fewer examples are listed below the ranking, not in it, and so are RobustBench's "
                  "reported numbers (AutoAttack on all 10,000 images, not run or checked here).", t,
                  headline="robust %", protocol=(f"Ranked: suite `standard` (AutoAttack: APGD-CE, APGD-T, FAB-T, "
                                                 f"Square) at {title}, n = {n_rank} test images." if n_rank else
                                                 "No `standard` row at this eps yet: nothing is ranked."))
    if apart:
        board.extra.append(("Not ranked: another suite or another n", "Each model's strongest row at this eps; not "
                            "comparable with the ranking above (a weaker suite over-reports robustness, fewer examples "
                            "give wider intervals).", apart_table(f"{board_id}-apart", apart, "standard", n_rank,
                                                                  cards, pages, rows)))
    if refs:
        board.extra.append(("RobustBench's reported numbers", "AutoAttack on all 10,000 test images, as RobustBench "
                            "reports them (model_info); not measured or checked here, so not ranked."
                            f"{same_n_note(refs, n_rank)} 'RobustBench: all' in the filters shows every one.",
                            reported_table(f"{board_id}-reported", refs, max((v[0] for v in vals), default=None))))
    return board


def same_n_note(refs: list[dict], n_rank: int | None) -> str:
    """Whether the ranking's intervals are as narrow as RobustBench's: comparable only at the same n."""
    ns = sorted({r["n"] for r in refs})
    if n_rank is None:
        return ""
    if ns == [n_rank]:
        return f" The ranking above is on the same {n_rank:,} images, so its intervals are as narrow as these."
    how = "its intervals are wider than these" if n_rank < ns[0] else "the intervals differ"
    return f" The ranking above is on {n_rank:,} images, not {', '.join(f'{n:,}' for n in ns)}: {how}."


def reported_table(tid: str, refs: list[dict], best_measured: float | None) -> Table:
    """RobustBench's reported rows: venue, architecture, params (counted from its zoo), extra data; never ranked."""
    shown = reported_shown(refs, best_measured)
    t = Table(tid, [Col("model"), *_about_cols(), Col("clean %", True, narrow=False), Col("robust %", True,
                    "AutoAttack, as RobustBench reports it"), Col("n", True, narrow=False)], default_sort=(9, "desc"))
    for r in sorted(refs, key=lambda r: -r["robust_acc"]):
        name = r["model"].split(":", 1)[-1]
        params = reported_params_of(r)
        t.add([Cell(name, href=r.get("link"), title=f"{r.get('paper') or ''} ({r.get('venue') or ''})"),
               Cell(architecture(name, {}, r)), Cell("–"), Cell("–"), params_cell(params),
               extra_data_cell(name, {}, r), paper_cell(name, {}, r),
               acc_cell(r["clean_acc"], r["n"], bar=False), acc_cell(r["robust_acc"], r["n"]),
               Cell(str(r["n"]), r["n"])],
              cls="reported" + ("" if r["model"] in shown else " more"),
              attrs={"model": name, "family": "robustbench", "group": "", "at": "reported", "verdict": "reported",
                     "reported": "1"},
              record={"listed": "reported", "model": r["model"], "kind": "reported", "architecture": r.get("architecture"),
                      "params": params, "extra_data": r.get("additional_data"), "venue": r.get("venue"),
                      "paper": r.get("paper"), "link": r.get("link"), "threat": r["threat"], "eps": r["eps"],
                      "clean_acc": r["clean_acc"], "robust_acc": r["robust_acc"], "n": r["n"],
                      **dict(zip(("robust_low", "robust_high"), interval(r["robust_acc"], r["n"]) or (None, None))),
                      "suite": "robustbench (AutoAttack, reported)", "verdict": "reported"})
    return t


def plotted_records(board: Board) -> list[dict]:
    """The records a threat board's forest plot draws: its ranked rows and the reported rows it shows by default
    (grey squares, for scale; a reader asks for the rest on the page)."""
    tables = [board.table] + [t for _, _, t in board.extra if t.id.endswith("-reported")]
    return [r.record for t in tables for r in t.rows if "more" not in r.cls.split()]
