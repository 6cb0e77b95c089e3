"""``symbench leaderboard refresh``: rerun every model × suite whose leaderboard rows are missing or stale.

A (model, suite) is current when, for every (threat, eps) of the suite, the newest row (the one the
leaderboard page shows) cites the suite file's sha256, the model card's checkpoint sha256, and the
suite's n and seed. Anything else is rerun, locally or fanned out on Ray (bench/executors.py). Only
models with a trained checkpoint (``get_card(name).sha256``) take part: untrained weights are not a
leaderboard entry.
"""
from __future__ import annotations

import fnmatch
import logging

log = logging.getLogger(__name__)

DEFAULT_SUITES = ("quick", "paper")


def _newest(rows: list[dict]) -> dict[tuple, dict]:
    """(model, suite, threat, eps, variant) → the last appended row (refresh judges the newest run; the page shows the largest-n row)."""
    out = {}
    for r in rows:
        out[(r.get("model"), r.get("suite"), r.get("threat"), round(float(r.get("eps") or 0), 9), r.get("variant"))] = r
    return out


def stale_reason(newest: dict[tuple, dict], model: str, ckpt_sha256: str, suite) -> str | None:
    """Why (model, suite) needs a rerun, or None when its rows are current."""
    if suite.kind == "attack":
        want = [(t.norm, round(float(e), 9), None) for t in suite.threats for e in t.eps]
        have = [newest.get((model, suite.name, *w)) for w in want]
        absent = [f"{w[0]} {w[1]:g}" for w, r in zip(want, have) if r is None]
        have = [r for r in have if r is not None]
    else:  # corruptions, CLEVER ...: whatever rows the suite produced
        have = [r for k, r in newest.items() if k[:2] == (model, suite.name)]
        absent = []
    if not have:
        return "missing"
    why = []
    if absent:
        why.append("no row for " + ", ".join(absent))
    if any(r.get("suite_sha256") != suite.sha256 for r in have):
        why.append(f"suite file changed (now {suite.sha256[:8]})")
    if any(r.get("ckpt_sha256") != ckpt_sha256 for r in have):
        why.append(f"checkpoint changed (now {ckpt_sha256[:8]})")
    if any(r.get("n") != suite.n or r.get("seed") != suite.seed for r in have):
        why.append(f"run with other n/seed than the suite's n={suite.n} seed={suite.seed}")
    return "; ".join(why) or None


def plan_refresh(rows: list[dict], models: dict[str, str], suites: dict) -> list[tuple[str, str, str]]:
    """(model, suite name, reason) for every pair that must run.

    Args:
        rows: the leaderboard rows, in file order.
        models: model name → the current checkpoint sha256 of its card.
        suites: suite name (as given to ``bench``) → loaded :class:`~bench.suites.Suite`.
    """
    newest = _newest(rows)
    plan = []
    for model, sha in models.items():
        for name, suite in suites.items():
            why = stale_reason(newest, model, sha, suite)
            if why:
                plan.append((model, name, why))
    return plan


def trained_models(pattern: str = "*") -> dict[str, str]:
    """Registered models matching ``pattern`` that have a trained checkpoint → its sha256."""
    from symbench.models import get_card, list_models

    out = {}
    for name in list_models("*"):
        if fnmatch.fnmatch(name, pattern) and (sha := get_card(name).sha256):
            out[name] = sha
    return out


def refresh(*, executor="local", address=None, shards=None, models="*", suites=DEFAULT_SUITES,
            rows=None, data_dir=None, store=None, device=None,
            progress=True, dry_run=False, n=None, publish=False, escalate=True) -> list[tuple[str, str, str]]:
    """Plan, then (unless ``dry_run``) run every missing or stale pair and append its rows to ``rows``.

    ``n`` overrides every suite's example count (e.g. ``standard`` at n=200 on a CPU): rows are current
    when they were run with that n, and new runs use it. With ``publish`` (``rows`` is then the board) each
    pair's rows go through :func:`publish_rows` as the pair finishes, with their per-example outcomes, and a
    row flagged for hidden or noisy gradients is escalated first unless ``escalate`` is False (issue 26: the
    same default as ``bench --publish``; the rows then say ``--no-escalate``).
    """
    from symbench.paths import user_rows
    from symbench.bench.run.executors import BenchJob, make_executor
    from symbench.bench.run.records import read_rows
    from symbench.bench.suites import load_suite

    rows = user_rows() if rows is None else rows
    plan = plan_refresh(read_rows(rows), trained_models(models), {s: load_suite(s).with_overrides(n=n) for s in suites})
    if dry_run or not plan:
        return plan
    kwargs = dict(data_dir=data_dir, out=None if publish else rows, store=store, device=device, progress=progress, n=n)
    if publish:
        from symbench.leaderboard.publish import check_publishable, publish_rows

        for s in {s for _, s, _ in plan}:
            check_publishable(s, n)
        kwargs.update({"escalate": True} if escalate else {"escalate_skipped": "--no-escalate"})
    jobs = [BenchJob(m, s, dict(kwargs)) for m, s, _ in plan]
    for job, got in make_executor(executor, address=address, shards=shards).run(jobs):
        log.info("%s %s: %d row(s)", job.model_name, job.suite_name, len(got))
        if publish:
            publish_rows(got, rows, store=store)
    return plan
