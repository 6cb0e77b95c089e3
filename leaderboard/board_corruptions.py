"""The CIFAR-10-C boards (one per data kind: generated images never ranked with the official ones) and the
corrupted + attacked table of seed 1's Table 1."""
from __future__ import annotations

from pathlib import Path

from symbench.leaderboard.board_common import (Board, interval, rank_bands, _is_at, _group, acc_cell, verdict_cell,
                                               rank_cell, model_cell, _attrs)
from symbench.leaderboard.rows import _is_corrupted_adv, _is_corruption, _variant, curve_basis, fgsm_alone
from symbench.leaderboard.sections import corruption_summary, seed_corrupted_means
from symbench.leaderboard.tables import Cell, Col, Table, pct


def corruption_boards(rows: list[dict], cards: dict, pages: set[str], claims: dict, plots: list[Path]) -> list[Board]:
    """CIFAR-10-C: one board per data kind (generated images are never ranked with the official set)."""
    corr = [r for r in rows if _is_corruption(r)]
    kinds = {}
    for r in corr:
        kinds.setdefault("generated" if str(r.get("data_source", "")).startswith("generated:") else "official",
                         []).append(r)
    out = []
    for kind, rs in sorted(kinds.items()):
        names, acc, clean = corruption_summary(rs)
        means = {r["model"]: r for r in rs if _variant(r) == "mean/all"}
        t = Table(f"c10c-{kind}", [Col("rank", True, "rank band by the mean over corruptions (95% intervals from n)"),
                                   Col("model"), Col("group", narrow=False), Col("AT"), Col("clean %", True),
                                   Col("mean %", True, "mean over the 19 corruptions and 5 severities"),
                                   Col("common 15 %", True, "mean over CIFAR-10-C's 15 common corruptions",
                                       narrow=False),
                                   Col("worst corruption", help="the corruption with the lowest mean accuracy",
                                       narrow=False),
                                   Col("n", True, "test images (each seen under every corruption and severity)"),
                                   Col("data", narrow=False)],
                  default_sort=(5, "desc"))
        models = sorted(acc, key=lambda m: -acc[m].get("mean/all", -1))
        vals = []
        for m in models:
            a = acc[m].get("mean/all")
            n = (means.get(m) or {}).get("n") or 0
            lo, hi = interval(a, n) if a is not None and n else (0.0, 0.0)
            vals.append((a if a is not None else -1, lo, hi))
        for m, v, band in zip(models, vals, rank_bands(vals)):
            r = means.get(m) or next(x for x in rs if x["model"] == m)
            tied = [x for x, v2 in zip(models, vals) if x != m and v2[1] <= v[2] and v2[2] >= v[1]]
            per = {c: a for c, a in acc[m].items() if c in names}
            worst = min(per, key=per.get) if per else None
            t.add([rank_cell(band, tied), model_cell(m, pages), Cell(_group(r, cards)),
                   Cell("AT" if _is_at(m, cards) else "–"), acc_cell(clean.get(m), r["n"], bar=False),
                   acc_cell(acc[m].get("mean/all"), r["n"]), pct(acc[m].get("mean/common15")),
                   Cell(f"{worst.replace('_', ' ')} {100 * per[worst]:.1f}" if worst else "–",
                        per[worst] if worst else float("nan")),
                   Cell(str(r["n"]), r["n"]), Cell(kind, title=str(r.get("data_source")))],
                  cls="ranked", attrs=_attrs(m, r, cards),
                  record={"rank_best": band[0], "rank_worst": band[1], "model": m, "clean_acc": clean.get(m),
                          "mean_acc": acc[m].get("mean/all"), "common15_acc": acc[m].get("mean/common15"),
                          "n": r["n"], "data": kind, "data_source": r.get("data_source"),
                          **{f"acc[{c}]": a for c, a in sorted(per.items())}})
        note = ("Accuracy on corrupted test images (19 corruptions x 5 severities), no attack. "
                + ("These images are GENERATED here with imagecorruptions at CIFAR-10-C's parameters, not the "
                   "official CIFAR-10-C files: compare them with each other, not with published CIFAR-10-C numbers."
                   if kind == "generated" else "These are the official CIFAR-10-C images."))
        ns = sorted({(means.get(m) or {}).get("n") for m in models} - {None})
        b = Board(f"c10c-{kind}", f"CIFAR-10-C ({kind})", "How much accuracy survives common corruptions?", note, t,
                  plots if kind == "generated" or len(kinds) == 1 else [], headline="mean %",
                  protocol=f"Ranked: suite `corruptions` ({kind} images), the mean over 19 corruptions x 5 severities, "
                           f"n = {'/'.join(map(str, ns)) or '?'} test images (95% intervals from each row's n).")
        out.append(b)
    adv = corrupted_adv_table([r for r in rows if _is_corrupted_adv(r)], seed_corrupted_means(claims), pages)
    if adv.rows and out:
        out[0].extra.append(("Corrupted + attacked (seed Table 1 protocol, mean over corruptions)",
                             "The seed column is Table 1's Mean row (seed_claims.json). The seed states neither the "
                             "attack (FGSM or PGD, how many steps) nor the corruption severity, so compare it with both "
                             "measured columns.", adv))
    return out


def _bound_cell(r: dict) -> Cell:
    """A corrupted_adv robust accuracy, marked "≥" (the seed protocol's upper bound, as the eps curve does) unless
    nothing survived or its APGD spot check passed or only warned on every corruption (``curve_basis``)."""
    c = acc_cell(r["robust_acc"], r["n"], bar=False)
    if curve_basis(r) == "seed":
        c.text = "≥ " + c.text
        c.title = ("an upper bound: FGSM + PGD only, " + ("no APGD spot check ran on it" if not r.get("checks") else
                   "APGD broke more than 2 points more on some corruption") + "; " + c.title)
    return c


def corrupted_adv_table(rows: list[dict], seed_means: dict[tuple[str, float], float] | None = None,
                        pages: set[str] = frozenset()) -> Table:
    seed_means = seed_means or {}
    t = Table("corrupted_adv", [Col("model"), Col("variant", narrow=False), Col("eps", True),
                                Col("corrupted clean %", True), Col("FGSM alone %", True, narrow=False),
                                Col("robust %", True),
                                Col("seed Table 1 %", True, "the seed's mean over corruptions; its attack, steps and "
                                    "severity are not stated (seed_claims.json)"),
                                Col("n", True), Col("verdict", narrow=False)], default_sort=(5, "desc"))
    for r in rows:
        if not _variant(r).startswith("mean/"):
            continue  # per-corruption rows stay in rows.jsonl; the page shows the means over corruptions
        seed = seed_means.get((r["model"], round(float(r["eps"]), 6)))
        t.add([model_cell(r["model"], pages), Cell(_variant(r)), Cell(r.get("eps_display") or f"{r['eps']:g}", r["eps"]),
               pct(r["clean_acc"]), pct(fgsm_alone(r)), _bound_cell(r),
               pct(None if seed is None else seed / 100), Cell(str(r["n"]), r["n"]), verdict_cell(r)],
              attrs={"model": r["model"], "verdict": r.get("verdict", "unchecked")},
              record={"model": r["model"], "variant": _variant(r), "eps": r["eps"], "clean_acc": r["clean_acc"],
                      "fgsm_acc": fgsm_alone(r), "robust_acc": r["robust_acc"],
                      "seed_table1_acc": None if seed is None else seed / 100, "n": r["n"],
                      "upper_bound": curve_basis(r) == "seed", "verdict": r.get("verdict", "unchecked")})
    return t
