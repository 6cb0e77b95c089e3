"""What the commands print: records as a table, JSON or CSV on stdout; where things went on stderr."""
from __future__ import annotations

import json
import sys


def emit(records: list[dict], fmt: str, table: str) -> None:
    """Print ``records`` as JSON (a list), CSV (pandas, flat columns) or the human ``table`` text."""
    if fmt == "json":
        json.dump(records, sys.stdout, indent=1, default=str)
        sys.stdout.write("\n")
    elif fmt == "csv":
        import pandas as pd

        pd.json_normalize(records).convert_dtypes().to_csv(sys.stdout, index=False)
    else:
        print(table)


def _where(kind: str, path) -> None:
    from symbench.paths import describe

    print(f"symbench: {kind}: {describe(path)}", file=sys.stderr)


def _no_match(what: str, pattern: str, known: list[str]) -> int:
    import difflib

    close = difflib.get_close_matches(pattern.strip("*"), known, n=5, cutoff=0.4)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    print(f"symbench: no {what} matches {pattern!r}.{hint} Patterns are shell-style (e.g. 'cascaded*'); "
          f"there are {len(known)} in all.", file=sys.stderr)
    return 1


def _details(rows: list[dict]) -> str:
    """The check table, defense gain, orbit column and equivariance errors under the rows table."""
    lines = []
    for name, c in (rows[0].get("checks") or {}).items() if rows else []:
        lines.append(f"  check {name:28s} {c['status']:5s} {c['detail']}")
    for r in rows:
        if r.get("base_robust_acc") is not None:
            lines.append(f"  undefended {r['base_model']}: clean {r['base_clean_acc']:.3f} robust "
                         f"{r['base_robust_acc']:.3f} (defense gain {_gain(r)})")
        if r.get("escalated_robust_acc") is not None:
            esc = r["escalation"]
            lines.append(f"  escalated eps={r['eps_display']}: {r['escalated_robust_acc']:.3f} (the suite's "
                         f"{r['robust_acc']:.3f}; surrogate {esc.get('surrogate') or 'none'}): " + "; ".join(
                             f"{e['remedy']} broke {e['broke']} of {e['attacked']}" for e in esc.get("effects", [])))
        if r.get("orbit"):
            o = r["orbit"]
            lines.append(f"  orbit eps={r['eps_display']}: orbit alone {o['clean_acc']:.3f}, orbit+{o['attack']} "
                         f"{o['robust_acc']:.3f} (suite's robust acc on the same {o['n']}: {o['robust_acc_no_orbit']:.3f})")
    if rows and rows[0].get("equivariance"):
        for kind, errs in rows[0]["equivariance"].items():
            lines.append(f"  equivariance error ({kind}): " + ", ".join(f"{k} {v:.3g}" for k, v in errs.items()))
    return ("\n" + "\n".join(lines)) if lines else ""


def _gain(r: dict) -> str:
    """The defense's gain over its base as the Defenses board reads it (``boards.defense_gain``): difference,
    95% interval, McNemar p when paired, and "no significant gain" when the interval contains 0."""
    from symbench.leaderboard.boards import defense_gain

    gain, lo, hi, p, paired = defense_gain(r)
    test = f"McNemar p={p:.2g}" if paired else "unpaired, Newcombe"
    verdict = "no significant gain" if lo <= 0 <= hi else "significant"
    return f"{gain:+.3f} [{lo:+.3f}, {hi:+.3f}], {test}: {verdict}"


def _escalation_hints(rows: list[dict]) -> None:
    """For each flagged row left unescalated, the one command that escalates it (on stderr)."""
    from symbench.bench.checks.escalate import escalate_command, flagged

    for r in rows:
        if r.get("escalated_robust_acc") is None and not r.get("escalation_skipped") and flagged(r):
            print(f"symbench: {r['suite']} {r['threat']} eps={r['eps_display']} is flagged ({', '.join(flagged(r))}): "
                  f"its robust accuracy may be inflated; escalate it with: {escalate_command(r)}", file=sys.stderr)
