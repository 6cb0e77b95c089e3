"""Uncertainty of accuracies from n examples: Wilson intervals and paired comparisons (scipy does the maths).

Every accuracy symbench shows comes with its n; these turn (correct, n) into a 95% interval, and two
models' per-example outcomes on the same examples into a difference with its interval and an exact
McNemar p-value (the paired test: only the examples on which the two disagree carry information).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats


def wilson_interval(correct: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (scipy's ``binomtest(...).proportion_ci``)."""
    if n <= 0:
        return (0.0, 1.0)
    ci = stats.binomtest(int(correct), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return (float(ci.low), float(ci.high))


def accuracy_interval(acc: float | None, n: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """Wilson interval of an accuracy reported as a float over n examples (None stays None)."""
    if acc is None or not n:
        return None
    return wilson_interval(round(acc * n), n, confidence)


@dataclass(frozen=True)
class PairedComparison:
    """Model A vs model B on the same n examples."""

    n: int
    acc_a: float
    acc_b: float
    only_a: int            # examples A gets right and B wrong
    only_b: int            # examples B gets right and A wrong
    diff: float            # acc_a - acc_b
    diff_low: float        # 95% interval of the difference (paired, Wald with continuity on discordant pairs)
    diff_high: float
    p_value: float         # exact two-sided McNemar test (binomial on the discordant pairs)

    @property
    def significant(self) -> bool:
        return self.p_value < 0.05


def paired_comparison(a: list[bool], b: list[bool], confidence: float = 0.95) -> PairedComparison:
    """Compare two per-example outcome lists (True = correct/robust) on the same examples, in the same order."""
    if len(a) != len(b):
        raise ValueError(f"paired comparison needs the same examples: {len(a)} vs {len(b)} outcomes")
    n = len(a)
    if n == 0:
        raise ValueError("paired comparison of zero examples")
    only_a = sum(1 for x, y in zip(a, b) if x and not y)
    only_b = sum(1 for x, y in zip(a, b) if y and not x)
    acc_a, acc_b = sum(map(bool, a)) / n, sum(map(bool, b)) / n
    diff = (only_a - only_b) / n
    z = stats.norm.ppf(0.5 + confidence / 2)
    # variance of the mean of per-example differences d_i in {-1, 0, 1}
    var = ((only_a + only_b) / n - diff ** 2) / n
    half = float(z * math.sqrt(max(var, 0.0)) + 1 / n)
    p = 1.0 if only_a + only_b == 0 else float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)
    return PairedComparison(n, acc_a, acc_b, only_a, only_b, diff, max(-1.0, diff - half), min(1.0, diff + half), p)
