"""Seed claims: the seed paper's printed numbers (``seed_claims.json``) beside the matching ``paper``-suite rows."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from symbench.leaderboard.rows import LEADERBOARD_DIR, _variant, fgsm_alone
from symbench.leaderboard.tables import Cell, Col, Table, num, pct

CLAIMS_PATH = LEADERBOARD_DIR / "seed_claims.json"
EPS_TOL = 1e-6


def load_claims(path: str | Path = CLAIMS_PATH) -> dict:
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else {"claims": [], "sources": {}, "models": {}}


@dataclass
class ClaimMatch:
    claim: dict
    row: dict | None

    @property
    def measured_fgsm(self):
        return fgsm_alone(self.row) if self.row else None

    @property
    def measured_worst(self):
        return self.row["robust_acc"] if self.row else None


def match_claims(claims: dict, rows: list[dict]) -> list[ClaimMatch]:
    """Each seed claim beside the `paper`-suite row of the same model, threat and eps (if measured)."""
    out = []
    for c in claims.get("claims", []):
        row = next((r for r in rows if r["suite"] == "paper" and r["model"] == c["model"]
                    and r["threat"] == claims.get("threat", "linf") and not _variant(r)
                    and abs(float(r["eps"]) - float(c["eps"])) < EPS_TOL), None)
        out.append(ClaimMatch(c, row))
    return out


def claims_table(claims: dict, matches: list[ClaimMatch]) -> Table:
    t = Table("claims", [Col("model"), Col("paper's name"), Col("eps", True), Col("source"),
                         Col("paper FGSM %", True), Col("measured FGSM %", True), Col("paper PGD %", True),
                         Col("measured worst case %", True, "per-example worst case over FGSM and PGD-40"),
                         Col("PGD gap (pp)", True, "measured worst case minus the paper's PGD"),
                         Col("n", True), Col("verdict")])
    for m in matches:
        c, r = m.claim, m.row
        src = claims.get("sources", {}).get(c["source"], {})
        label = claims.get("models", {}).get(c["model"], {}).get("paper_label", "")
        gap = None if m.measured_worst is None else 100 * m.measured_worst - c["pgd"]
        t.add([Cell(c["model"]), Cell(label), Cell(f"{c['eps']:g}", c["eps"]),
               Cell(f"{src.get('table', c['source'])} ({src.get('section', '?').split(' (')[0]})",
                    title=f"transcript lines {src.get('transcript_lines', '?')}; page {src.get('page') or 'not in transcript'}"),
               Cell(f"{c['fgsm']:.2f}", c["fgsm"]), pct(m.measured_fgsm), Cell(f"{c['pgd']:.2f}", c["pgd"]),
               pct(m.measured_worst), num(gap, "{:+.1f}"),
               Cell(str(r["n"]), r["n"]) if r else Cell("not measured yet", float("nan")),
               Cell(r.get("verdict", "") if r else "–", badge=r.get("verdict") if r else None)],
              "" if r else "missing", attrs={"model": c["model"]},
              record={"model": c["model"], "paper_label": label, "eps": c["eps"], "source": src.get("table", c["source"]),
                      "paper_fgsm_pct": c["fgsm"], "measured_fgsm": m.measured_fgsm, "paper_pgd_pct": c["pgd"],
                      "measured_worst": m.measured_worst, "pgd_gap_pp": gap, "n": r["n"] if r else None,
                      "verdict": r.get("verdict") if r else None})
    return t


def claims_sentence(matches: list[ClaimMatch]) -> str:
    """One sentence, computed from the matched rows, on how symbench's numbers differ from the claims."""
    got = [m for m in matches if m.measured_worst is not None]
    if not got:
        return ("No `paper`-suite rows exist yet for these models, so no claim has a measurement beside it; "
                "run `symbench bench --suite paper --model <name>` to add them.")
    gaps = [100 * m.measured_worst - m.claim["pgd"] for m in got]
    mean = sum(gaps) / len(gaps)
    worst = max(got, key=lambda m: abs(100 * m.measured_worst - m.claim["pgd"]))
    direction = "below" if mean < 0 else "above"
    n = sorted({m.row["n"] for m in got})
    attacks = " and ".join(dict.fromkeys(a["label"] for m in got for a in m.row.get("attacks") or []))
    return (f"Over the {len(got)} of {len(matches)} claims with a measurement, symbench's per-example worst-case "
            f"accuracy over {attacks} (eps on the [0,1] pixel scale, n={'/'.join(map(str, n))}) is on "
            f"average {abs(mean):.1f} percentage points {direction} the paper's PGD numbers, the largest gap being "
            f"{worst.claim['model']} at eps {worst.claim['eps']:g} ({worst.claim['pgd']:.2f}% claimed, "
            f"{100 * worst.measured_worst:.1f}% measured).")
