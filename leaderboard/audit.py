"""Audit: can any trusted row on the board sit more than 2 points above APGD-CE + APGD-T on its own examples?

A row answers that by one of four facts, read from the row alone: its suite already runs APGD-CE and
APGD-T at AutoAttack's budget (``apgd in suite``), its robust accuracy is at most 2 points so no attack
can lower it by more (``≤ 2 points``), or its own stronger-attack spot check (``apgd_not_stronger``)
passed or warned (``spot check``). A trusted row with none of these is ``unaudited``: rerun it with the
current checks (``symbench bench``; the new row supersedes it, see docs/checks.md) and it gets a verdict.
``symbench leaderboard audit`` prints the table and exits 1 while any trusted row is unaudited.
"""
from __future__ import annotations

import functools

from symbench.bench.checks.spot import FAIL_POINTS

AUDITED = ("apgd in suite", "≤ 2 points", "spot check")


@functools.lru_cache(maxsize=None)
def _suite_has_apgd(suite: str, norm: str) -> bool | None:
    from symbench.bench.checks.spot import runs_standard_apgd
    from symbench.bench.suites import load_suite

    try:
        return runs_standard_apgd(load_suite(suite), norm)
    except Exception:  # noqa: BLE001  (a suite symbench does not ship: judged by the row's own checks)
        return None


def row_audit(r: dict) -> tuple[str, str]:
    """(status, detail) of one attack row: one of ``AUDITED``, ``failed`` (its spot check failed) or ``unaudited``."""
    spot = (r.get("checks") or {}).get("apgd_not_stronger") or {}
    if spot.get("status") == "fail":
        return "failed", spot.get("detail", "")
    if _suite_has_apgd(r["suite"], r["threat"]):
        return "apgd in suite", f"suite {r['suite']} runs APGD-CE + APGD-T at the standard budget"
    if r["robust_acc"] <= FAIL_POINTS + 1e-9:
        return "≤ 2 points", f"robust accuracy {100 * r['robust_acc']:.1f}%: no attack can lower it by more than 2 points"
    if spot.get("status") in ("pass", "warn"):
        return "spot check", spot.get("detail", "")
    return "unaudited", "no APGD result on this row's examples yet: rerun it under the current checks"


def audit(rows: list[dict]) -> list[dict]:
    """Every trusted attack row the board shows (``pick_rows``), with its audit status."""
    from symbench.leaderboard.boards import pick_rows
    from symbench.leaderboard.rows import _is_attack

    shown, _ = pick_rows([r for r in rows if r.get("kind", "measured") == "measured"])
    out = []
    for r in shown:
        if not _is_attack(r) or r.get("verdict") != "trusted" or r.get("robust_acc") is None:
            continue
        status, detail = row_audit(r)
        out.append({"model": r["model"], "suite": r["suite"], "threat": r["threat"],
                    "eps": r.get("eps_display", r["eps"]), "n": r["n"], "robust_acc": r["robust_acc"],
                    "status": status, "detail": detail})
    return out


def summary(entries: list[dict]) -> str:
    counts = {s: sum(e["status"] == s for e in entries) for s in (*AUDITED, "unaudited", "failed")}
    return (f"{len(entries)} trusted attack row(s): " + ", ".join(f"{v} {k}" for k, v in counts.items() if v)
            + ("" if not counts["unaudited"] else "; the unaudited ones may sit above APGD"))
