"""``symbench leaderboard verify``: recompute a seeded sample of a published row's examples and compare per example.

The maintainers' check of a row (RobustBench's maintainers rerun AutoAttack on a submitted model; this
reruns a sample, so it costs about a CPU minute per row, not the whole evaluation). For each chosen row:

1. load the shipped or submitted checkpoint (its sha256 must be the row's) and the row's first n
   examples (their hash must be the row's data sha256);
2. find the run's exact suite settings from its store key (leaderboard/recover.py), so every batch
   gets the attack seed it had (``_seed(suite seed, threat, eps, batch)``);
3. draw K examples (``--sample``) with a seeded generator, and run the suite's cascade on them,
   grouped by their original batch and seeded as that batch was;
4. compare with the published masks: the clean bit and the final robust bit of every sampled example.

A deterministic model must match on every sampled example. A randomized one (a row scored on the worst
of k draws) may differ on up to ``tolerance`` of its sampled examples (default 25%: an example a noisy
defense classifies correctly in some draws flips between runs). An example is recomputed in a batch of
the sampled examples rather than its full original batch, so an attack's random start can differ from
the original run's; with the suites' attacks (APGD at 100 iterations, AutoAttack's cascade) this
changes no sampled example on the rows we checked (docs/verify.md), and a row that claims an example
robust which the suite breaks is exactly what this catches.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch

log = logging.getLogger("symbench")

DEFAULT_SAMPLE = 16
RANDOMIZED_TOLERANCE = 0.25


@dataclass
class Mismatch:
    index: int          # example index in the row's data (0-based, the test set's order)
    what: str           # "clean" or "robust"
    published: bool
    recomputed: bool
    detail: str = ""


@dataclass
class RowCheck:
    row: dict
    sample: list[int] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)
    tolerance: float = 0.0
    seconds: float = 0.0
    note: str = ""

    @property
    def ok(self) -> bool:
        return len(self.mismatches) <= int(self.tolerance * len(self.sample))

    def line(self) -> str:
        r = self.row
        head = (f"{r['model']} {r['suite']} {r['threat']} eps {r.get('eps_display', r['eps'])} n={r['n']}: "
                f"{len(self.sample)} sampled example(s)")
        if self.ok and not self.mismatches:
            return f"ok    {head} match the published masks ({self.seconds:.0f} s){self.note}"
        allowed = f", {int(self.tolerance * len(self.sample))} allowed for a randomized model" if self.tolerance else ""
        items = "; ".join(f"example {m.index}: {m.what} published {m.published}, recomputed {m.recomputed}"
                          + (f" ({m.detail})" if m.detail else "") for m in self.mismatches)
        return f"{'ok' if self.ok else 'FAIL':5s} {head}, {len(self.mismatches)} mismatch(es){allowed}: {items}{self.note}"


def sample_indices(n: int, k: int, seed: int) -> list[int]:
    """K distinct example indices of 0..n-1, the same for the same (n, k, seed) everywhere."""
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(n, size=min(k, n), replace=False).tolist())


def verify_row(row: dict, outcome, *, sample: int = DEFAULT_SAMPLE, seed: int = 0, checkpoint=None, data_dir=None,
               device: str = "cpu", tolerance: float | None = None, model=None, data=None, suite=None) -> RowCheck:
    """Recompute ``sample`` of ``row``'s examples and compare them with ``outcome`` (its published masks)."""
    import time

    from symbench.bench.run.counting import CountingModel
    from symbench.bench.run.fastpath import as_computed, prepare as prepare_layout
    from symbench.bench.run.runner import _attack_batch, _seed, scoring_draws
    from symbench.leaderboard.recover import find_run, load_for_row

    t0 = time.time()
    if model is None or data is None:
        model, data = load_for_row(row, checkpoint=checkpoint, data_dir=data_dir)
    with as_computed(row):  # a --fast row's store key includes its layout
        plan = find_run(row, model, data, suite)
    note = ""
    if plan is None:  # named from the row: a submitter's suite is not a shipped one load_suite could find
        suite_id = row.get("suite_id", row["suite"])
        raise ValueError(f"{row['model']} {row['suite']}: no setting of suite {suite_id} gives the row's store key "
                         f"{row['store_key']} with this code and data (the row was computed by another version of the "
                         "model code or suite), so its attack seeds cannot be reproduced")
    if plan.legacy:
        note = "; its store key predates the model code's hash: today's code recomputed it"
    suite = plan.suite
    model = model.to(device)
    prepare_layout(model, row.get("layout"))  # recompute in the row's layout: its float rounding, not eager's
    counted = CountingModel(model, getattr(getattr(model, "card", None), "num_classes", 10))
    draws = scoring_draws(model, suite, data.x[:4])
    tol = tolerance if tolerance is not None else (RANDOMIZED_TOLERANCE if draws > 1 else 0.0)
    idx = sample_indices(row["n"], sample, seed)
    check = RowCheck(row, idx, tolerance=tol, note=note)
    specs = suite.attacks_for(row["threat"])
    attacks = [s.build(row["threat"]) for s in specs]
    bs = suite.batch_size
    by_batch: dict[int, list[int]] = {}
    for i in idx:
        by_batch.setdefault(i // bs, []).append(i)
    for b, members in sorted(by_batch.items()):
        sel = torch.tensor(members)
        x, y = data.x[sel].to(device), data.y[sel].to(device)
        with torch.no_grad():
            clean = torch.ones(len(members), dtype=torch.bool, device=device)
            for _ in range(draws):
                clean &= counted(x).argmax(1) == y
        rec = _attack_batch(counted, attacks, specs, x, y, clean, row["eps"],
                            _seed(suite.seed, plan.threat_index, plan.eps_index, b), draws=draws)
        for j, i in enumerate(members):
            if bool(clean[j]) != outcome.clean[i]:
                check.mismatches.append(Mismatch(i, "clean", outcome.clean[i], bool(clean[j])))
            elif bool(rec["robust"][j]) != outcome.robust[i]:
                by = rec["broken_by"][j]
                check.mismatches.append(Mismatch(i, "robust", outcome.robust[i], bool(rec["robust"][j]),
                                                 f"broken by {by}" if by else "no attack of the suite broke it"))
    check.seconds = time.time() - t0
    return check


def select_rows(rows: list[dict], *, model: str | None = None, suite: str | None = None) -> list[dict]:
    """The rows the boards show (largest n, newest) of attack suites, filtered by model/suite patterns."""
    import fnmatch

    from symbench.leaderboard.outcomes import needs_outcomes

    from symbench.leaderboard.outcomes import ATTACK_KIND, suite_kind

    best: dict[tuple, dict] = {}
    for r in rows:
        if not needs_outcomes(r) or suite_kind(r["suite"]) != ATTACK_KIND:  # spatial rows: a grid, not a cascade
            continue
        if model and not fnmatch.fnmatchcase(r["model"], model):
            continue
        if suite and not fnmatch.fnmatchcase(r["suite"], suite):
            continue
        k = (r["model"], r["suite"], r["threat"], round(r["eps"], 8))
        if k not in best or r["n"] >= best[k]["n"]:
            best[k] = r
    return list(best.values())
