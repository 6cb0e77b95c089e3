"""The findings section: paired comparisons from stored outcomes, one honest sentence each, nothing guessed."""
from __future__ import annotations

import torch

import symbench
from conftest import DET_SUITE, TinyCNN, make_data
from symbench.bench.run.records import read_rows
from symbench.leaderboard import findings
from symbench.leaderboard.findings import Pairing


def test_findings_pair_stored_outcomes_and_report_what_is_missing(tiny_model, tiny_data, tmp_path):
    suite = tmp_path / "det.toml"
    suite.write_text(DET_SUITE)
    rows, store = tmp_path / "rows.jsonl", tmp_path / "store"
    kw = dict(data=tiny_data, rows=rows, store=store, checks=False, progress=False)
    symbench.benchmark(tiny_model, str(suite), name="sym_at", **kw)
    torch.manual_seed(1)
    symbench.benchmark(TinyCNN().eval(), str(suite), name="plain_at", **kw)
    spec = {"question": "q?", "suite": "det", "n": 200, "also": [],
            "pairs": [Pairing("sym_at", "plain_at", "test pair"), Pairing("sym_at", "never_run", "missing pair")]}
    got = findings.compute(read_rows(rows), store, spec)
    assert [c["pair"] for c in got["comparisons"]] == [["sym_at", "plain_at"]] * 2   # both eps of the suite
    c = got["comparisons"][0]
    assert c["clean"]["significant"] and c["clean"]["diff"] > 0.3 and "better than" in c["clean"]["sentence"]
    assert c["robust"]["interval"][0][0] <= c["robust"]["acc"][0] <= c["robust"]["interval"][0][1]
    assert len(c["clean"]["mask_sha256"][0]) == 64
    assert [m["model"] for m in got["missing"]] == ["never_run"]
    text = findings.markdown(got)
    assert "| `sym_at` | `plain_at` |" in text and "never_run" in text
    # a suite n above what was run: nothing is claimed from the smaller rows
    none = findings.compute(read_rows(rows), store, {**spec, "n": 500})
    assert none["comparisons"] == [] and "No comparison is measured yet" in findings.markdown(none)


def test_shipped_spec_pairs_matched_models():
    from symbench.models import create_model

    spec = findings.load_spec()
    for p in spec["pairs"]:
        a, b = (sum(t.numel() for t in create_model(m).parameters()) for m in (p.symmetric, p.plain))
        assert 1 / 1.5 <= a / b <= 1.5, (p, a, b)   # the matched-parameter rule


def test_findings_become_a_tab_of_the_page(tmp_path):
    """A findings.json beside the rows is a board of the page: its comparison, numbers and sentence, and the
    missing pairs named as not measured."""
    import json

    from symbench.leaderboard import page as lb_page

    m = {"acc": [0.235, 0.302], "interval": [[0.21, 0.262], [0.274, 0.331]], "diff": -0.067,
         "diff_interval": [-0.094, -0.040], "p_value": 9.4e-7, "significant": True, "discordant": [59, 126],
         "mask_sha256": ["a", "b"], "sentence": "plain is better than sym."}
    found = {"question": "Does it help?", "suite": "standard", "n_required": 1000,
             "comparisons": [{"pair": ["sym", "plain"], "why": "matched", "threat": "linf", "eps": 8 / 255,
                              "eps_display": "8/255", "n": 1000, "rows": [], "robust": m, "clean": m}],
             "missing": [{"model": "other", "pair": ["other", "plain"], "how": "symbench bench --model other"}],
             "orbit": []}
    rows = tmp_path / "v1" / "rows.jsonl"
    rows.parent.mkdir()
    rows.write_text("")
    (rows.parent / "findings.json").write_text(json.dumps(found))
    res = lb_page.build(rows, plots=False)
    html, md = res.html.read_text(), res.readme.read_text()
    assert 'id="findings"' in html and "plain is better than sym." in html
    assert "-6.7" in md and "9.4e-07" in md and "symbench bench --model other" in md


def test_a_pair_measured_at_one_threat_only_names_the_missing_half():
    """Only one of the pair has its L2 row at the required n=500 (the other has n=200): the L2 comparison is
    reported missing for the other model, with the command that fills it, instead of silently left out."""
    from symbench.leaderboard import findings

    def r(model, threat, eps, n):
        return {"model": model, "suite": "standard", "threat": threat, "eps": eps, "eps_display": f"{eps:g}",
                "n": n, "robust_acc": 0.3, "clean_acc": 0.5, "variant": None}

    rows = [r("sym", "l2", 0.5, 500), r("plain", "l2", 0.5, 200)]
    spec = {"question": "q", "suite": "standard", "n": {"linf": 1000, "l2": 500},
            "pairs": [findings.Pairing("sym", "plain", "matched")]}
    got = findings.compute(rows, None, spec)
    assert got["comparisons"] == []
    assert [m["model"] for m in got["missing"]] == ["plain"]
    assert "--eps l2=0.5 --n 500" in got["missing"][0]["how"]


def test_each_spec_fills_its_own_readme_section(tmp_path):
    """The spatial spec names marker findings_spatial: its README rewrite leaves the AT section untouched."""
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- findings:begin -->\nAT text\n<!-- findings:end -->\nmiddle\n"
                      "<!-- findings_spatial:begin -->\nold\n<!-- findings_spatial:end -->\nend\n")
    spatial = findings.compute([], spec=findings.load_spec(findings.SPATIAL_SPEC))
    assert spatial["marker"] == "findings_spatial"
    assert findings.update_readme(spatial, readme)
    text = readme.read_text()
    assert "AT text" in text and "old" not in text
    assert spatial["question"] in text.split("<!-- findings_spatial:begin -->")[1]
    assert not findings.update_readme(spatial, readme)          # already current


def test_a_model_rerun_at_a_larger_n_still_pairs_at_the_common_n_and_names_the_rerun(tiny_model, tmp_path):
    """sym_at is rerun on more examples (as the AT models go to RobustBench's 10,000) and plain_at is not yet:
    the findings and `compare` pair them on the examples both have, the larger-n row is never paired with a
    smaller one, and the findings name the command that pairs them at the larger n."""
    from symbench.leaderboard.pairing import pair_models

    suite = tmp_path / "det.toml"
    suite.write_text(DET_SUITE)
    rows, store = tmp_path / "rows.jsonl", tmp_path / "store"
    kw = dict(rows=rows, store=store, checks=False, progress=False)
    small, large = make_data(n=30), make_data(n=60)
    symbench.benchmark(tiny_model, str(suite), name="sym_at", data=small, **kw)
    symbench.benchmark(tiny_model, str(suite), name="sym_at", data=large, **kw)
    torch.manual_seed(1)
    symbench.benchmark(TinyCNN().eval(), str(suite), name="plain_at", data=small, **kw)
    spec = {"question": "q?", "suite": "det", "n": 30, "also": [], "pairs": [Pairing("sym_at", "plain_at", "t")]}
    got = findings.compute(read_rows(rows), store, spec)
    assert [c["n"] for c in got["comparisons"]] == [30, 30]
    assert {m["model"] for m in got["missing"]} == {"plain_at"}
    assert all(m["how"].endswith("--n 60") for m in got["missing"])
    paired = pair_models(read_rows(rows), "sym_at", "plain_at", "det", store=store)
    assert [c.stats.n for c in paired.comparisons] == [30, 30] and not paired.refused
    # the spec asks for more than the examples both have: no claim from the smaller pair
    assert findings.compute(read_rows(rows), store, {**spec, "n": 60})["comparisons"] == []


def test_sentence_puts_each_number_beside_its_model():
    """'B is better than A: 20.0% vs 60.0%' read as B's 20%: every number sits next to its model's name."""
    from symbench.bench.run.compare import RowComparison
    from symbench.bench.run.stats import paired_comparison

    a = [True] * 20 + [False] * 80            # A right on 20 of 100
    b = [True] * 60 + [False] * 40            # B right on those 20 and 40 more
    c = RowComparison("mod_a", "mod_b", "standard", "linf", 8 / 255, "8/255", "robust", paired_comparison(a, b))
    s = c.sentence()
    assert s.startswith("mod_b is better than mod_a in robust accuracy at linf eps 8/255 (standard, n=100)")
    assert "mod_a 20.0% vs mod_b 60.0%, difference -40.0%" in s
    tie = RowComparison("mod_a", "mod_b", "standard", "linf", 8 / 255, "8/255", "clean", paired_comparison(a, a))
    assert tie.sentence().startswith("No significant difference in clean accuracy (standard, n=100): mod_a 20.0% vs mod_b 20.0%")


def test_outcomes_missing_here_name_no_local_path_and_strict_writes_nothing(tiny_model, tiny_data, tmp_path):
    """A pair whose outcomes this store lacks is listed with a command, not this machine's store path (it is
    published in the README), and ``findings --strict`` refuses before writing anything."""
    from symbench.cli import main

    suite = tmp_path / "det.toml"
    suite.write_text(DET_SUITE)
    rows, store = tmp_path / "rows.jsonl", tmp_path / "store"
    kw = dict(data=tiny_data, rows=rows, store=store, checks=False, progress=False)
    symbench.benchmark(tiny_model, str(suite), name="sym_at", **kw)
    symbench.benchmark(TinyCNN().eval(), str(suite), name="plain_at", **kw)
    spec = tmp_path / "spec.toml"
    spec.write_text('question = "q?"\nsuite = "det"\nn = 200\nalso = []\norbit = false\n'
                    '[[pairs]]\nsymmetric = "sym_at"\nplain = "plain_at"\nwhy = "test pair"\n')
    elsewhere = tmp_path / "other_store"
    got = findings.compute(read_rows(rows), elsewhere, findings.load_spec(spec))
    assert got["comparisons"] == [] and got["missing"]
    assert all(str(tmp_path) not in m["how"] and "--recompute" in m["how"] for m in got["missing"])
    assert got["missing"][0]["model"] == "sym_at / plain_at"
    out = tmp_path / "findings.json"
    args = ["leaderboard", "findings", "--rows", str(rows), "--spec", str(spec), "--out", str(out)]
    assert main(args + ["--store", str(elsewhere), "--strict"]) != 0 and not out.exists()
    assert main(args + ["--store", str(store), "--strict"]) == 0 and out.exists()
