"""What the page says beside the boards, computed from rows: protocol per suite, validity summary,
check explanations (docs/checks.md), corruption means and the RobustBench rows worth showing."""
from __future__ import annotations

import re
from pathlib import Path

from symbench.leaderboard.rows import _is_clever, _variant, failing_checks
from symbench.paths import checkout_root

CHECKS_DOC = "docs/checks.md"


def unchecked_reason(r: dict) -> str:
    """Why a row carries no checks, exactly: by design (nothing to attack-check), or not (yet) checked."""
    from symbench.leaderboard.rows import _is_corrupted_adv

    if _is_clever(r):
        return "CLEVER scores, an estimate and not an attack: by design"
    if r.get("threat") == "corruptions":
        return "accuracy on corrupted images, no attack to check: by design"
    if _is_corrupted_adv(r):
        return ("FGSM + PGD on corrupted images, run before their checks existed (bench/checks/corrupted_adv.py): "
                "shown as the seed protocol's upper bounds (≥) until rerun")
    if r.get("robust_acc") is not None:
        return "an attack row run without checks (--skip-checks): rerun it to check it"
    return "a suite kind without checks"


def validity_summary(rows: list[dict]) -> dict:
    """Verdict counts over the rows that carry checks, and which rows carry none and why (``unchecked_reason``)."""
    checked = [r for r in rows if r.get("checks")]
    unchecked = [r for r in rows if not r.get("checks")]
    suites = sorted({r["suite"] for r in unchecked})
    why: dict[str, list[dict]] = {}
    for r in unchecked:
        why.setdefault(unchecked_reason(r), []).append(r)
    parts = [f"{len(rs)} {'/'.join(sorted({r['suite'] for r in rs}))} row(s): {reason}" for reason, rs in why.items()]
    return {"checked": len(checked), "trusted": sum(r.get("verdict") == "trusted" for r in checked),
            "suspect": [r for r in checked if r.get("verdict") == "suspect"],
            "without_checks": len(unchecked), "without_checks_suites": suites,
            "without_checks_why": {reason: len(rs) for reason, rs in why.items()},
            "sentence": (f"{sum(r.get('verdict') == 'trusted' for r in checked)} of {len(checked)} checked rows trusted"
                         + (f"; without checks: {'; '.join(parts)}" if unchecked else ""))}


def suspect_lines(rows: list[dict]) -> list[tuple[str, str]]:
    """(where, failing checks) for every suspect row."""
    out = []
    for r in rows:
        if r.get("verdict") != "suspect":
            continue
        where = f"{r['model']} / {r['suite']} / {r['threat']} {r.get('eps_display') or r['eps']}" + (
            f" / {_variant(r)}" if _variant(r) else "")
        fails = "; ".join(f"{k}: {d}" for k, d in failing_checks(r)) or "no failing check recorded"
        if r.get("escalated_robust_acc") is not None:  # the number to believe, first
            fails = (f"escalated to {100 * r['escalated_robust_acc']:.1f}% robust (the suite's own "
                     f"{100 * r['robust_acc']:.1f}%); " + fails)
        out.append((where, fails))
    return out


def check_explanations(path: str | Path | None = None) -> dict[str, dict[str, str]]:
    """{check: {"fails_when", "why"}} from the table in docs/checks.md ({} where the docs are not shipped)."""
    if path is None:
        root = checkout_root()
        path = (root / CHECKS_DOC) if root else None
    if path is None or not Path(path).is_file():
        return {}
    out = {}
    for line in Path(path).read_text().splitlines():
        m = re.match(r"\|\s*(?:<a id=\"[^\"]*\"></a>)?`([a-z_0-9]+)`\s*\|(.*)\|(.*)\|\s*$", line)
        if m:
            out[m.group(1)] = {"fails_when": m.group(2).strip(), "why": m.group(3).strip()}
    return out


def seed_corrupted_means(claims: dict) -> dict[tuple[str, float], float]:
    """(model, eps) → the seed's Table 1 mean accuracy in percent (``corrupted_adv_claims`` in seed_claims.json)."""
    out = {}
    for m in (claims.get("corrupted_adv_claims") or {}).get("means", []):
        for eps, acc in zip(m["eps"], m["acc"]):
            out[(m["model"], round(float(eps), 6))] = acc
    return out


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
