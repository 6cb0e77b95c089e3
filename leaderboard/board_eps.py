"""The robustness-vs-eps board: a column per eps, ranked at the eps nearest 8/255 by the worst case."""
from __future__ import annotations

from pathlib import Path

from symbench.leaderboard.board_common import (LINF_EPS, Board, interval, rank_bands, _is_at, _group, acc_cell,
                                               verdict_cell, rank_cell, model_cell, _attrs, split_protocol,
                                               apart_reason)
from symbench.leaderboard.rows import curve_basis, curve_rows, fgsm_alone, seed_pgd
from symbench.leaderboard.tables import Cell, Col, Table


def eps_board(rows: list[dict], cards: dict, pages: set[str], plots: list[Path]) -> Board:
    """Accuracy vs eps, one row per model, a column per eps (seed Figures 1-2), as a worst case: each cell is
    the ``paper_worst`` row (APGD-CE + APGD-T on top of seed 1's FGSM + PGD-40) where there is one, else the
    seed-protocol ``paper`` row, marked as an upper bound unless nothing survived it or its spot check passed."""
    by = curve_rows(rows)
    eps = sorted({e for rs in by.values() for e in rs})
    head = min(eps, key=lambda e: abs(e - LINF_EPS)) if eps else None
    cols = [Col("rank", True, "rank band at the headline eps (ties where 95% intervals overlap)"), Col("model"),
            Col("group", narrow=False), Col("AT"), Col("clean %", True)]
    for e in eps:
        cols.append(Col(f"eps {e:g}" + (" ★" if e == head else ""), True,
                        "worst case % over FGSM, PGD-40, APGD-CE and APGD-T (suite paper_worst; the seed's FGSM + "
                        "PGD-40 number underneath); 'seed protocol ≥' marks a paper-suite cell that is only an upper bound"
                        + ("; the board is ranked by this eps, nearest 8/255" if e == head else ""),
                        narrow=(e == head)))
    cols += [Col("n", True), Col("verdict")]
    t = Table("eps", cols, default_sort=(5 + eps.index(head), "desc") if eps else None)
    t_apart = Table("eps-apart", cols, default_sort=t.default_sort)
    # ranked: the worst case (paper_worst) at the headline eps, at one n; a seed-protocol upper bound or another n
    # is listed apart
    ranked, _, n_rank = split_protocol({m: rs[head] for m, rs in by.items() if head in rs}, "paper_worst")
    models = sorted(ranked, key=lambda m: -ranked[m]["robust_acc"])
    vals = [(ranked[m]["robust_acc"], *interval(ranked[m]["robust_acc"], ranked[m]["n"])) for m in models]
    bands = dict(zip(models, rank_bands(vals)))
    others = sorted(set(by) - set(ranked), key=lambda m: (-(by[m].get(head) or {}).get("robust_acc", -1), m))  # ties: by name, not set order
    for m in models + others:
        rs = by[m]
        any_row = rs.get(head) or next(iter(rs.values()))
        if m in bands:
            v, band = vals[models.index(m)], bands[m]
            tied = [o for o, v2 in zip(models, vals) if o != m and v2[1] <= v[2] and v2[2] >= v[1]]
            first = rank_cell(band, tied)
        else:
            band = (None, None)
            why = apart_reason(rs[head], "paper_worst", n_rank) if head in rs else f"no row at eps {head:g}"
            first = Cell("–", float("nan"), title=f"not ranked: {why}")
        cells = [first, model_cell(m, pages), Cell(_group(any_row, cards)),
                 Cell("AT" if _is_at(m, cards) else "–"), acc_cell(any_row["clean_acc"], any_row["n"], bar=False)]
        rec = {"rank_best": band[0], "rank_worst": band[1], "model": m, "group": _group(any_row, cards),
               "adversarially_trained": _is_at(m, cards), "clean_acc": any_row["clean_acc"], "n": any_row["n"]}
        for e in eps:
            r = rs.get(e)
            if r is None:
                cells.append(Cell("–", float("nan")))
                continue
            f, basis, seed = fgsm_alone(r), curve_basis(r), seed_pgd(r)
            c = acc_cell(r["robust_acc"], r["n"], bar=(e == head))
            under = (f"seed PGD-40 {100 * seed:.1f}" if r["suite"] == "paper_worst" and seed is not None else
                     f"FGSM {100 * f:.1f}" if f is not None else "")
            if basis == "seed":
                c.text = "≥ " + c.text
                under = "seed protocol: FGSM+PGD-40 only"
            c.sub = (c.sub + " " if e == head else "") + (f"({under})" if under else "")
            c.title = (f"suite {r['suite']} n={r['n']}: " + ("worst case over FGSM, PGD-40, APGD-CE, APGD-T" if
                       r["suite"] == "paper_worst" else "FGSM + PGD-40 (seed protocol)" + (
                           "; an upper bound: no APGD run on it yet" if basis == "seed" else
                           "; nothing survived it" if not r["robust_acc"] else "; the APGD spot check passed")))
            cells.append(c)
            rec[f"robust_acc@{e:g}"] = r["robust_acc"]
            rec[f"fgsm_acc@{e:g}"] = f
            rec[f"seed_pgd_acc@{e:g}"] = seed
            rec[f"suite@{e:g}"] = r["suite"]
            rec[f"basis@{e:g}"] = basis
        worst = next((v for v in ("suspect", "unchecked", "trusted") if v in {r.get("verdict") for r in rs.values()}),
                     "unchecked")
        vr = next(r for r in rs.values() if r.get("verdict") == worst) if any(
            r.get("verdict") == worst for r in rs.values()) else any_row
        cells += [Cell("/".join(sorted({str(r["n"]) for r in rs.values()})), any_row["n"]), verdict_cell(vr)]
        rec["verdict"] = worst
        rec["listed"] = "ranked" if m in bands else "apart"
        (t if m in bands else t_apart).add(cells, cls=("ranked " if m in bands else "apart ") + worst,
                                           attrs=_attrs(m, vr, cards), record=rec)
    board = Board("eps", "Robustness vs eps", "How fast does accuracy fall as eps grows (Linf)?",
                 "One row per model, a column per eps: the per-example worst case over seed 1's FGSM and PGD-40 and "
                 "AutoAttack's APGD-CE and APGD-T (suite `paper_worst`; the seed's FGSM + PGD-40 number underneath). "
                 "Where a model has only the seed-protocol `paper` row, its cell is that number, exact when nothing "
                 "survived it or the APGD spot check passed, else marked '≥' (an upper bound). Ranked at the eps "
                 "nearest 8/255 (★), with rank bands from 95% intervals. The plots draw the same rows; the seed's "
                 "own protocol stays on the Seed claims tab.", t, plots,
                 headline=f"eps {head:g}" if head is not None else "",
                 protocol=(f"Ranked: suite `paper_worst` (FGSM, PGD-40, APGD-CE, APGD-T) at Linf eps {head:g}, "
                           f"n = {n_rank} test images." if n_rank else "No `paper_worst` row yet: nothing is ranked."))
    if t_apart.rows:
        board.extra.append(("Not ranked: seed protocol only, or another n", "Models whose headline cell is the seed "
                            "protocol's `paper` row (an upper bound unless its spot check passed) or another n.",
                            t_apart))
    return board
