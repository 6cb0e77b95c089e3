"""Pair two models example by example, from the user's store or the published outcomes (what ``compare`` runs).

For each (threat, eps) both models have a row at, the rows at the largest n both were run at (a model
rerun on RobustBench's 10,000 still pairs with one that has 1,000 only, at 1,000); the per-example outcomes
come from the user's store when it holds the run, else from the published ``outcomes.jsonl``, and each comparison says which it used. A pair whose rows were run on
different examples (data sha256, first-n indices, n) is refused in one line; the others are compared.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Pairing:
    comparisons: list = field(default_factory=list)       # RowComparison, one per paired (threat, eps)
    sources: list[tuple[str, str]] = field(default_factory=list)   # (where a's, where b's outcomes came from)
    refused: list[str] = field(default_factory=list)       # one line per (threat, eps) that cannot be paired


def pair_models(rows: list[dict], model_a: str, model_b: str, suite: str, *, store=None, metric: str = "robust",
                outcomes: str | Path | None = None) -> Pairing:
    """Compare ``model_a`` with ``model_b`` on ``suite``; raises ValueError when nothing can be paired."""
    from symbench.bench.run.compare import compare_rows, matching_rows, paired_rows, same_examples_problem
    from symbench.leaderboard.outcomes import resolve

    a, b = matching_rows(rows, model_a, suite), matching_rows(rows, model_b, suite)
    if not a or not b:
        missing = model_a if not a else model_b
        raise ValueError(f"no {suite!r} rows for {missing!r}: run `symbench bench --model {missing} --suite {suite}` "
                         "first")
    common = sorted(set(a) & set(b))
    if not common:
        raise ValueError(f"{model_a} and {model_b} share no (threat, eps) in suite {suite!r}")
    out = Pairing()
    pairs = paired_rows(rows, model_a, model_b, suite)
    for k in common:
        ra, rb = pairs.get(k) or (a[k], b[k])  # no n in common: the largest-n rows, refused just below
        problem = same_examples_problem(ra, rb)
        if problem:
            out.refused.append(problem)
            continue
        try:
            (oa, sa), (ob, sb) = resolve(ra, store, outcomes), resolve(rb, store, outcomes)
        except ValueError as err:  # this (threat, eps) has no outcomes anywhere: say so, pair the others
            out.refused.append(str(err))
            continue
        if oa.start != ob.start:
            out.refused.append(f"{model_a} and {model_b} at {ra['threat']} eps {ra.get('eps_display')} cover different "
                               f"examples (from index {oa.start} vs {ob.start})")
            continue
        out.comparisons.append(compare_rows(ra, rb, metric=metric,
                                            masks=lambda r: (oa if r is ra else ob).mask(metric)))
        out.sources.append((sa, sb))
    if not out.comparisons:
        raise ValueError(out.refused[0] if len(out.refused) == 1 else "; ".join(out.refused))
    return out
