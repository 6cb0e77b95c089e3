"""Publishing: the one way rows reach the repository's ``leaderboard/v1/rows.jsonl``.

Everyday runs append to the user's rows (``$SYMBENCH_HOME/rows.jsonl``); publishing is an explicit
act (``symbench bench --publish``, ``symbench leaderboard add ROWS``). A row computed on fewer
examples than its suite asks for is refused unless forced: a trial run at ``--n 100`` must never
stand in for the board's n=1000 numbers.
"""
from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("symbench")


def suite_n(suite: str) -> int | None:
    """The n a suite declares (None for a suite file that is not shipped, e.g. a submitter's copy)."""
    from symbench.bench.suites import UnknownSuiteError, load_suite

    try:
        return load_suite(suite).n
    except UnknownSuiteError:
        return None


def short_rows(rows: list[dict]) -> list[str]:
    """A line for every row whose n is below its suite's declared n."""
    out = []
    for r in rows:
        want = suite_n(r["suite"])
        if want is not None and r.get("n") is not None and r["n"] < want:
            out.append(f"{r['model']} {r['suite']} {r['threat']} eps {r.get('eps_display', r['eps'])}: "
                       f"n={r['n']} < the suite's n={want}")
    return out


def check_publishable(suite: str, n: int | None, force: bool = False) -> None:
    """Before any compute: refuse to publish a run that will have fewer examples than its suite's n."""
    want = suite_n(suite)
    if not force and n is not None and want is not None and n < want:
        raise ValueError(f"--publish with --n {n} < suite {suite!r}'s n={want}: a smaller-n row must not stand in "
                         "for the board's numbers; drop --publish (rows still go to your user directory) or add --force")


def unescalated(rows: list[dict]) -> list[dict]:
    """Rows a hidden- or noisy-gradient check flagged that carry neither an escalated number nor a stated skip."""
    from symbench.bench.checks.escalate import flagged

    return [r for r in rows if flagged(r) and r.get("escalated_robust_acc") is None and not r.get("escalation_skipped")]


def check_escalated(rows: list[dict], no_escalate: bool = False) -> list[dict]:
    """Issue 26: a flagged number is a broken number, so no path publishes one unescalated by accident. ``bench
    --publish`` and ``submit`` escalate before they get here; ``leaderboard add`` of a flagged row made without
    escalation is refused with the command that escalates it, unless ``no_escalate`` (the rows then say so)."""
    from symbench.bench.checks.escalate import escalate_command

    bad = unescalated(rows)
    if not bad:
        return rows
    if not no_escalate:
        raise ValueError(f"{len(bad)} row(s) were flagged for hidden or noisy gradients and carry no escalated number; "
                         "escalate them first (or publish with --no-escalate, which the rows then say):\n  "
                         + "\n  ".join(escalate_command(r) for r in bad[:10]))
    ids = {id(r) for r in bad}
    return [{**r, "escalation_skipped": "--no-escalate at publish"} if id(r) in ids else r for r in rows]


def publish_rows(rows: list[dict], board: str | Path | None = None, force: bool = False,
                 store: str | Path | None = None, no_escalate: bool = False) -> tuple[Path, int]:
    """Validate and append ``rows`` to the published board with their per-example outcomes; returns (board, added).

    Every attack row's outcomes are read from ``store`` (default: the user's), checked against the row's
    numbers and appended to the board's ``outcomes.jsonl``; the row carries their sha256. A row whose
    run is not in the store is refused: a published number must come with the masks it is the mean of. A row
    flagged for hidden or noisy gradients without an escalated number is refused unless ``no_escalate``.
    """
    from symbench.bench.run.records import append_rows, validate_row
    from symbench.paths import publish_target

    target = Path(board) if board else publish_target()
    short = short_rows(rows)
    if short and not force:
        raise ValueError(f"{len(short)} row(s) have n below their suite's n and are not published "
                         "(use --force to publish them anyway):\n  " + "\n  ".join(short[:10]))
    for r in rows:
        validate_row(r)
    rows = check_escalated(rows, no_escalate)
    from symbench.leaderboard.outcomes import attach, beside, prune_pending

    rows = attach(rows, store, beside(target))
    added = append_rows(target, rows)
    prune_pending(target)  # a rerun of a run published before outcomes existed brings its outcomes now
    log.info("published %d new row(s) to %s (%d already there)", added, target, len(rows) - added)
    return target, added
