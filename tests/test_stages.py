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
                assert golden.same(g[k], w[k]), (case, k, g[k], w[k])


# ------------------------------------------------------------------------------------------------
# the stage list: dispatch, registration, and the kinds each stage applies to
# ------------------------------------------------------------------------------------------------

import pytest  # noqa: E402

from conftest import DET_SUITE, make_data  # noqa: E402
from symbench.bench.run import evaluate  # noqa: E402


def test_unknown_bench_keyword_is_a_type_error_naming_the_known_ones():
    with pytest.raises(TypeError, match="unknown keyword.*escalat"):
        evaluate.BenchConfig.of(escalat=True)
    cfg = evaluate.BenchConfig.of(evaluate.BenchConfig(n=5), escalate=True)
    assert (cfg.n, cfg.escalate, cfg.checks) == (5, True, True)


def test_a_registered_suite_kind_and_a_registered_stage_go_through_the_same_list(tiny_model, tmp_path, monkeypatch):
    """A new kind needs no branch in bench(): its runner makes the rows; a stage registered for it adds fields,
    and a stage for another kind leaves them alone."""
    from symbench.bench.suites import SUITE_KINDS

    calls = []

    def toy_runner(model, suite, data, *, model_name, store_root, device, progress):
        calls.append(model_name)
        return [{"model": model_name, "variant": "v1"}, {"model": model_name, "variant": "v2"}]

    class Toy(evaluate.Stage):
        name, kinds = "toy_fields", ("toy",)

        def __call__(self, run):
            return [{"toy": i} for i, _ in enumerate(run.rows)]

    monkeypatch.setitem(SUITE_KINDS, "toy", toy_runner)
    monkeypatch.setattr(evaluate, "STAGES", list(evaluate.STAGES))
    evaluate.register_stage(Toy(), before="escalation")
    with pytest.raises(ValueError, match="already registered"):
        evaluate.register_stage(Toy())
    (tmp_path / "toy.toml").write_text('name = "toy"\nversion = 1\nkind = "toy"\nn = 4\n')
    rows = evaluate.bench("tiny", str(tmp_path / "toy.toml"), model=tiny_model, data=make_data(n=4),
                          store=str(tmp_path / "store"), progress=False)
    assert calls == ["tiny"] and rows == [{"model": "tiny", "variant": "v1", "toy": 0},
                                          {"model": "tiny", "variant": "v2", "toy": 1}]
    (tmp_path / "det.toml").write_text(DET_SUITE.replace("n = 60", "n = 8"))
    rows = evaluate.bench("tiny", str(tmp_path / "det.toml"), model=tiny_model, data=make_data(n=8),
                          store=str(tmp_path / "store"), progress=False, checks=False)
    assert rows and all("toy" not in r for r in rows) and all(r["verdict"] == "unchecked" for r in rows)


def test_a_stage_returning_the_wrong_number_of_field_sets_is_an_error(tiny_model, tmp_path, monkeypatch):
    class Bad(evaluate.Stage):
        name = "bad"

        def __call__(self, run):
            return [{}]

    (tmp_path / "det.toml").write_text(DET_SUITE.replace("n = 60", "n = 8"))
    monkeypatch.setattr(evaluate, "STAGES", list(evaluate.STAGES))
    evaluate.register_stage(Bad())
    with pytest.raises(RuntimeError, match="stage bad returned 1 field sets for 2 rows"):
        evaluate.bench("tiny", str(tmp_path / "det.toml"), model=tiny_model, data=make_data(n=8),
                       store=str(tmp_path / "store"), progress=False, checks=False)


# ------------------------------------------------------------------------------------------------
# corrupted_adv rows carry the attack checks that apply (issue 26)
# ------------------------------------------------------------------------------------------------

CADV = """
name = "cadv_t"
version = 1
kind = "corrupted_adv"
n = 24
seed = 0
batch_size = 24
source = "generated"
corruptions = ["fog", "contrast"]
severities = [3]
spot_check_n = 8
spot_check_iters = 5
checks_m = 8
[[threats]]
norm = "linf"
eps = [0.01, 0.04]
[[attacks]]
name = "art_fgsm"
[[attacks]]
name = "art_pgd"
steps = 3
"""


def test_corrupted_adv_rows_carry_the_gradient_checks_and_the_spot_check_per_corruption(tiny_model, tmp_path,
                                                                                       monkeypatch):
    from symbench.bench import checks as checks_mod
    from symbench.bench.checks.corrupted_adv import CHECKS_FOR_CORRUPTED
    from symbench.bench.run.records import validate_row
    from symbench.leaderboard.boards import corrupted_adv_table
    from symbench.leaderboard.sections import validity_summary

    (tmp_path / "cadv.toml").write_text(CADV)
    data = make_data(n=24, size=32)
    kw = dict(model=tiny_model, data=data, store=str(tmp_path / "store"), progress=False)
    rows = evaluate.bench("tiny", str(tmp_path / "cadv.toml"), **kw)
    assert [(r["variant"], r["eps"]) for r in rows] == [("fog/3", 0.01), ("fog/3", 0.04), ("contrast/3", 0.01),
                                                        ("contrast/3", 0.04), ("mean/3", 0.01), ("mean/3", 0.04)]
    for r in rows:
        validate_row(r)
        assert list(r["checks"]) == [c for c in checks_mod.CHECKS if c in CHECKS_FOR_CORRUPTED]
        assert r["verdict"] == checks_mod.verdict_of(r["checks"]) and len(r["checks_id"]) == 12
    fog, mean = rows[1], rows[5]
    assert "APGD-CE + APGD-T (5 iterations, 3 targets)" in fog["checks"]["apgd_not_stronger"]["detail"] or \
        fog["checks"]["apgd_not_stronger"]["status"] == "pass"
    assert mean["checks"]["gradients_nonzero"]["detail"].startswith("worst of 2 corruptions")
    worst = max((rows[1], rows[3]), key=lambda r: {"skip": 0, "pass": 1, "warn": 2, "fail": 3}[
        r["checks"]["apgd_not_stronger"]["status"]])
    assert mean["checks"]["apgd_not_stronger"]["status"] == worst["checks"]["apgd_not_stronger"]["status"]
    # a rerun reads every check from the per-corruption stores
    monkeypatch.setattr(checks_mod, "run_checks", lambda *a, **k: pytest.fail("checks recomputed"))
    again = evaluate.bench("tiny", str(tmp_path / "cadv.toml"), **kw)
    assert [r["checks"] for r in again] == [r["checks"] for r in rows]
    # the board marks a mean row whose spot check failed somewhere, or that has no checks, as an upper bound
    unchecked = [{k: v for k, v in r.items() if k not in ("checks", "checks_id")} | {"verdict": "unchecked"}
                 for r in rows]
    t = corrupted_adv_table(unchecked + [])
    assert all(row.cells[5].text.startswith("≥") for row in t.rows if row.record["robust_acc"])
    v = validity_summary(unchecked)
    assert "6 cadv_t row(s): FGSM + PGD on corrupted images, run before their checks existed" in v["sentence"]
