"""Publish the outcomes of rows already on the board: from a store, recomputing their runs where asked.

Rows published before issue 23 have accuracies but no published masks. Their outcomes are
deterministic, so a maintainer can recompute each run (``--recompute``: the exact suite settings are
found from the row's store key, leaderboard/recover.py) into a store, resumably and in as many
processes as there are cores (``--jobs i/k``), and this module publishes them once the masks' means
equal the row's numbers: the rows' own numbers prove the recomputation. A run whose store key today's
code does not reproduce stays pending, with the reason. A row keyed before the model code's hash joined the
key (recover.py: ``legacy``) is recomputed under today's key, which its outcome record names
(``recomputed_key``); a rerun with ``--recompute`` finds it stored there and computes nothing.
"""
from __future__ import annotations

import fnmatch
import logging
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("symbench")


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    published: int = 0
    pending: int = 0
    skipped: int = 0

    def summary(self) -> str:
        return (f"{self.published} run(s) published now, {self.pending} still without published outcomes"
                + (f", {self.skipped} left to other --jobs" if self.skipped else ""))


def parse_jobs(text: str | None) -> tuple[int, int]:
    if not text:
        return 0, 1
    from symbench.bench.run.evaluate import parse_shard

    return parse_shard(text)


def backfill(rows_path: str | Path, *, store=None, model: str | None = None, suite: str | None = None,
             recompute: bool = False, data_dir=None, dry_run: bool = False, jobs: str | None = None,
             progress: bool = True) -> Report:
    """Publish into ``outcomes.jsonl`` beside ``rows_path`` every missing run's outcomes that ``store`` holds."""
    from symbench.bench.run.records import read_rows
    from symbench.leaderboard import outcomes as oc

    rows = read_rows(rows_path)
    out_path = oc.beside(rows_path)
    index = oc.load_index(out_path)
    runs: dict[tuple, list[dict]] = {}
    published = index.runs
    rows = [r for r in rows if (not model or fnmatch.fnmatchcase(r["model"], model))
            and (not suite or fnmatch.fnmatchcase(r["suite"], suite))]
    if not rows and (model or suite):  # a typo is an error, not "0 published now"
        raise ValueError(f"no row of {rows_path} matches " + " and ".join(
            f"--{k} {v!r}" for k, v in (("model", model), ("suite", suite)) if v))
    for r in rows:
        if oc.needs_outcomes(r) and oc.key_of(r) not in published:
            runs.setdefault(oc.key_of(r), []).append(r)
    i, k = parse_jobs(jobs)
    report = Report()
    by_run = sorted({(m, key) for m, key, _ in runs})
    mine = {run for j, run in enumerate(by_run) if j % k == i}
    for key, group_rows in sorted(runs.items()):
        if (key[0], key[1]) not in mine:
            report.skipped += 1
            continue
        row = max(group_rows, key=lambda r: r.get("created", ""))
        what = f"{row['model']} {row['suite']} {row['threat']} eps {row.get('eps_display')} n={row['n']} ({key[1]})"
        try:
            outcome, recomputed_key = _outcome(row, group_rows, store, recompute and not dry_run, data_dir, progress)
        except ValueError as err:
            report.pending += 1
            report.lines.append(f"pending    {what}: {err}")
            continue
        if dry_run:
            report.lines.append(f"would add  {what}")
            continue
        oc.append_records(out_path, [oc.record_for(row, outcome, recomputed_key)])
        oc.prune_pending(rows_path, out_path)  # now, not at the end: a killed backfill leaves a board that validates
        report.published += 1
        report.lines.append(f"published  {what}: clean {sum(outcome.clean)}/{outcome.n}, robust "
                            f"{sum(outcome.robust)}/{outcome.n}, as the row says"
                            + (f" (its key predates the code hash; recomputed as {recomputed_key})" if recomputed_key
                               else ""))
    return report


def _outcome(row: dict, same_key: list[dict], store, recompute: bool, data_dir, progress: bool):
    """(outcomes, recomputed_key): the run's outcomes from the store, recomputing the run first when asked, checked
    against every row of it; the key they are stored under when it is not the row's (a legacy row's), else None.

    Without ``recompute``, a row that records no ``code_sha256`` (computed before the code hash joined the key)
    is also looked for under today's key: loading its model to find that key computes nothing."""
    from symbench.bench.run.fastpath import as_computed
    from symbench.bench.run.runner import suite_run_key
    from symbench.leaderboard.outcomes import outcome_of

    predates_code_hash = "code_sha256" not in row
    try:
        return _agreeing(outcome_of(row, store), same_key), None
    except ValueError as err:
        if "do not give the row's numbers" in str(err) or not (recompute or predates_code_hash):
            raise
        missing = err
    with as_computed(row):  # a --fast row's key and run are in its layout
        if recompute:
            model, data, plan = _plan(row, data_dir)
            key = _recompute(row, model, data, plan, store, progress)
        else:  # only reading: a row whose run today's code cannot find says what the store lacks, as any other row
            try:
                model, data, plan = _plan(row, data_dir)
            except ValueError:
                raise missing from None
            if not plan.legacy:
                raise missing
            key = suite_run_key(model, plan.suite, data)
    outcome = _agreeing(outcome_of({**row, "store_key": key}, store), same_key)
    return outcome, (key if key != row["store_key"] else None)


def _agreeing(outcome, same_key: list[dict]):
    for other in same_key:
        bad = outcome.disagreements(other)
        if bad:
            raise ValueError(f"a row of the same run disagrees with its masks: {'; '.join(bad)}")
    return outcome


def _plan(row: dict, data_dir):
    """(model, data, RunPlan) of the row's run, or ValueError when today's code gives no setting its key."""
    from symbench.leaderboard.recover import find_run, load_for_row

    model, data = load_for_row(row, data_dir=data_dir)
    plan = find_run(row, model, data)
    if plan is None:
        raise ValueError(f"today's code does not reproduce store key {row['store_key']} (model code or suite "
                         "changed since the row was computed), so the run cannot be recomputed")
    return model, data, plan


def _recompute(row: dict, model, data, plan, store, progress: bool) -> str:
    """Run the row's run into ``store``; the key it is stored under (today's, also for a legacy row)."""
    from symbench.bench.run.runner import run_suite

    log.info("recomputing %s %s (n=%d%s) into the store%s", row["model"], row["suite"], row["n"],
             f", --eps {plan.cli_eps()}" if plan.eps else "",
             ": its key predates the model code's hash, so its outcomes count only where they give the row's numbers"
             if plan.legacy else "")
    _, key = run_suite(model, plan.suite, data, model_name=row["model"], store_root=store, progress=progress,
                       num_classes=getattr(getattr(model, "card", None), "num_classes", 10))
    return key
