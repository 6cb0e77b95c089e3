"""What every board is made of: the ``Board``, which row stands for a model (``pick_rows``), rank bands
from 95% Wilson intervals, the one protocol a board ranks (``split_protocol``) and the rows listed apart, and
the cells every board shows (accuracy with its interval, verdict, model, architecture, params, venue/paper)."""
from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from symbench.bench.run.stats import accuracy_interval
from symbench.leaderboard.cards import model_params
from symbench.leaderboard.rows import _variant, failing_checks
from symbench.leaderboard.tables import Cell, Col, Table


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
    t = Table(tid, [Col("model"), Col("why not ranked", narrow=False), Col("suite", narrow=False),
                    Col("n", True, narrow=False),
                    *_about_cols(), Col("clean %", True, narrow=False), Col("robust %", True), Col("verdict")],
              default_sort=(11, "desc"))
    for m, r in sorted(apart.items(), key=lambda kv: -(headline_acc(kv[1])[0] or 0)):
        why = apart_reason(r, suite, n_rank)
        name = model_cell(m, pages)
        name.sub, name.sub_narrow_only = why, True  # a phone shows the reason under the name; wide screens its column
        t.add([name, Cell(why), Cell(r["suite"], title=f"{r['suite_id']}; cascade {_cascade(r)}"),
               n_cell(r), *_about_cells(m, r, cards, rows), acc_cell(r["clean_acc"], r["n"], bar=False),
               robust_cell(r, bar=False), verdict_cell(r)],
              cls="apart " + r.get("verdict", "unchecked"), attrs=_attrs(m, r, cards),
              record={"listed": "apart", "why": why, **_record(m, r, cards, rows)})
    return t
