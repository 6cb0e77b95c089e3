"""Boards, one per question a reader brings: each a ranked table with one row per model.

Every board is computed from rows only. Which row stands for a model: among its rows of the
board's threat and eps, the strongest suite it has (``standard`` before ``adaptive`` before
``quick``), and within a suite the row with the largest n (``pick_rows``: a smaller-n rerun never
replaces a larger-n row). Ranks are bands: a model's best rank is one plus the number of models
whose 95% Wilson interval lies entirely above its own, its worst rank the number of models not
entirely below it; models whose intervals overlap therefore share part of a band (statistically
tied) instead of being ordered by noise.
"""
from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from symbench.bench.run.stats import accuracy_interval
from symbench.leaderboard.cards import model_params
from symbench.leaderboard.rows import (_is_attack, _is_clever, _is_corrupted_adv, _is_corruption, _variant, curve_basis,
                                       curve_rows, failing_checks, fgsm_alone, seed_pgd)
from symbench.leaderboard.sections import corruption_summary, seed_corrupted_means
from symbench.leaderboard.tables import Cell, Col, Table, num, pct

EPS_TOL = 1e-6
LINF_EPS, L2_EPS = 8 / 255, 0.5
# strongest first: AutoAttack standard, the adaptive suite (defenses), then the cheap quick suite
SUITE_STRENGTH = ("standard", "adaptive", "quick")


@dataclass
class Board:
    """One tab of the page: a question, its ranked table, how to read it, and its plots."""

    id: str
    title: str
    question: str
    note: str
    table: Table
    plots: list[Path] = field(default_factory=list)
    extra: list[tuple[str, str, Table]] = field(default_factory=list)  # (title, note, table) below the board
    headline: str = ""     # header of the column the board is ranked by
    protocol: str = ""     # the one protocol the ranking compares (suite, threat, eps, n); the rest is listed apart


def pick_rows(rows: list[dict]) -> tuple[list[dict], int]:
    """One row per (model, suite, threat, eps, variant): the largest n, and among equal n the last appended.

    rows.jsonl keeps every measurement; a rerun at the same n replaces the older number on the page,
    but a row computed from fewer examples never stands in for one computed from more.
    Returns (rows in first-appearance order, number of rows not shown).
    """
    kept: dict[tuple, dict] = {}
    for r in rows:
        k = (r["model"], r["suite"], r["threat"], round(float(r["eps"]), 9), _variant(r))
        if k not in kept or int(r.get("n") or 0) >= int(kept[k].get("n") or 0):
            kept[k] = r
    return list(kept.values()), len(rows) - len(kept)


def interval(acc: float | None, n: int | None) -> tuple[float, float] | None:
    """95% Wilson interval of an accuracy over n examples."""
    return accuracy_interval(acc, int(n or 0))


def rank_bands(values: list[tuple[float, float, float]]) -> list[tuple[int, int]]:
    """(best, worst) rank of each (value, low, high): ties wherever 95% intervals overlap."""
    out = []
    for _, lo, hi in values:
        best = 1 + sum(1 for _, lo2, _ in values if lo2 > hi)
        worst = len(values) - sum(1 for _, _, hi2 in values if hi2 < lo)
        out.append((best, worst))
    return out


def diff_interval(p1: float, n1: int, p2: float, n2: int) -> tuple[float, float]:
    """95% interval of p1 - p2 from the two Wilson intervals (Newcombe's hybrid score method, unpaired)."""
    l1, u1 = interval(p1, n1)
    l2, u2 = interval(p2, n2)
    d = p1 - p2
    return (d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


@functools.lru_cache(maxsize=None)
def suite_n(suite: str) -> int | None:
    """The n a shipped suite asks for (None for a suite symbench does not ship)."""
    from symbench.bench.suites import load_suite

    try:
        return load_suite(suite).n
    except Exception:  # an unknown or third-party suite name: nothing to compare with
        return None


def n_cell(r: dict) -> Cell:
    """n, marked when it is below what the suite asks for (a CPU-sized run of a larger protocol)."""
    want = suite_n(r["suite"])
    if want and r["n"] < want:
        return Cell(str(r["n"]), r["n"], title=f"suite {r['suite']} asks for n={want}; this row has n={r['n']} "
                    "(no smaller-n row ever replaces a larger-n one)", sub=f"of {want}")
    return Cell(str(r["n"]), r["n"])


def _close(a, b) -> bool:
    return abs(float(a) - float(b)) < EPS_TOL


def _is_at(model: str, cards: dict) -> bool:
    return bool((cards.get(model) or {}).get("adversarially_trained"))


def _family(r: dict, cards: dict) -> str:
    return (cards.get(r["model"]) or {}).get("family") or r.get("family") or ""


def _group(r: dict, cards: dict) -> str:
    return (cards.get(r["model"]) or {}).get("group") or r.get("group") or ""


def acc_cell(acc: float | None, n: int | None, bar: bool = True) -> Cell:
    """Accuracy in percent with its 95% Wilson interval underneath (and as a bar)."""
    if acc is None:
        return Cell("–", float("nan"))
    lo, hi = interval(acc, n) or (acc, acc)
    return Cell(f"{100 * acc:.1f}", round(100 * acc, 4), title=f"95% Wilson interval {100 * lo:.1f}–{100 * hi:.1f} (n={n})",
                ci=(acc, lo, hi) if bar else None, sub=f"[{100 * lo:.1f}–{100 * hi:.1f}]")


def headline_acc(r: dict) -> tuple[float | None, bool]:
    """(the robust accuracy a board shows and ranks a row by, whether it is the escalated one).

    A suspect row with an escalated result (bench/checks/escalate.py) is headlined by that number: its own
    suite's number is inflated by hidden or noisy gradients, the escalated one is what survives remedies that
    need no gradients of the model (an upper bound too, but a believable one)."""
    esc = r.get("escalated_robust_acc")
    if esc is not None and r.get("verdict") == "suspect":
        return esc, True
    return r.get("robust_acc"), False


def robust_cell(r: dict, bar: bool = True) -> Cell:
    """The headline robust accuracy (``headline_acc``): an escalated one reads "≤ 1.0 escalated", with the suite's
    own number beside it."""
    acc, escalated = headline_acc(r)
    c = acc_cell(acc, r["n"], bar)
    if escalated:
        c.text = f"≤ {c.text} escalated"
        c.sub = f"suite's own {100 * r['robust_acc']:.1f}; {c.sub}"
        c.title = (f"flagged for hidden or noisy gradients; after escalation ({', '.join(escalation_effects(r))}) "
                   f"{100 * acc:.1f}%, the suite's own number {100 * r['robust_acc']:.1f}%; {c.title}")
    return c


def escalation_effects(r: dict) -> list[str]:
    """Each escalation remedy's effect on a row, in order ("transfer-baseline_cnn4: broke 40 of 41 → 1.0%")."""
    esc = r.get("escalation") or {}
    return [f"{e['remedy']}: broke {e['broke']} of {e['attacked']} → {100 * e['robust_acc_after']:.1f}%"
            for e in esc.get("effects") or []]


def verdict_cell(r: dict) -> Cell:
    verdict = r.get("verdict", "unchecked")
    checks = sorted((r.get("checks") or {}).items(), key=lambda kv: (kv[1].get("status") != "fail", kv[0]))
    fails = failing_checks(r)
    # the badge says only the verdict (it must fit a phone); the failing checks are the line underneath
    return Cell(verdict, verdict, sub=", ".join(k for k, _ in fails),
                title="; ".join(f"{k}: {d}" for k, d in fails) or ("every check passed or was skipped" if checks else
                                                                    "no checks ran"),
                badge=verdict, details=tuple((k, c.get("status", ""), c.get("detail", "")) for k, c in checks))


def rank_cell(band: tuple[int, int], tied: list[str]) -> Cell:
    best, worst = band
    text = str(best) if best == worst else f"{best}–{worst}"
    title = ("statistically tied (95% intervals overlap) with " + ", ".join(tied)) if tied else "no overlap with any other model"
    return Cell(text, best + worst / 1000, title=title)


def model_file(model: str) -> str:
    """A model name as a file name (defended ``a+b`` names stay readable)."""
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", model)


def model_cell(model: str, pages: set[str]) -> Cell:
    return Cell(model, href=f"models/{model_file(model)}.html" if model in pages else None)


def _attrs(model: str, r: dict, cards: dict) -> dict:
    return {"model": model, "family": _family(r, cards), "group": _group(r, cards),
            "at": "yes" if _is_at(model, cards) else "no", "verdict": r.get("verdict", "unchecked")}


def _cascade(r: dict) -> str:
    return " → ".join(f"{a['label']} {100 * a['acc_after']:.1f}" for a in r.get("attacks") or [])


def ranking_n(ns: list[int]) -> int | None:
    """The n a board ranks at: the largest n at least two models share (like with like), else the largest."""
    counts = {n: ns.count(n) for n in ns}
    shared = [n for n, k in counts.items() if k >= 2]
    return max(shared) if shared else max(ns, default=None)


def split_protocol(cands: dict[str, dict], suite: str, n_of=lambda r: r["n"]) -> tuple[dict, dict, int | None]:
    """(ranked, apart, n): the models whose row is of ``suite`` at the ranking n, and every other one.

    A board ranks one protocol; a row of another suite, or of fewer (or more) examples, is listed apart,
    never ranked among them."""
    n = ranking_n([n_of(r) for r in cands.values() if r["suite"] == suite])
    ranked = {m: r for m, r in cands.items() if r["suite"] == suite and n_of(r) == n}
    return ranked, {m: r for m, r in cands.items() if m not in ranked}, n


def apart_reason(r: dict, suite: str, n: int | None, n_of=lambda r: r["n"]) -> str:
    if r["suite"] != suite:
        return f"suite {r['suite']}, not {suite}"
    return f"n={n_of(r)}, not {n}" if n is not None else f"n={n_of(r)}"


def paper_cell(model: str, cards: dict, r: dict | None = None) -> Cell:
    """Where a model comes from: RobustBench's venue and paper, a card's paper (the seed, or this benchmark)."""
    if r is not None and r.get("kind") == "reported":
        return Cell(r.get("venue") or "–", title=r.get("paper") or "", href=r.get("link"))
    c = cards.get(model) or {}
    paper = c.get("paper") or ("seed 1" if c.get("source") == "symbench" else "")
    return Cell(paper or "–", title=c.get("description") or "")


def architecture(model: str, cards: dict, r: dict | None = None) -> str:
    if r is not None and r.get("kind") == "reported":
        return r.get("architecture") or "–"
    c = cards.get(model) or {}
    fam = (c.get("family") or (r or {}).get("family") or "").removesuffix("_at")
    depth = c.get("depth")
    return f"{fam}, {depth} layers" if fam and depth else fam or "–"


def extra_data_cell(model: str, cards: dict, r: dict | None = None) -> Cell:
    """Training data beyond CIFAR-10's 50k images: RobustBench's flag; symbench's own models use none."""
    if r is not None and r.get("kind") == "reported":
        extra = r.get("additional_data")
    else:
        extra = False if (cards.get(model) or {}).get("source") == "symbench" else None
    return Cell({True: "yes", False: "no"}.get(extra, "–"), title="trained on data beyond CIFAR-10's training set"
                if extra else "")


def params_cell(params: int | None) -> Cell:
    return Cell(f"{params:,}" if params else "–", params or float("nan"))


@functools.lru_cache(maxsize=1)
def reported_params() -> dict[str, int]:
    """RobustBench models' parameter counts (leaderboard/robustbench_params.json, counted from its model zoo)."""
    import json

    from symbench.paths import package_file

    try:
        return json.loads(package_file("symbench.leaderboard", "robustbench_params.json").read_text())["params"]
    except (OSError, ValueError, KeyError):
        return {}


def reported_params_of(r: dict) -> int | None:
    rb = r.get("robustbench") or {}
    return r.get("params") or reported_params().get(f"{rb.get('threat_model')}/{rb.get('name')}")


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
                            "reports them (model_info); not measured or checked here, so not ranked. 'RobustBench: "
                            "all' in the filters shows every one.",
                            reported_table(f"{board_id}-reported", refs, max((v[0] for v in vals), default=None))))
    return board


def _about_cols() -> list[Col]:
    """What every board row says about its model (phones hide them; the downloads keep them)."""
    return [Col("architecture", narrow=False), Col("group", narrow=False),
            Col("AT", help="adversarially trained (its card's recipe)", narrow=False),
            Col("params", True, "parameter count", narrow=False),
            Col("extra data", help="trained on data beyond CIFAR-10's 50k training images", narrow=False),
            Col("venue / paper", help="RobustBench: the paper's venue; symbench's models: the seed paper or this "
                "benchmark", narrow=False)]


def _about_cells(m: str, r: dict, cards: dict, rows: list[dict]) -> list[Cell]:
    return [Cell(architecture(m, cards, r)), Cell(_group(r, cards)), Cell("AT" if _is_at(m, cards) else "–"),
            params_cell(model_params(m, cards, rows)), extra_data_cell(m, cards, r), paper_cell(m, cards, r)]


def _record(m: str, r: dict, cards: dict, rows: list[dict]) -> dict:
    return {"model": m, "kind": "measured", "architecture": architecture(m, cards, r), "family": _family(r, cards),
            "group": _group(r, cards), "adversarially_trained": _is_at(m, cards),
            "params": model_params(m, cards, rows), "extra_data": extra_data_cell(m, cards, r).text,
            "paper": paper_cell(m, cards, r).text, "threat": r["threat"], "eps": r["eps"],
            "clean_acc": r["clean_acc"], "robust_acc": r["robust_acc"],
            "escalated_robust_acc": r.get("escalated_robust_acc"), "n": r["n"], "suite": r["suite"],
            "suite_id": r["suite_id"], "verdict": r.get("verdict"), "failing_checks": [k for k, _ in failing_checks(r)],
            "attacks": r.get("attacks"), "device": r.get("device"), "created": r.get("created")}


def apart_table(tid: str, apart: dict[str, dict], suite: str, n_rank: int | None, cards: dict, pages: set[str],
                rows: list[dict]) -> Table:
    """The rows a board lists but does not rank (another suite, another n), strongest first."""
    t = Table(tid, [Col("model"), Col("why not ranked", narrow=False), Col("suite", narrow=False), Col("n", True, narrow=False),
                    *_about_cols(), Col("clean %", True, narrow=False), Col("robust %", True), Col("verdict")],
              default_sort=(11, "desc"))
    for m, r in sorted(apart.items(), key=lambda kv: -(headline_acc(kv[1])[0] or 0)):
        why = apart_reason(r, suite, n_rank)
        name = model_cell(m, pages)
        name.sub = why  # a phone shows the reason under the name; the column is for wide screens and downloads
        t.add([name, Cell(why), Cell(r["suite"], title=f"{r['suite_id']}; cascade {_cascade(r)}"),
               n_cell(r), *_about_cells(m, r, cards, rows), acc_cell(r["clean_acc"], r["n"], bar=False),
               robust_cell(r, bar=False), verdict_cell(r)],
              cls="apart " + r.get("verdict", "unchecked"), attrs=_attrs(m, r, cards),
              record={"listed": "apart", "why": why, **_record(m, r, cards, rows)})
    return t


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
                      "suite": "robustbench (AutoAttack, reported)", "verdict": "reported"})
    return t


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
    others = sorted(set(by) - set(ranked), key=lambda m: -(by[m].get(head) or {}).get("robust_acc", -1))
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


def defense_gain(r: dict) -> tuple[float, float, float, float | None, bool]:
    """(gain, low, high, McNemar p, paired) of a defended row over its base: the row's paired ``defense_gain``
    (same examples, bench/checks/gain.py) when it has one, else Newcombe's unpaired interval without a p-value."""
    g = r.get("defense_gain")
    if g:
        return g["diff"], g["low"], g["high"], g["p_value"], True
    gain = r["robust_acc"] - r["base_robust_acc"]
    return (gain, *diff_interval(r["robust_acc"], r["n"], r["base_robust_acc"], r["n"]), None, False)


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
        clean = acc_cell(r["clean_acc"], r["n"], bar=False)
        clean.sub = f"(base {100 * r['base_clean_acc']:.1f})" if r.get("base_clean_acc") is not None else ""
        t.add([rank_cell(band, tied), model_cell(m, pages), model_cell(r["base_model"], pages), clean,
               robust_cell(r), acc_cell(r["base_robust_acc"], r["n"], bar=False),
               Cell(f"{100 * gain:+.1f}", round(100 * gain, 4),
                    sub=f"[{100 * lo:+.1f} to {100 * hi:+.1f}]" + (f" p={p:.2g}" if p is not None else "")
                    + ("" if lo > 0 or hi < 0 else " no significant gain"),
                    title=("paired on the same examples, exact McNemar p-value" if paired else
                           "unpaired (Newcombe): this row predates the paired gain; rerun it for the paired test")
                    + ("; the interval contains 0: no significant gain" if lo <= 0 <= hi else "; the interval excludes 0")),
               verdict_cell(r), n_cell(r), Cell(r["suite"], title=f"{r['suite_id']}; {_cascade(r)}")],
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
    if apart:
        board.extra.append(("Not ranked: another suite or another n", "A defended model measured only with another "
                            "suite (not aimed at the defense, so its number over-reports) or on other examples.",
                            apart_table("defenses-apart", apart, "adaptive", n_rank, cards, pages, rows)))
    return board
