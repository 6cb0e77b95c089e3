"""The page's tables built from rows: results, suite ``paper`` by eps, CLEVER, corruptions, references, protocol."""
from __future__ import annotations

import html

from symbench.leaderboard.rows import _is_attack, _is_clever, _variant, failing_checks, fgsm_alone
from symbench.leaderboard.tables import Cell, Col, Table, num, pct


def _err_cell(r: dict) -> Cell:
    err = ((r.get("equivariance") or {}).get("clean") or {}).get("rot90")
    return num(err, "{:.2g}")


def results_table(rows: list[dict]) -> Table:
    t = Table("results", [Col("model"), Col("group"), Col("suite"), Col("threat"), Col("eps", True),
                          Col("clean %", True), Col("robust %", True, "per-example worst case over every attack"),
                          Col("FGSM alone %", True), Col("per attack (cumulative %)"),
                          Col("orbit+attack %", True, "the suite's orbit column: rotations/flips/zooms, then PGD"),
                          Col("orbit alone %", True, "correct on every rotated/flipped/zoomed copy, no perturbation"),
                          Col("rot90 logit err", True, "measured ||f(rot x) - f(x)|| / ||f(x)|| on clean inputs"),
                          Col("n", True), Col("verdict"), Col("failing checks"), Col("device")],
              default_sort=(6, "desc"))
    for r in rows:
        fails = failing_checks(r)
        all_checks = "; ".join(f"{k}: {c.get('status')} ({c.get('detail', '')})"
                               for k, c in sorted((r.get("checks") or {}).items()))
        verdict = r.get("verdict", "unchecked")
        cls = {"suspect": "suspect", "unchecked": "unchecked"}.get(verdict, "")
        fail_text = "; ".join(f"{k} ({d})" for k, d in fails) if fails else "–"
        fail_html = ("<ul>" + "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(d)}</li>" for k, d in fails)
                     + "</ul>") if fails else "–"
        orbit = (r.get("orbit") or {}).get("robust_acc")
        per = ", ".join(f"{a['label']} {100 * a['acc_after']:.1f}" for a in r.get("attacks") or [])
        t.add([Cell(r["model"]), Cell(r.get("group") or "–"), Cell(r.get("suite_id") or r["suite"]),
               Cell(r["threat"]), Cell(r.get("eps_display") or f"{r['eps']:g}", r["eps"]),
               pct(r["clean_acc"]), pct(r["robust_acc"]), pct(fgsm_alone(r)), Cell(per), pct(orbit),
               pct((r.get("orbit") or {}).get("clean_acc")), _err_cell(r), Cell(str(r["n"]), r["n"]),
               Cell(verdict, verdict, all_checks or "no checks ran",
                    f'<span class="badge {html.escape(verdict)}">{"⚠ " if verdict == "suspect" else ""}'
                    f"{html.escape(verdict)}</span>"),
               Cell(fail_text, html=fail_html), Cell(r.get("device", ""))], cls)
    return t


def paper_pivot_table(rows: list[dict]) -> Table:
    """Suite `paper` as the seed's figures read: one line per model, one column per eps."""
    paper = [r for r in rows if r["suite"] == "paper" and r["threat"] == "linf" and _is_attack(r)]
    eps = sorted({round(float(r["eps"]), 9) for r in paper})
    near = min(range(len(eps)), key=lambda i: abs(eps[i] - 8 / 255)) if eps else 0
    t = Table("paper", [Col("model"), Col("group"), Col("clean %", True)]
              + [Col(f"eps {e:g}", True, "worst case % over the suite's attacks (FGSM alone % in brackets)") for e in eps]
              + [Col("n", True), Col("verdict")], default_sort=(3 + near, "desc"))
    for model in sorted({r["model"] for r in paper}):
        rs = {round(float(r["eps"]), 9): r for r in paper if r["model"] == model}
        cells = []
        for e in eps:
            r = rs.get(e)
            if r is None:
                cells.append(Cell("–", float("nan")))
                continue
            f = fgsm_alone(r)
            cells.append(Cell(f"{100 * r['robust_acc']:.1f}" + (f" ({100 * f:.1f})" if f is not None else ""),
                              round(100 * r["robust_acc"], 4)))
        verdicts = {r.get("verdict", "unchecked") for r in rs.values()}
        verdict = next((v for v in ("suspect", "unchecked", "trusted") if v in verdicts), "unchecked")
        any_row = next(iter(rs.values()))
        t.add([Cell(model), Cell(any_row.get("group") or "–"), pct(any_row["clean_acc"])] + cells
              + [Cell("/".join(sorted({str(r["n"]) for r in rs.values()})), any_row["n"]), Cell(verdict)],
              "suspect" if verdict == "suspect" else "")
    return t


def seed_corrupted_means(claims: dict) -> dict[tuple[str, float], float]:
    """(model, eps) → the seed's Table 1 mean accuracy in percent (``corrupted_adv_claims`` in seed_claims.json)."""
    out = {}
    for m in (claims.get("corrupted_adv_claims") or {}).get("means", []):
        for eps, acc in zip(m["eps"], m["acc"]):
            out[(m["model"], round(float(eps), 6))] = acc
    return out


def corrupted_adv_table(rows: list[dict], seed_means: dict[tuple[str, float], float] | None = None) -> Table:
    seed_means = seed_means or {}
    t = Table("corrupted_adv", [Col("model"), Col("suite"), Col("variant"), Col("eps", True),
                                Col("corrupted clean %", True), Col("FGSM alone %", True), Col("robust %", True),
                                Col("seed Table 1 %", True, "the seed's mean over corruptions; its attack, steps and "
                                    "severity are not stated (seed_claims.json)"),
                                Col("n", True), Col("verdict")], default_sort=(6, "desc"))
    for r in rows:
        if not _variant(r).startswith("mean/"):
            continue  # per-corruption rows stay in rows.jsonl; the page shows the means over corruptions
        seed = seed_means.get((r["model"], round(float(r["eps"]), 6)))
        t.add([Cell(r["model"]), Cell(r["suite_id"]), Cell(_variant(r)), Cell(r.get("eps_display") or f"{r['eps']:g}", r["eps"]),
               pct(r["clean_acc"]), pct(fgsm_alone(r)), pct(r["robust_acc"]), pct(None if seed is None else seed / 100),
               Cell(str(r["n"]), r["n"]), Cell(r.get("verdict", "unchecked"))],
              "suspect" if r.get("verdict") == "suspect" else "")
    return t


def clever_table(rows: list[dict]) -> Table:
    t = Table("clever", [Col("model"), Col("norm"), Col("radius", True), Col("images scored", True),
                         Col("median", True), Col("q1", True), Col("q3", True), Col("min", True), Col("max", True),
                         Col("implementation")], default_sort=(4, "desc"))
    for r in rows:
        c = r["clever"]
        t.add([Cell(r["model"]), Cell(r["threat"]), num(r["eps"]), Cell(str(c.get("n_scored", 0)), c.get("n_scored", 0)),
               num(c.get("median")), num(c.get("q1")), num(c.get("q3")), num(c.get("min")), num(c.get("max")),
               Cell(str(c.get("implementation", "")))])
    return t


def corruption_summary(rows: list[dict]) -> tuple[list[str], dict[str, dict[str, float]], dict[str, float]]:
    """(corruption names, {model: {corruption: mean acc over severities}}, {model: clean acc})."""
    per: dict[str, dict[str, list[float]]] = {}
    means: dict[str, dict[str, float]] = {}
    clean = {}
    for r in rows:
        v = _variant(r) or ""
        if "/" not in v or r.get("robust_acc") is None:
            continue
        c, s = v.split("/", 1)
        clean[r["model"]] = r["clean_acc"]
        if c == "mean":
            means.setdefault(r["model"], {})[s] = r["robust_acc"]
        elif s == "mean":
            means.setdefault(r["model"], {})[c] = r["robust_acc"]
        else:
            per.setdefault(r["model"], {}).setdefault(c, []).append(r["robust_acc"])
    out: dict[str, dict[str, float]] = {}
    for m in dict.fromkeys(list(per) + list(means)):
        acc = {c: sum(v) / len(v) for c, v in per.get(m, {}).items()}
        acc.update({c: v for c, v in means.get(m, {}).items() if c not in ("all", "common15")})
        out[m] = acc
    names = sorted({c for acc in out.values() for c in acc})
    for m, mm in means.items():
        for k in ("all", "common15"):
            if k in mm:
                out[m][f"mean/{k}"] = mm[k]
    return names, out, clean


def corruption_table(rows: list[dict]) -> Table:
    names, acc, clean = corruption_summary(rows)
    extra = [k for k in ("mean/all", "mean/common15") if any(k in a for a in acc.values())]
    t = Table("corruptions", [Col("model"), Col("clean %", True)] + [Col(k, True) for k in extra]
              + [Col(n.replace("_", " "), True) for n in names], default_sort=(2, "desc") if extra else None)
    for m, a in acc.items():
        t.add([Cell(m), pct(clean.get(m))] + [pct(a.get(k)) for k in extra] + [pct(a.get(n)) for n in names])
    return t


def reference_picks(refs: list[dict]) -> list[tuple[str, dict]]:
    """RobustBench rows worth a line beside ours: per threat the best, the best without extra data, Standard."""
    picks = []
    for threat in ("linf", "l2", "corruptions"):
        rs = [r for r in refs if r["threat"] == threat and r.get("robust_acc") is not None]
        if not rs:
            continue
        best = max(rs, key=lambda r: r["robust_acc"])
        picks.append((f"best {threat}", best))
        own = [r for r in rs if not r.get("additional_data")]
        if own:
            b2 = max(own, key=lambda r: r["robust_acc"])
            if b2 is not best:
                picks.append((f"best {threat}, no extra data", b2))
        std = next((r for r in rs if r["model"].split("/")[-1].endswith("Standard")), None)
        if std:
            picks.append((f"{threat} Standard (no defense)", std))
    return picks


def _link(url: str | None, text: str | None) -> str | None:
    return f'<a href="{html.escape(url)}">{html.escape(text or url)}</a>' if url else None


def reference_table(refs: list[dict]) -> Table:
    t = Table("robustbench", [Col("role"), Col("model"), Col("threat"), Col("eps", True), Col("clean %", True),
                              Col("robust % (reported)", True), Col("architecture"), Col("paper")])
    for role, r in reference_picks(refs):
        t.add([Cell(role), Cell(r["model"]), Cell(r["threat"]), Cell(r.get("eps_display") or f"{r['eps']:g}", r["eps"]),
               pct(r["clean_acc"]), pct(r["robust_acc"]), Cell(r.get("architecture") or ""),
               Cell(r.get("paper") or "", html=_link(r.get("link"), r.get("paper")))], "reference")
    return t


def protocol(rows: list[dict]) -> list[dict]:
    """Per suite: what was run, on how much data, where, with which toolkits (all read from the rows)."""
    out = []
    for suite in dict.fromkeys(r["suite"] for r in rows):
        rs = [r for r in rows if r["suite"] == suite]
        eps = sorted({(r["threat"], r["eps"], r.get("eps_display") or f"{r['eps']:g}") for r in rs
                      if r["threat"] in ("linf", "l2")})
        toolkits = {}
        for r in rs:
            for k, v in (r.get("toolkits") or {}).items():
                toolkits.setdefault(k, set()).add(v)
        attacks = list(dict.fromkeys(a["label"] for r in rs for a in r.get("attacks") or []))
        out.append({
            "suite": suite, "suite_ids": sorted({r["suite_id"] for r in rs}),
            "models": len({r["model"] for r in rs}), "rows": len(rs),
            "n": sorted({r["n"] for r in rs}), "seeds": sorted({r["seed"] for r in rs}),
            "threats": ", ".join(f"{t} {d}" for t, _, d in eps) or ", ".join(sorted({r["threat"] for r in rs})),
            "attacks": ", ".join(attacks) or ("CLEVER (clever_u)" if any(_is_clever(r) for r in rs) else "none"),
            "devices": sorted({r.get("device", "?") for r in rs}),
            "data": sorted({r.get("data_source", "?") for r in rs})[:3],
            "toolkits": ", ".join(f"{k} {'/'.join(sorted(v))}" for k, v in sorted(toolkits.items()) if "absent" not in v),
            "commits": sorted({r.get("commit", "?") for r in rs}),
        })
    return out
