"""Findings: does symmetry help once a model is adversarially trained? Computed from rows and stored outcomes.

Each comparison in ``findings.toml`` pairs an adversarially trained symmetry-aware model with a plain
CNN trained by the same PGD-7 recipe at matched parameters. Both are compared on the *same* examples
(same suite, threat, eps, data and n) from their per-example outcomes: accuracies with 95% Wilson
intervals, the paired difference with its interval and the exact McNemar p-value, for robust and for
clean accuracy. The result is an artifact, ``leaderboard/v1/findings.json``, that names the rows it
came from (model, suite, store key, n) and the sha256 of each per-example outcome mask, so the pages
(which have no store) can show it and anyone with the store can recompute it. A pair whose rows are
missing says so and how to produce them; it is never filled in from a smaller-n row.
"""
from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

from symbench.paths import package_file

FINDINGS_SPEC = package_file("symbench.leaderboard", "findings.toml")
SPATIAL_SPEC = package_file("symbench.leaderboard", "findings_spatial.toml")  # issue 24: the Spatial tab's pairs


@dataclass(frozen=True)
class Pairing:
    symmetric: str      # the adversarially trained symmetry-aware model
    plain: str          # the plain CNN it is matched with
    why: str            # why this pairing (parameters, recipe)


def load_spec(path: str | Path = FINDINGS_SPEC) -> dict:
    spec = tomllib.loads(Path(path).read_text())
    # a pair names its models ``symmetric``/``plain`` (the AT question) or ``a``/``b`` (any other, e.g. spatial)
    spec["pairs"] = [Pairing(p.get("symmetric", p.get("a")), p.get("plain", p.get("b")), p["why"]) for p in spec["pairs"]]
    return spec


def compute(rows: list[dict], store_root=None, spec: dict | None = None) -> dict:
    """Every pairing × (threat, eps) of the spec's suite, robust and clean; missing rows reported, not guessed."""
    from symbench.bench.run.compare import compare_rows, matching_rows, paired_rows
    from symbench.bench.run.outcomes import mask_sha256
    from symbench.bench.run.stats import wilson_interval
    from symbench.leaderboard.outcomes import resolve
    from symbench.leaderboard.publish import suite_n

    spec = spec or load_spec()
    suite = spec["suite"]
    need = spec.get("n") or suite_n(suite) or 0
    need = dict(need) if isinstance(need, dict) else {"linf": int(need), "l2": int(need)}  # per threat
    min_n = max(need.values())
    out = {"question": spec["question"], "suite": suite, "n_required": min_n, "n_required_by_threat": need,
           "comparisons": [], "missing": []}
    # how the page names the two sides and the suite, and the README section it fills (defaults: the AT question's)
    for k in ("labels", "protocol", "artifact", "marker"):
        if k in spec:
            out[k] = spec[k]
    for pair in spec["pairs"]:
        a, b = matching_rows(rows, pair.symmetric, suite), matching_rows(rows, pair.plain, suite)
        at_common_n = paired_rows(rows, pair.symmetric, pair.plain, suite)  # one side rerun at 10,000: pair at 1,000
        for model, got in ((pair.symmetric, a), (pair.plain, b)):
            if not got:
                out["missing"].append({"model": model, "pair": [pair.symmetric, pair.plain],
                                       "how": f"symbench bench --model {model} --suite {suite} --n {min_n}"})

        def rerun(model, key, row, n):  # the one command that measures what a pairing lacks
            shown = (row or {}).get("eps_display") or f"{key[1]:g}"
            eps_arg = f"--eps {key[0]}={shown} " if key[0] in ("linf", "l2") else ""  # a spatial suite has one eps
            out["missing"].append({"model": model, "pair": [pair.symmetric, pair.plain],
                                   "how": f"symbench bench --model {model} --suite {suite} {eps_arg}--n {n}"})

        for key in sorted(set(a) | set(b)):  # a (threat, eps) either side has: both need it at the threat's n
            threat, eps = key
            short = [(m, got) for m, got in ((pair.symmetric, a), (pair.plain, b))
                     if key not in got or got[key]["n"] < need.get(threat, min_n)]
            for model, got in short:
                if not got:  # no rows at all: named once above
                    continue
                rerun(model, key, got.get(key), need.get(threat, min_n))
            if short:
                continue
            ra, rb = at_common_n.get(key) or (a[key], b[key])
            top = max(a[key]["n"], b[key]["n"])
            if ra["n"] != top or rb["n"] != top:  # one side rerun at a larger n (10,000): how to pair there too
                rerun(pair.symmetric if a[key]["n"] < top else pair.plain, key, a[key], top)
            if ra["n"] != rb["n"] or ra["n"] < need.get(threat, min_n):  # no common n the spec accepts
                continue
            entry = {"pair": [pair.symmetric, pair.plain], "why": pair.why, "threat": ra["threat"], "eps": ra["eps"],
                     "eps_display": ra.get("eps_display"), "n": ra["n"],
                     "rows": [{"model": r["model"], "suite_id": r.get("suite_id"), "store_key": r.get("store_key"),
                               "ckpt_sha256": r.get("ckpt_sha256")} for r in (ra, rb)]}
            got, lacking = {}, []
            for r in (ra, rb):  # the store, else the published outcomes
                try:
                    got[id(r)] = resolve(r, store_root)[0]
                except ValueError:
                    lacking.append(r["model"])
            if lacking:  # outcomes neither here nor published: say so, and how, without this machine's paths
                out["missing"].append({"model": " / ".join(lacking), "pair": entry["pair"],
                                       "how": f"per-example outcomes at n={ra['n']} are neither in this store nor "
                                              "published: `symbench leaderboard outcomes --recompute`"})
                continue
            try:
                for metric in ("robust", "clean"):
                    c = compare_rows(ra, rb, metric=metric, masks=lambda r: got[id(r)].mask(metric))
                    s = c.stats
                    entry[metric] = {
                        "acc": [s.acc_a, s.acc_b],
                        "interval": [list(wilson_interval(round(s.acc_a * s.n), s.n)),
                                     list(wilson_interval(round(s.acc_b * s.n), s.n))],
                        "diff": s.diff, "diff_interval": [s.diff_low, s.diff_high], "p_value": s.p_value,
                        "significant": s.significant, "discordant": [s.only_a, s.only_b],
                        "mask_sha256": [mask_sha256(got[id(r)].mask(metric)) for r in (ra, rb)],
                        "sentence": c.sentence()}
            except ValueError as err:  # outcomes found but not comparable (different examples): say so
                out["missing"].append({"model": f"{pair.symmetric} / {pair.plain}", "pair": entry["pair"],
                                       "how": str(err)})
                continue
            out["comparisons"].append(entry)
    if spec.get("orbit", True):
        out["orbit"] = _orbit_of_at_models(rows, spec)
    return out


def _orbit_of_at_models(rows: list[dict], spec: dict) -> list[dict]:
    """Orbit-alone and orbit+attack accuracy of every AT model the spec names (from ``paper`` rows' orbit column)."""
    names = {m for p in spec["pairs"] for m in (p.symmetric, p.plain)} | set(spec.get("also", []))
    best: dict[tuple, dict] = {}
    for r in rows:
        if r["model"] in names and r.get("orbit") and r["suite"] == "paper":
            k = (r["model"], round(r["eps"], 8))
            if k not in best or r["n"] >= best[k]["n"]:
                best[k] = r
    return [{"model": r["model"], "eps": r["eps"], "eps_display": r.get("eps_display"), "n": r["orbit"]["n"],
             "orbit_alone": r["orbit"]["clean_acc"], "orbit_attack": r["orbit"]["robust_acc"],
             "attack_alone": r["orbit"]["robust_acc_no_orbit"]} for _, r in sorted(best.items())]


def _labels(findings: dict) -> tuple[str, str]:
    return tuple(findings.get("labels") or ("symmetric (AT)", "plain (AT)"))


def _protocol(findings: dict) -> str:
    return findings.get("protocol") or "AutoAttack"


def _n_text(findings: dict) -> str:
    by = findings.get("n_required_by_threat")
    return ", ".join(f"{n} ({t})" for t, n in by.items()) if by else str(findings["n_required"])


def write(findings: dict, path: str | Path) -> Path:
    from symbench.bench.run.store import atomic_write_text

    path = Path(path)
    atomic_write_text(path, json.dumps(findings, indent=1) + "\n")
    return path


def markdown(findings: dict) -> str:
    """The findings as a README/page section: one honest sentence per comparison, then what is missing."""
    la, lb = _labels(findings)
    lines = [f"**Question:** {findings['question']}", "",
             f"Suite `{findings['suite']}` ({_protocol(findings)}), paired on the same examples, n ≥ {_n_text(findings)}; "
             "95% Wilson intervals, paired difference with its interval, exact McNemar test.", ""]
    if findings["comparisons"]:
        lines += [f"| {la} | {lb} | threat | eps | n | robust | robust diff [95%] | p | clean diff [95%] | p |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for c in findings["comparisons"]:
            r, k = c["robust"], c["clean"]
            lines.append(f"| `{c['pair'][0]}` | `{c['pair'][1]}` | {c['threat']} | {c['eps_display']} | {c['n']} | "
                         f"{r['acc'][0]:.1%} vs {r['acc'][1]:.1%} | {r['diff']:+.1%} [{r['diff_interval'][0]:+.1%}, "
                         f"{r['diff_interval'][1]:+.1%}] | {r['p_value']:.2g} | {k['diff']:+.1%} "
                         f"[{k['diff_interval'][0]:+.1%}, {k['diff_interval'][1]:+.1%}] | {k['p_value']:.2g} |")
        lines.append("")
        for c in findings["comparisons"]:
            lines.append(f"- Robust: {c['robust']['sentence']} Clean: {c['clean']['sentence']} "
                         f"(pairing: {c['why']})")
    else:
        lines.append("No comparison is measured yet at the required n.")
    if findings.get("orbit"):
        lines += ["", "Across the symmetry orbit (rot90/flip/zoom, then the attack), from `paper` rows:", ""]
        for o in findings["orbit"]:
            lines.append(f"- `{o['model']}` eps {o['eps_display']}: orbit alone {o['orbit_alone']:.1%}, "
                         f"attack alone {o['attack_alone']:.1%}, orbit + attack {o['orbit_attack']:.1%} (n={o['n']})")
    if findings["missing"]:
        lines += ["", "Not yet measured (so no claim is made):", ""]
        seen = set()
        for m in findings["missing"]:
            if m["how"] not in seen:
                seen.add(m["how"])
                lines.append(f"- `{m['model']}`: {m['how']}")
    return "\n".join(lines)


def update_readme(findings: dict, path: str | Path) -> bool:
    """Rewrite the section between ``<!-- <marker>:begin -->`` and its end (marker ``findings`` unless the spec
    names another, so each spec fills its own section); a README without the markers is left alone."""
    import re

    path = Path(path)
    text = path.read_text()
    marker = findings.get("marker", "findings")
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    new = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: begin + "\n" + markdown(findings) + "\n" + end,
                 text, flags=re.S)
    if new != text:
        path.write_text(new)
    return new != text


def board(findings: dict, pages: set[str], board_id: str = "findings", title: str = "AT + symmetry"):
    """The findings as a page tab (``boards.Board``): one row per comparison, the orbit table underneath."""
    from symbench.leaderboard.boards import Board, model_cell
    from symbench.leaderboard.tables import Cell, Col, Table, pct

    def diff_cell(m: dict) -> Cell:
        lo, hi = m["diff_interval"]
        return Cell(f"{100 * m['diff']:+.1f}", round(100 * m["diff"], 4), sub=f"[{100 * lo:+.1f} to {100 * hi:+.1f}]",
                    title="paired difference on the same examples, 95% interval")

    def acc_pair(m: dict, i: int) -> Cell:
        lo, hi = m["interval"][i]
        return Cell(f"{100 * m['acc'][i]:.1f}", round(100 * m["acc"][i], 4), sub=f"[{100 * lo:.1f}–{100 * hi:.1f}]",
                    ci=(m["acc"][i], lo, hi))

    la, lb = _labels(findings)
    short = [x.split(" (")[0] for x in (la, lb)]
    t = Table(board_id, [Col(la), Col(lb), Col("threat"), Col("eps"), Col("n", True),
                           Col(f"robust % {'sym' if short[0] == 'symmetric' else short[0]}", True,
                               "95% Wilson interval underneath"),
                           Col(f"robust % {short[1]}", True, "95% Wilson interval underneath"),
                           Col("robust diff (pp)", True, f"{short[0]} minus {short[1]} on the same examples"),
                           Col("p", True, "exact McNemar test on the discordant examples"),
                           Col("clean diff (pp)", True, f"clean-accuracy difference, {short[0]} minus {short[1]}",
                               narrow=False),
                           Col("reading", narrow=False)])
    for c in findings.get("comparisons", []):
        r, k = c["robust"], c["clean"]
        verdict = "significant" if r["significant"] else "no significant difference"
        t.add([model_cell(c["pair"][0], pages), model_cell(c["pair"][1], pages), Cell(c["threat"]),
               Cell(c.get("eps_display") or f"{c['eps']:g}", c["eps"]), Cell(str(c["n"]), c["n"]),
               acc_pair(r, 0), acc_pair(r, 1), diff_cell(r), Cell(f"{r['p_value']:.2g}", r["p_value"], sub=verdict),
               diff_cell(k), Cell(r["sentence"], title=c["why"])],
              attrs={"model": c["pair"][0]},
              record={"symmetric": c["pair"][0], "plain": c["pair"][1], "threat": c["threat"], "eps": c["eps"],
                      "n": c["n"], "robust_acc": r["acc"], "robust_diff": r["diff"],
                      "robust_diff_interval": r["diff_interval"], "robust_p_value": r["p_value"],
                      "clean_diff": k["diff"], "clean_diff_interval": k["diff_interval"], "clean_p_value": k["p_value"],
                      "why": c["why"], "rows": c["rows"]})
    extra = []
    if findings.get("orbit"):
        o = Table("findings_orbit", [Col("model"), Col("eps"), Col("n", True), Col("orbit alone %", True),
                                     Col("attack alone %", True), Col("orbit + attack %", True)])
        for x in findings["orbit"]:
            o.add([model_cell(x["model"], pages), Cell(x.get("eps_display") or f"{x['eps']:g}", x["eps"]),
                   Cell(str(x["n"]), x["n"]), pct(x["orbit_alone"]), pct(x["attack_alone"]), pct(x["orbit_attack"])],
                  record=dict(x))
        extra.append(("Across the symmetry orbit", "rot90/flip/zoom copies, then the attack (`paper` rows' orbit "
                      "column) for the adversarially trained models", o))
    missing = sorted({f"{m['model']}: {m['how']}" for m in findings.get("missing", [])})
    note = (f"Suite `{findings['suite']}` ({_protocol(findings)}), both models on the same examples, n ≥ {_n_text(findings)}: "
            "accuracies with 95% Wilson intervals, the paired difference with its interval and the exact McNemar "
            "p-value, from the per-example outcomes in the store ("
            f"{findings.get('artifact', 'leaderboard/v1/findings.json')} names the rows and the sha256 of each outcome "
            "mask).") + (" Not yet measured, so no claim: " + "; ".join(missing)
                                                    if missing else "")
    return Board(board_id, title, findings["question"], note, t, extra=extra, headline="robust diff (pp)")
