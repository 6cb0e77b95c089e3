"""The CLEVER board: an estimate, not a certificate, ordered by the median score."""
from __future__ import annotations

from pathlib import Path

from symbench.leaderboard.board_common import Board, _is_at, _group, model_cell, _attrs
from symbench.leaderboard.rows import _is_clever
from symbench.leaderboard.tables import Cell, Col, Table


def clever_board(rows: list[dict], cards: dict, pages: set[str], plots: list[Path]) -> Board:
    rs = [r for r in rows if _is_clever(r) and (r["clever"] or {}).get("median") is not None]
    norms = sorted({r["threat"] for r in rs}, key=lambda n: (n != "l2", n))
    t = Table("clever", [Col("rank", True, "by the median score of the first norm; no interval (an estimate)"),
                         Col("model"), Col("group", narrow=False), Col("AT")]
              + [Col(f"{n} median", True, f"median CLEVER score ({n}), quartiles underneath") for n in norms]
              + [Col("images scored", True), Col("implementation", narrow=False)], default_sort=(4, "desc"))
    by: dict[str, dict[str, dict]] = {}
    for r in rs:
        by.setdefault(r["model"], {})[r["threat"]] = r
    first = norms[0] if norms else None
    models = sorted(by, key=lambda m: -((by[m].get(first) or {}).get("clever") or {}).get("median", -1))
    for i, m in enumerate(models, 1):
        any_row = next(iter(by[m].values()))
        cells = [Cell(str(i), i), model_cell(m, pages), Cell(_group(any_row, cards)),
                 Cell("AT" if _is_at(m, cards) else "–")]
        rec = {"rank": i, "model": m}
        for n in norms:
            c = (by[m].get(n) or {}).get("clever")
            if not c:
                cells.append(Cell("–", float("nan")))
                continue
            cells.append(Cell(f"{c['median']:.3g}", c["median"], sub=f"[{c['q1']:.3g}–{c['q3']:.3g}]",
                              title=f"radius {by[m][n]['eps']:g}; min {c['min']:.3g}, max {c['max']:.3g}"))
            rec.update({f"{n}_median": c["median"], f"{n}_q1": c["q1"], f"{n}_q3": c["q3"],
                        f"{n}_radius": by[m][n]["eps"]})
        scored = sorted({str((r["clever"] or {}).get("n_scored", 0)) for r in by[m].values()})
        cells += [Cell("/".join(scored), int(scored[0])),
                  Cell(str((any_row["clever"] or {}).get("toolkit_function") or any_row["clever"].get("implementation")))]
        rec["n_scored"] = "/".join(scored)
        t.add(cells, cls="ranked", attrs=_attrs(m, any_row, cards), record=rec)
    return Board("clever", "CLEVER", "How large a perturbation does CLEVER estimate it takes?",
                 "CLEVER is an ESTIMATE, NOT A CERTIFICATE: a sampled extreme-value estimate of a lower bound on the "
                 "smallest adversarial perturbation (Weng et al. 2018). It can overestimate robustness, e.g. under "
                 "gradient masking, and is capped at the sampling radius. Few images are scored, so read it as a "
                 "rough ordering beside the attack boards, never instead of them.", t, plots, headline=f"{first} median",
                 protocol=f"Ordered (not ranked with intervals): suite `clever`, the median {first} CLEVER score over "
                          "the images each model had scored.")
