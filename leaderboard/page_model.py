"""What a model's page shows (``model_context``): its card, every row of it, and per attack row its cascade,
checks, equivariance errors and orbit column, plus its CLEVER, corruption and spatial tables.

Split out of ``page.py`` (issue 25: no module over 400 lines); ``page`` re-exports ``model_context``.
"""
from __future__ import annotations

import re
from pathlib import Path

from symbench.leaderboard.boards import acc_cell, escalation_effects, robust_cell, verdict_cell
from symbench.leaderboard.board_spatial import model_spatial
from symbench.leaderboard.cards import model_params
from symbench.leaderboard.rows import _is_attack, _is_clever, _is_corrupted_adv, _is_corruption, _variant, fgsm_alone
from symbench.leaderboard.tables import Cell, Col, Table, pct

SUITE_ORDER = ("standard", "adaptive", "quick", "paper", "corrupted_adv", "clever", "corruptions")


def _suite_rank(r: dict) -> tuple:
    s = r["suite"]
    return (SUITE_ORDER.index(s) if s in SUITE_ORDER else len(SUITE_ORDER), s, r["threat"], float(r["eps"]))


def _pct_text(acc, n) -> str:
    c = acc_cell(acc, n, bar=False)
    return f"{c.text}% {c.sub}" if acc is not None else "–"


def model_context(name: str, rows: list[dict], cards: dict, claims: dict, explain: dict, plot: Path | None) -> dict:
    """What a model's page shows: card facts, every row of it, per attack row its cascade, checks and errors."""
    mine = [r for r in rows if r["model"] == name]
    card = {"description": "", "adversarially_trained": False, "depth": None, "training": "", "train_time": "",
            "weights": "", "flags": "", "paper": "", "notes": "", "card_clean_acc": None, **(cards.get(name) or {})}
    attack = sorted([r for r in mine if _is_attack(r)], key=_suite_rank)
    t = Table(f"rows-{name}", [Col("suite"), Col("threat"), Col("eps", True), Col("clean %", True),
                               Col("robust %", True), Col("FGSM alone %", True, narrow=False), Col("n", True),
                               Col("verdict"), Col("device", narrow=False)])
    details = []
    for i, r in enumerate(attack):
        anchor = f"row-{r['suite']}-{r['threat']}-{i}"
        t.add([Cell(r["suite"], href=f"#{anchor}", title=r["suite_id"]), Cell(r["threat"]),
               Cell(r.get("eps_display") or f"{r['eps']:g}", r["eps"]), acc_cell(r["clean_acc"], r["n"], bar=False),
               robust_cell(r), pct(fgsm_alone(r)), Cell(str(r["n"]), r["n"]), verdict_cell(r),
               Cell(r.get("device", ""))], cls=r.get("verdict", ""), attrs={"model": name},
              record={"suite": r["suite"], "threat": r["threat"], "eps": r["eps"]})
        eq = r.get("equivariance") or {}
        eq_keys = list(dict.fromkeys(k for v in eq.values() for k in (v or {})))
        orbit = r.get("orbit")
        details.append({
            "anchor": anchor, "title": f"{r['suite']} · {r['threat']} {r.get('eps_display') or r['eps']}",
            "verdict": r.get("verdict", "unchecked"), "suite_id": r["suite_id"], "n": r["n"], "seed": r.get("seed"),
            "ckpt": (r.get("ckpt_sha256") or "–")[:12],
            "device": r.get("device", ""), "data_source": r.get("data_source", ""), "commit": r.get("commit", ""),
            "created": r.get("created", ""), "clean": _pct_text(r["clean_acc"], r["n"]),
            "robust": _pct_text(r["robust_acc"], r["n"]),
            "base": (f"{r['base_model']}: clean {_pct_text(r.get('base_clean_acc'), r['n'])}, robust "
                     f"{_pct_text(r['base_robust_acc'], r['n'])}") if r.get("base_model") else "",
            "cascade": [(a["label"], f"{100 * a['acc_after']:.1f}%") for a in r.get("attacks") or []],
            "escalation": ({"robust": _pct_text(r["escalated_robust_acc"], r["n"]),
                            "surrogate": (r.get("escalation") or {}).get("surrogate") or "none",
                            "effects": escalation_effects(r)} if r.get("escalated_robust_acc") is not None else
                           {"skipped": r["escalation_skipped"]} if r.get("escalation_skipped") else None),
            "checks": [{"name": k, "status": c.get("status", ""), "detail": c.get("detail", ""),
                        "fails_when": (explain.get(k) or {}).get("fails_when", ""),
                        "why": (explain.get(k) or {}).get("why", "")}
                       for k, c in sorted((r.get("checks") or {}).items())],
            "equivariance": [(which, {k: f"{v[k]:.3f}" if v.get(k) is not None else "–" for k in eq_keys})
                             for which, v in eq.items() if v],
            "eq_keys": eq_keys,
            "orbit": {"summary": (f"correct on every one of {len(orbit.get('transforms') or [])} copies "
                                  f"({', '.join(orbit.get('transforms') or [])}): {100 * orbit['clean_acc']:.1f}% "
                                  f"without and {100 * orbit['robust_acc']:.1f}% with {orbit.get('attack')} "
                                  f"{orbit.get('params') or ''} on each copy (n={orbit['n']}); accuracy per copy "
                                  "under the attack:"),
                      "per": [(k, f"{100 * v:.1f}") for k, v in (orbit.get("per_transform") or {}).items()]}
            if orbit else None,
        })
    extra = []
    clever = [r for r in mine if _is_clever(r)]
    if clever:
        ct = Table(f"clever-{name}", [Col("norm"), Col("radius", True), Col("median", True), Col("q1", True),
                                      Col("q3", True), Col("min", True), Col("max", True), Col("images scored", True)])
        for r in clever:
            c = r["clever"]
            ct.add([Cell(r["threat"])] + [Cell(f"{v:.4g}" if v is not None else "–", v) for v in
                                          (r["eps"], c.get("median"), c.get("q1"), c.get("q3"), c.get("min"),
                                           c.get("max"))]
                   + [Cell(str(c.get("n_scored", 0)), c.get("n_scored", 0))])
        extra.append(("CLEVER", "An estimate, not a certificate: a sampled extreme-value estimate of a lower bound "
                      "on the smallest adversarial perturbation, capped at the sampling radius.", ct))
    corr = [r for r in mine if _is_corruption(r)]
    if corr:
        extra.append(("CIFAR-10-C" + (" (generated)" if all(str(r.get("data_source", "")).startswith("generated:")
                                                            for r in corr) else ""),
                      "Accuracy % per corruption and severity (no attack); the means are over severities.",
                      _grid(f"c10c-{name}", corr, lambda v: v.split("/", 1), "severity")))
    cadv = [r for r in mine if _is_corrupted_adv(r)]
    if cadv:
        extra.append(("Corrupted + attacked",
                      "Robust accuracy % on corrupted images (severity in the variant) per eps.",
                      _grid(f"cadv-{name}", cadv, lambda v: (v, None), "eps")))
    extra += model_spatial(name, rows, set())  # no links: the page is its own model's
    sha = card.get("sha256") or next((r.get("ckpt_sha256") for r in reversed(mine) if r.get("ckpt_sha256")), "") or ""
    fam = card.get("family") or next((r.get("family") for r in mine if r.get("family")), "")
    grp = card.get("group") or next((r.get("group") for r in mine if r.get("group")), "")
    return {"name": name, "card": card, "family": fam, "group": grp, "params": model_params(name, cards, rows),
            "sha256": sha, "rows_table": t, "details": details, "extra": extra, "plot": plot.name if plot else None}


def _grid(tid: str, rows: list[dict], split, col_name: str) -> Table:
    """A line per corruption, a column per severity (or eps), from one model's rows."""
    cells: dict[str, dict[str, float]] = {}
    cols: list[str] = []
    for r in rows:
        line, col = split(_variant(r))
        if col is None:
            col = r.get("eps_display") or f"{r['eps']:g}"
        cells.setdefault(line, {})[col] = r["robust_acc"]
        if col not in cols:
            cols.append(col)
    cols = sorted(cols, key=lambda c: (c == "mean", float(c) if re.fullmatch(r"[\d.]+", c) else 0, c))
    t = Table(tid, [Col("corruption")] + [Col(f"{col_name} {c}" if c != "mean" else "mean", True) for c in cols])
    for line, vals in cells.items():
        t.add([Cell(line.replace("_", " "))] + [pct(vals.get(c)) for c in cols])
    return t
