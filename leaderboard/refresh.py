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
    """(model, suite, threat, eps, variant) → the last appended row, as the leaderboard page picks it."""
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
            rows="leaderboard/v1/rows.jsonl", data_dir=None, store="results/store", device=None,
            progress=True, dry_run=False, n=None) -> list[tuple[str, str, str]]:
    """Plan, then (unless ``dry_run``) run every missing or stale pair and append its rows to ``rows``.

    ``n`` overrides every suite's example count (e.g. ``standard`` at n=200 on a CPU): rows are current
    when they were run with that n, and new runs use it.
    """
    from symbench.bench.run.executors import BenchJob, make_executor
    from symbench.bench.run.records import read_rows
    from symbench.bench.suites import load_suite

    plan = plan_refresh(read_rows(rows), trained_models(models), {s: load_suite(s).with_overrides(n=n) for s in suites})
    if dry_run or not plan:
        return plan
    kwargs = dict(data_dir=data_dir, out=rows, store=store, device=device, progress=progress, n=n)
    jobs = [BenchJob(m, s, dict(kwargs)) for m, s, _ in plan]
    for job, got in make_executor(executor, address=address, shards=shards).run(jobs):
        log.info("%s %s: %d row(s)", job.model_name, job.suite_name, len(got))
    return plan


def _cmd_refresh(args) -> int:
    import os

    import torch

    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    suites = [s for s in args.suites.split(",") if s]
    plan = refresh(executor=args.executor, address=args.address, shards=args.shards, models=args.models,
                   suites=suites, rows=args.rows, data_dir=args.data_dir, store=args.store, device=args.device,
                   progress=not args.no_progress, dry_run=args.dry_run or args.plain, n=args.n)
    if args.plain:  # for scripts (examples/slurm/submit_all.sh): one "model suite" per line, nothing else
        print("\n".join(f"{model} {suite}" for model, suite, _ in plan))
        return 0
    if not plan:
        print(f"{args.rows}: every trained model × {','.join(suites)} is current")
        return 0
    print(("would run" if args.dry_run else "ran") + f" {len(plan)} model × suite pair(s):")
    for model, suite, why in plan:
        print(f"  {model:24s} {suite:10s} {why}")
    return 0


def add_refresh_command(lsub) -> None:
    """Register ``symbench leaderboard refresh`` under the ``leaderboard`` subcommands."""
    from symbench.bench.run.executors import EXECUTORS

    s = lsub.add_parser("refresh", help="rerun every trained model × suite whose rows are missing or stale")
    s.add_argument("--executor", choices=EXECUTORS, default="local", help="where to run (default local)")
    s.add_argument("--address", help="Ray cluster address for --executor ray (default: start a local Ray)")
    s.add_argument("--shards", type=int, help="example shards per model × suite (default: the cluster's GPUs/CPUs)")
    s.add_argument("--models", default="*", help="shell pattern over registered model names (default *)")
    s.add_argument("--suites", default=",".join(DEFAULT_SUITES), help="comma-separated suites (default quick,paper)")
    s.add_argument("--dry-run", action="store_true", help="list what would run, run nothing")
    s.add_argument("--n", type=int, help="examples per suite instead of each suite's n (rows must match it)")
    s.add_argument("--plain", action="store_true", help="implies --dry-run; print only MODEL SUITE lines, for scripts")
    s.add_argument("--rows", default="leaderboard/v1/rows.jsonl", help="rows file to check and append to")
    s.add_argument("--data-dir", help="CIFAR-10 directory ($SYMBENCH_DATA)")
    s.add_argument("--store", default="results/store", help="per-example outcome store (resumable)")
    s.add_argument("--device", help="driver device for checks and local runs (default: cuda if available)")
    s.add_argument("--threads", type=int, help="driver CPU threads (default: all cores)")
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=_cmd_refresh)
