"""Intervals and paired tests against hand-computed answers."""
import pytest

from symbench.bench.run.stats import accuracy_interval, paired_comparison, wilson_interval


def test_wilson_interval_matches_the_closed_form():
    # p = 57/200, z = 1.96: centre (p + z²/2n)/(1 + z²/n), half-width z·sqrt(p(1-p)/n + z²/4n²)/(1 + z²/n)
    lo, hi = wilson_interval(57, 200)
    assert lo == pytest.approx(0.22695, abs=1e-4) and hi == pytest.approx(0.35115, abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == pytest.approx(1.0)
    assert accuracy_interval(0.285, 200) == wilson_interval(57, 200) and accuracy_interval(None, 5) is None


def test_mcnemar_is_the_exact_binomial_on_discordant_pairs():
    a = [True] * 30 + [False] * 70
    b = [True] * 20 + [False] * 80          # A right on 10 examples where B is wrong, never the reverse
    c = paired_comparison(a, b)
    assert (c.only_a, c.only_b, c.diff) == (10, 0, pytest.approx(0.1))
    assert c.p_value == pytest.approx(2 * 0.5 ** 10) and c.significant
    assert c.diff_low > 0 and c.diff_high < 0.2
    same = paired_comparison(a, a)
    assert same.p_value == 1.0 and not same.significant and same.diff == 0
    with pytest.raises(ValueError, match="same examples"):
        paired_comparison(a, b[:50])
