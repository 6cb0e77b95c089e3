"""The evaluation as a list of stages (bench/run/evaluate.py): rows stay what they were before the split."""
from __future__ import annotations

import json

import golden


def test_rows_equal_the_golden_rows_field_by_field(tmp_path):
    """Every case of tests/golden.py (attack + checks + orbit, defended + base + gains + escalation, unchecked,
    CLEVER, corruptions, corrupted_adv) gives the rows recorded before the refactor, key order included."""
    want = json.loads(golden.FIXTURE.read_text())
    got = golden.compute(tmp_path)
    assert list(got) == list(want)
    for case in want:
        assert len(got[case]) == len(want[case]), case
        for g, w in zip(got[case], want[case]):
            assert list(g) == list(w), (case, [k for k in g if k not in w], [k for k in w if k not in g])
            for k in w:
                assert g[k] == w[k], (case, k, g[k], w[k])
