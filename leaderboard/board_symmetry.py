"""The symmetry board: orbit accuracy (every rotated, flipped and zoomed copy right) and equivariance errors."""
from __future__ import annotations

from symbench.leaderboard.board_common import (LINF_EPS, Board, interval, rank_bands, _close, _is_at, _group, acc_cell,
                                               rank_cell, model_cell, _attrs, split_protocol, apart_reason)
from symbench.leaderboard.rows import _is_attack
from symbench.leaderboard.tables import Cell, Col, Table, num


def symmetry_board(rows: list[dict], cards: dict, pages: set[str]) -> Board:
    """Orbit accuracy (every rotated/flipped/zoomed copy right) and measured equivariance errors."""
    with_orbit = [r for r in rows if _is_attack(r) and r.get("orbit")]
    by: dict[str, list[dict]] = {}
    for r in with_orbit:
        by.setdefault(r["model"], []).append(r)
    eps = sorted({round(float(r["eps"]), 9) for r in with_orbit})
    t = Table("symmetry", [Col("rank", True, "rank band by orbit-alone accuracy (ties where 95% intervals overlap)"),
                           Col("model"), Col("group"), Col("AT", narrow=False),
                           Col("orbit alone %", True, "correct on every rotated (90/180/270), flipped and zoomed "
                               "(0.8, 1.25) copy of the image, no perturbation")]
              + [Col(f"orbit+attack % eps {e:g}", True, "correct on every copy after PGD on each (attack alone on the "
                     "same images underneath)", narrow=False) for e in eps]
              + [Col("rot90 err", True, "||f(rot90 x) - f(x)|| / ||f(x)|| on clean inputs (0: exactly invariant)"),
                 Col("flip err", True, "the same under a horizontal flip"),
                 Col("scale err", True, "the same under rescaling", narrow=False),
                 Col("n", True, "images in the orbit test"), Col("suite", narrow=False)],
              default_sort=(4, "desc"))
    picks = {m: sorted(rs, key=lambda r: abs(float(r["eps"]) - LINF_EPS))[0] for m, rs in by.items()}
    suites = [r["suite"] for r in picks.values()]
    suite = max(sorted(set(suites)), key=suites.count) if suites else "paper"  # the suite most orbit columns are from
    ranked, _, n_rank = split_protocol(picks, suite, n_of=lambda r: r["orbit"]["n"])
    models = sorted(ranked, key=lambda m: -ranked[m]["orbit"]["clean_acc"])
    vals = [(ranked[m]["orbit"]["clean_acc"], *interval(ranked[m]["orbit"]["clean_acc"], ranked[m]["orbit"]["n"]))
            for m in models]
    bands = dict(zip(models, rank_bands(vals)))
    t_apart = Table("symmetry-apart", t.cols, default_sort=t.default_sort)
    for m in models + sorted(set(picks) - set(ranked), key=lambda m: -picks[m]["orbit"]["clean_acc"]):
        r = picks[m]
        o = r["orbit"]
        if m in bands:
            v, band = vals[models.index(m)], bands[m]
            tied = [x for x, v2 in zip(models, vals) if x != m and v2[1] <= v[2] and v2[2] >= v[1]]
            first = rank_cell(band, tied)
        else:
            band = (None, None)
            first = Cell("–", float("nan"), title="not ranked: " + apart_reason(r, suite, n_rank,
                                                                                 lambda r: r["orbit"]["n"]))
        eq = (r.get("equivariance") or {}).get("clean") or {}
        cells = [first, model_cell(m, pages), Cell(_group(r, cards)),
                 Cell("AT" if _is_at(m, cards) else "–"), acc_cell(o["clean_acc"], o["n"])]
        rec = {"rank_best": band[0], "rank_worst": band[1], "model": m, "group": _group(r, cards),
               "orbit_alone_acc": o["clean_acc"], "n": o["n"], "transforms": o.get("transforms"),
               "orbit_attack": f"{o.get('attack')} {o.get('params')}",
               "equivariance_clean": eq, "suite": r["suite_id"]}
        for e in eps:
            x = next((x for x in by[m] if _close(x["eps"], e)), None)
            if x is None:
                cells.append(Cell("–", float("nan")))
                continue
            c = acc_cell(x["orbit"]["robust_acc"], x["orbit"]["n"], bar=False)
            na = x["orbit"].get("robust_acc_no_orbit")
            c.sub = f"(attack alone {100 * na:.1f})" if na is not None else c.sub
            cells.append(c)
            rec[f"orbit_attack_acc@{e:g}"] = x["orbit"]["robust_acc"]
            rec[f"attack_alone_acc@{e:g}"] = na
        cells += [num(eq.get("rot90"), "{:.3f}"), num(eq.get("hflip"), "{:.3f}"), num(eq.get("scale"), "{:.3f}"),
                  Cell(str(o["n"]), o["n"]), Cell(r["suite"], title=r["suite_id"])]
        rec["listed"] = "ranked" if m in bands else "apart"
        (t if m in bands else t_apart).add(cells, cls=("ranked " if m in bands else "apart ") + r.get("verdict", ""),
                                           attrs=_attrs(m, r, cards), record=rec)
    board = Board("symmetry", "Symmetry", "Is the model right on every rotated, flipped and zoomed copy, and is it "
                 "really equivariant?",
                 "Orbit alone: correct on all 7 copies of an image (identity, rot 90/180/270, flip, zoom 0.8/1.25), no "
                 "perturbation. Orbit+attack: correct on all copies after a PGD attack on each. Errors: the measured "
                 "relative change of the logits under each transform on clean images (0 means exactly invariant).", t,
                 headline="orbit alone %",
                 protocol=(f"Ranked: orbit-alone accuracy from the `{suite}` suite's orbit column, n = {n_rank} test "
                           "images." if n_rank else "No orbit column yet: nothing is ranked."))
    if t_apart.rows:
        board.extra.append(("Not ranked: another suite or another n", "Orbit columns measured under another suite or "
                            "on another number of images.", t_apart))
    return board
