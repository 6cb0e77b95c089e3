"""Paired comparison of two models from their stored per-example outcomes (what per-example storage is for).

Two rows of the same suite, threat and eps that were run on the same examples (same data hash, same
n) are compared example by example: both accuracies, the difference with its 95% interval, and the
exact McNemar p-value. Rows run on different examples are refused: an unpaired difference of two
n=200 accuracies says far less than it seems to.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from symbench.bench.run.stats import PairedComparison, paired_comparison


@dataclass(frozen=True)
class RowComparison:
    model_a: str
    model_b: str
    suite: str
    threat: str
    eps: float
    eps_display: str
    metric: str                    # "robust" (worst case over the suite's attacks) or "clean"
    stats: PairedComparison

    def to_json(self) -> dict:
        d = asdict(self)
        d.update(d.pop("stats"))
        d["significant"] = self.stats.significant
        return d

    def sentence(self) -> str:
        s = self.stats
        at = f" at {self.threat} eps {self.eps_display}" if self.metric == "robust" else ""
        what = f"{self.metric} accuracy{at} ({self.suite}, n={s.n})"
        # each number next to its model's name: "X is better than Y: 23.5% vs 30.2%" read as X's 23.5%
        numbers = (f"{self.model_a} {s.acc_a:.1%} vs {self.model_b} {s.acc_b:.1%}, difference {s.diff:+.1%} "
                   f"[{s.diff_low:+.1%}, {s.diff_high:+.1%}], McNemar p={s.p_value:.3g}.")
        if not s.significant:
            return f"No significant difference in {what}: {numbers}"
        better, worse = (self.model_a, self.model_b) if s.diff > 0 else (self.model_b, self.model_a)
        return f"{better} is better than {worse} in {what}: {numbers}"


def row_outcomes(row: dict, store_root: str | Path | None = None, metric: str = "robust") -> list[bool]:
    """The per-example outcomes behind a row, read from the store it names (``store_key``)."""
    from symbench.bench.run.outcomes import from_store

    return from_store(row, store_root).mask(metric)


def same_examples_problem(a: dict, b: dict) -> str | None:
    """Why two rows cannot be paired example by example (one line), or None when they can."""
    for k in ("suite", "threat"):
        if a[k] != b[k]:
            return f"rows differ in {k}: {a[k]!r} vs {b[k]!r}"
    if abs(a["eps"] - b["eps"]) > 1e-9:
        return f"rows differ in eps: {a['eps']} vs {b['eps']}"
    if (a.get("data_sha256"), a["n"]) != (b.get("data_sha256"), b["n"]):
        return (f"{a['model']} and {b['model']} were run on different examples at {a['threat']} eps "
                f"{a.get('eps_display', a['eps'])} (n {a['n']} vs {b['n']}, data {str(a.get('data_sha256'))[:12]} vs "
                f"{str(b.get('data_sha256'))[:12]}); rerun one with the other's --n and data")
    return None


def compare_rows(a: dict, b: dict, store_root: str | Path | None = None, metric: str = "robust",
                 masks=None) -> RowComparison:
    """Compare two rows example by example; refuses rows run on different examples or settings.

    ``masks(row)`` gives a row's per-example outcome for ``metric`` (default: read from ``store_root``).
    """
    problem = same_examples_problem(a, b)
    if problem:
        raise ValueError(problem)
    get = masks or (lambda r: row_outcomes(r, store_root, metric))
    ma, mb = get(a), get(b)
    if len(ma) != len(mb):
        raise ValueError(f"{a['model']} has {len(ma)} outcomes and {b['model']} {len(mb)}: not the same examples")
    stats = paired_comparison(ma, mb)
    return RowComparison(a["model"], b["model"], a["suite"], a["threat"], a["eps"], a.get("eps_display", ""),
                         metric, stats)


def rows_by_n(rows: list[dict], model: str, suite: str) -> dict[tuple, dict[int, dict]]:
    """(threat, eps) → n → the newest row of ``model`` in ``suite`` at that n."""
    out: dict[tuple, dict[int, dict]] = {}
    for r in rows:
        if r["model"] != model or r["suite"] != suite or r.get("robust_acc") is None or r.get("variant"):
            continue
        out.setdefault((r["threat"], round(r["eps"], 8)), {})[r["n"]] = r
    return out


def matching_rows(rows: list[dict], model: str, suite: str) -> dict[tuple, dict]:
    """(threat, eps) → the newest row of ``model`` in ``suite`` with the largest n (no smaller-n stand-ins)."""
    return {k: by_n[max(by_n)] for k, by_n in rows_by_n(rows, model, suite).items()}


def paired_rows(rows: list[dict], model_a: str, model_b: str, suite: str, min_n: int = 0
                ) -> dict[tuple, tuple[dict, dict]]:
    """(threat, eps) both models have → their rows at the largest n both were run at (>= ``min_n``).

    A model rerun at a larger n (RobustBench's 10,000) still pairs, at the smaller n, with one that has only
    that, instead of being refused as run on other examples; a (threat, eps) with no common n >= ``min_n``
    is left out.
    """
    a, b = rows_by_n(rows, model_a, suite), rows_by_n(rows, model_b, suite)
    out = {}
    for k in sorted(set(a) & set(b)):
        common = [n for n in set(a[k]) & set(b[k]) if n >= min_n]
        if common:
            out[k] = (a[k][max(common)], b[k][max(common)])
    return out
