"""The defenses board: each defended model against its undefended base under the ``adaptive`` suite."""
from __future__ import annotations

from symbench.leaderboard.board_common import (Board, interval, rank_bands, diff_interval, n_cell, acc_cell,
                                               headline_acc, robust_cell, verdict_cell, rank_cell, model_cell, _attrs,
                                               _cascade, split_protocol, apart_table)
from symbench.leaderboard.rows import _is_attack
from symbench.leaderboard.tables import Cell, Col, Table


def defense_gain(r: dict) -> tuple[float, float, float, float | None, bool]:
    """(gain, low, high, McNemar p, paired) of a defended row over its base: the row's paired ``defense_gain``
    (same examples, bench/checks/gain.py) when it has one, else Newcombe's unpaired interval without a p-value."""
    g = r.get("defense_gain")
    if g:
        return g["diff"], g["low"], g["high"], g["p_value"], True
    gain = r["robust_acc"] - r["base_robust_acc"]
    return (gain, *diff_interval(r["robust_acc"], r["n"], r["base_robust_acc"], r["n"]), None, False)


def gain_cell(r: dict) -> Cell:
    """The defense's gain over its base: points, 95% interval, McNemar p-value, and whether it is significant."""
    gain, lo, hi, p, paired = defense_gain(r)
    return Cell(f"{100 * gain:+.1f}", round(100 * gain, 4),
                sub=f"[{100 * lo:+.1f} to {100 * hi:+.1f}]" + (f" p={p:.2g}" if p is not None else "")
                + ("" if lo > 0 or hi < 0 else " no significant gain"),
                title=("paired on the same examples, exact McNemar p-value" if paired else
                       "unpaired (Newcombe): this row predates the paired gain; rerun it for the paired test")
                + ("; the interval contains 0: no significant gain" if lo <= 0 <= hi else "; the interval excludes 0")
                + ("; from the suite's numbers on both sides: the escalation that gives the headline attacked the "
                   "defended model only, so it is not paired against the base" if r.get("escalated_robust_acc")
                   is not None else ""))


def clean_cell(r: dict) -> Cell:
    """The defended model's clean accuracy, its base's underneath."""
    c = acc_cell(r["clean_acc"], r["n"], bar=False)
    c.sub = f"(base {100 * r['base_clean_acc']:.1f})" if r.get("base_clean_acc") is not None else ""
    return c


FULL = "adaptive_full"


def full_budget_table(every: list[dict], defended: list[str], pages: set[str]) -> Table:
    """Each defended model's ``adaptive_full`` row (the field's budgets, worst of 8 draws) beside its base, or
    'not yet measured': the CPU-sized ``adaptive`` suite ranks, this says whether the full budget changes it."""
    full: dict[str, dict] = {}
    for r in every:
        if r["suite"] == FULL and (r["model"] not in full or r["n"] > full[r["model"]]["n"]):
            full[r["model"]] = r
    t = Table("defenses-full", [Col("defended model"), Col("base model", narrow=False),
                                Col("clean %", True, "defended (base underneath)"),
                                Col("robust %", True, "defended, worst case over adaptive_full"),
                                Col("base robust %", True, "the undefended base under the same suite", narrow=False),
                                Col("gain (pp)", True, "defended minus base on the same examples: 95% interval and "
                                    "McNemar p-value underneath"), Col("verdict"), Col("n", True)])
    for m in sorted(set(defended) | set(full)):
        r = full.get(m)
        if r is None:
            t.add([model_cell(m, pages)] + [Cell("")] * 5 + [Cell("not yet measured"), Cell("")],
                  record={"model": m, "suite": FULL, "measured": False})
            continue
        clean = clean_cell(r)
        gain, lo, hi, p, _ = defense_gain(r)
        t.add([model_cell(m, pages), model_cell(r["base_model"], pages), clean, robust_cell(r),
               acc_cell(r["base_robust_acc"], r["n"], bar=False), gain_cell(r), verdict_cell(r), n_cell(r)],
              record={"model": m, "suite": FULL, "measured": True, "robust_acc": r["robust_acc"],
                      "base_robust_acc": r["base_robust_acc"], "gain": gain, "gain_low": lo, "gain_high": hi,
                      "gain_p_value": p, "n": r["n"], "verdict": r.get("verdict"), "suite_id": r["suite_id"]})
    return t


def defense_board(rows: list[dict], cards: dict, pages: set[str]) -> Board:
    """Test-time defenses: the defended model vs its undefended base under the same adaptive suite."""
    every = [r for r in rows if _is_attack(r) and r.get("base_model") and r.get("base_robust_acc") is not None]
    cands: dict[str, dict] = {}
    for r in every:  # per defended model: its adaptive row (largest n), else its strongest other one
        k = r["model"]
        if k not in cands or (r["suite"] == "adaptive", r["n"]) > (cands[k]["suite"] == "adaptive", cands[k]["n"]):
            cands[k] = r
    ranked, apart, n_rank = split_protocol(cands, "adaptive")
    rs = list(ranked.values())
    t = Table("defenses", [Col("rank", True, "rank band by defended robust accuracy"), Col("defended model"),
                           Col("base model", narrow=False), Col("clean %", True, "defended (base underneath)"),
                           Col("robust %", True, "defended, per-example worst case over the adaptive suite"),
                           Col("base robust %", True, "the undefended base under the same suite", narrow=False),
                           Col("gain (pp)", True, "defended minus base robust accuracy on the same examples: 95% "
                               "interval and McNemar p-value underneath (rows from before the paired gain: Newcombe, "
                               "unpaired)"),
                           Col("verdict"), Col("n", True), Col("suite", narrow=False)],
              default_sort=(4, "desc"))
    rs = sorted(rs, key=lambda r: -headline_acc(r)[0])
    vals = [(headline_acc(r)[0], *interval(headline_acc(r)[0], r["n"])) for r in rs]
    for r, v, band in zip(rs, vals, rank_bands(vals)):
        m = r["model"]
        tied = [x["model"] for x, v2 in zip(rs, vals) if x is not r and v2[1] <= v[2] and v2[2] >= v[1]]
        gain, lo, hi, p, paired = defense_gain(r)
        clean = clean_cell(r)
        t.add([rank_cell(band, tied), model_cell(m, pages), model_cell(r["base_model"], pages), clean,
               robust_cell(r), acc_cell(r["base_robust_acc"], r["n"], bar=False),
               gain_cell(r), verdict_cell(r), n_cell(r), Cell(r["suite"], title=f"{r['suite_id']}; {_cascade(r)}")],
              cls="ranked " + r.get("verdict", ""), attrs=_attrs(m, r, cards),
              record={"listed": "ranked", "rank_best": band[0], "rank_worst": band[1], "model": m,
                      "base_model": r["base_model"],
                      "clean_acc": r["clean_acc"], "base_clean_acc": r.get("base_clean_acc"),
                      "robust_acc": r["robust_acc"], "escalated_robust_acc": r.get("escalated_robust_acc"),
                      "base_robust_acc": r["base_robust_acc"], "gain": gain,
                      "gain_low": lo, "gain_high": hi, "gain_p_value": p, "gain_paired": paired, "n": r["n"], "suite_id": r["suite_id"],
                      "verdict": r.get("verdict"), "attacks": r.get("attacks"), "base_attacks": r.get("base_attacks")})
    board = Board("defenses", "Defenses", "Does a test-time defense add robustness over its undefended base?",
                 "Each defended model beside its base under the same `adaptive` suite (BPDA, EOT, attacks aimed at the "
                 "defense, transfer from the base), same examples. The gain is the paired per-example difference with "
                 "its 95% interval and exact McNemar p-value (older rows: Newcombe's unpaired interval, said so on "
                 "hover); an interval that contains 0 reads 'no significant gain'.", t, headline="robust %",
                  protocol=(f"Ranked: suite `adaptive` (attacks aimed at the defense) at Linf 8/255, n = {n_rank} "
                            "test images." if n_rank else "No `adaptive` row yet: nothing is ranked."))
    if cands:  # no defended model at all: no table of them
        board.extra.append(("At the field's full budget (`adaptive_full`)",
                            "The same attacks at the budgets the field publishes with: AutoAttack-rand at 100 iterations with EOT over 20 draws, BPDA+EOT-20 and "
                            "adaptive attack I at 50 steps, transfer of PGD-50 from the base; an example counts as robust only "
                            "if all 8 draws of the defense classify its adversarial example correctly. Not ranked: `adaptive` "
                            "above ranks, this shows whether the larger budget changes the picture.",
                            full_budget_table(every, list(cands), pages)))
    if apart:
        board.extra.append(("Not ranked: another suite or another n", "A defended model measured only with another "
                            "suite (not aimed at the defense, so its number over-reports) or on other examples.",
                            apart_table("defenses-apart", apart, "adaptive", n_rank, cards, pages, rows)))
    return board
