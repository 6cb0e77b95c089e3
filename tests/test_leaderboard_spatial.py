"""The Spatial tab and the spatial findings (issue 24), from rows the spatial kinds really wrote on tiny data."""
from __future__ import annotations

import copy
import json
import tomllib

import numpy as np
import pytest

from symbench.bench.data import ImageData
from symbench.bench.kinds.spatial import run_rotation_curve, run_spatial
from symbench.bench.run.compare import row_outcomes
from symbench.bench.run.records import append_rows
from symbench.bench.suites import parse_suite
from symbench.leaderboard import findings
from symbench.leaderboard import page as lb_page
from symbench.leaderboard.board_spatial import spatial_board
from conftest import train_tiny

SMALL_GRID = """
name = "spatial"          # a small grid under the ranked suite's name (the store key holds the suite's sha256)
version = 1
kind = "spatial"
n = 24
seed = 0
batch_size = 12
max_rotation = 30.0
n_rotations = 5
max_translation = 3.0
n_translations = 3
random_tries = 3
finer_check_n = 8
"""

ROTATION = """
name = "rotation_small"
version = 1
kind = "rotation_curve"
n = 12
seed = 0
batch_size = 12
thetas = [0, 5, 90]
step = 1.0
finer_check_n = 4
"""


def _suite(text: str):
    return parse_suite(tomllib.loads(text), text.encode())


@pytest.fixture(scope="module")
def measured(tiny_model, tiny_data, tmp_path_factory):
    """(store, rows): spatial rows of two tiny models on the same 24 examples, and one model's angle curve."""
    store = tmp_path_factory.mktemp("spatial_store")
    data = ImageData(tiny_data.x[:24], tiny_data.y[:24], "synthetic", "tiny24", "synthetic")
    other = train_tiny(tiny_data, steps=40, seed=1)
    rows = []
    for name, model in (("tiny_a", tiny_model), ("tiny_b", other)):
        rows += run_spatial(model, _suite(SMALL_GRID), data, model_name=name, store_root=store, progress=False)
    data12 = ImageData(tiny_data.x[:12], tiny_data.y[:12], "synthetic", "tiny12", "synthetic")
    rows += run_rotation_curve(tiny_model, _suite(ROTATION), data12, model_name="tiny_a", store_root=store,
                               progress=False)
    return store, rows


def _as(row: dict, model: str, robust: float, random: float, n: int | None = None) -> dict:
    r = copy.deepcopy(row)
    r["model"], r["robust_acc"] = model, robust
    r["spatial"]["grid_acc"], r["spatial"]["random_acc"] = robust, random
    if n is not None:
        r["n"] = n
    return r


def test_spatial_board_ranks_by_robust_acc_with_random_beside(measured):
    _, rows = measured
    sp = next(r for r in rows if r["threat"] == "spatial")
    rows = [_as(sp, "lo", 0.1, 0.4), _as(sp, "hi", 0.9, 0.95), _as(sp, "mid", 0.5, 0.7), _as(sp, "few", 0.99, 1.0, n=12)]
    b = spatial_board(rows, {}, set())
    recs = [r.record for r in b.table.sorted_rows()]
    # n=24 Wilson intervals of 0.9 / 0.5 / 0.1 do not overlap: three separate ranks; n=12 is listed apart
    assert [(r["model"], r["rank_best"], r["rank_worst"]) for r in recs] == [("hi", 1, 1), ("mid", 2, 2), ("lo", 3, 3)]
    assert [r["random_acc"] for r in recs] == [0.95, 0.7, 0.4] and {r["grid_size"] for r in recs} == {45}
    heads = [c.header for c in b.table.cols]
    assert heads.index("random-10 %") == heads.index("robust %") + 1
    [(_, _, apart)] = [e for e in b.extra if e[2].id == "spatial-apart"]
    assert [r.record["model"] for r in apart.rows] == ["few"] and apart.rows[0].record["why"] == "n=12, not 24"
    assert "n = 24" in b.protocol and b.table.rows[0].cells[2].sub.startswith("[")  # the interval underneath


def test_spatial_board_without_rows_says_so():
    b = spatial_board([], {}, set())
    assert not b.table.rows and not b.extra and "nothing is ranked" in b.protocol
    for what in ("spatial", "rotation_curve", "spatial_linf"):
        assert f"no `{what}` row yet" in b.note


def test_build_renders_the_spatial_tab_plot_downloads_and_model_page(measured, tmp_path):
    _, rows = measured
    append_rows(tmp_path / "rows.jsonl", rows)   # validates against leaderboard/schema.json
    res = lb_page.build(tmp_path / "rows.jsonl", tmp_path / "site")
    site = tmp_path / "site"
    html = (site / "index.html").read_text()
    assert 'id="spatial"' in html and "random-10 %" in html and "Accuracy vs rotation angle" in html
    assert "no `spatial_linf` row yet" in html.replace("<code>", "`").replace("</code>", "`")
    assert site / "plots" / "rotation_curve.png" in res.plots and (site / "plots" / "rotation_curve.png").stat().st_size
    by = {r["model"]: r for r in rows if r["threat"] == "spatial"}
    got = json.loads((site / "data" / "spatial.json").read_text())
    assert [g["model"] for g in got] == sorted(by, key=lambda m: -by[m]["robust_acc"])
    assert all(g["random_acc"] == by[g["model"]]["spatial"]["random_acc"] for g in got)
    curve = json.loads((site / "data" / "spatial_rotation.json").read_text())
    rot = {r["eps"]: r["robust_acc"] for r in rows if r["threat"] == "rotation"}
    assert curve == [{"model": "tiny_a", "n": 12, **{f"acc@{t:g}": v for t, v in sorted(rot.items())}}]
    assert (site / "data" / "spatial_rotation.csv").is_file()
    model_page = (site / "models" / "tiny_a.html").read_text()
    assert "Spatial (±30°, ±3 px)" in model_page and "Accuracy vs rotation angle" in model_page


def test_spatial_findings_pair_the_per_example_outcomes(measured):
    store, rows = measured
    sp = {r["model"]: r for r in rows if r["threat"] == "spatial"}
    short = _as(sp["tiny_b"], "tiny_short", 0.5, 0.5, n=12)
    spec = {"question": "q", "suite": "spatial", "n": {"spatial": 24}, "labels": ["model A", "model B"],
            "protocol": "grid", "orbit": False,
            "pairs": [findings.Pairing("tiny_a", "tiny_b", "why"), findings.Pairing("tiny_a", "absent", "why"),
                      findings.Pairing("tiny_a", "tiny_short", "why")]}
    got = findings.compute(rows + [short], store, spec)
    [c] = got["comparisons"]
    a = np.array(row_outcomes(sp["tiny_a"], store, "robust"))
    b = np.array(row_outcomes(sp["tiny_b"], store, "robust"))
    assert c["pair"] == ["tiny_a", "tiny_b"] and c["n"] == 24 and c["threat"] == "spatial"
    assert c["robust"]["discordant"] == [int((a & ~b).sum()), int((~a & b).sum())]
    assert c["robust"]["diff"] == pytest.approx(a.mean() - b.mean())
    assert c["robust"]["acc"] == pytest.approx([sp["tiny_a"]["robust_acc"], sp["tiny_b"]["robust_acc"]])
    hows = {m["model"]: m["how"] for m in got["missing"]}
    assert hows["absent"] == "symbench bench --model absent --suite spatial --n 24"
    assert hows["tiny_short"] == "symbench bench --model tiny_short --suite spatial --n 24"  # no Lp --eps
    assert "orbit" not in got
    md = findings.markdown(got)
    assert "| model A | model B |" in md and "(grid)" in md
    fb = findings.board(got, set(), board_id="spatial_findings", title="Spatial findings")
    board = spatial_board(rows, {}, set(), findings=fb)
    [(_, _, t)] = [e for e in board.extra if e[2].id == "spatial_findings"]
    assert [r.record["symmetric"] for r in t.rows] == ["tiny_a"] and t.cols[5].header == "robust % model A"


def test_shipped_spatial_spec_names_the_issue_pairs():
    spec = findings.load_spec(findings.SPATIAL_SPEC)
    pairs = {(p.symmetric, p.plain) for p in spec["pairs"]}
    assert spec["suite"] == "spatial" and spec["n"] == {"spatial": 1000} and spec.get("orbit") is False
    assert {("equivariant4", "baseline_cnn4"), ("equivariant4", "baseline_cnn4_rotaug"),
            ("baseline_cnn4", "baseline_cnn4_rotaug"), ("equivariant4", "equivariant4_c8")} <= pairs
    assert {a for a, b in pairs if b == "baseline_cnn10_pgdat"} == {
        "equivariant10_pgdat", "cascaded10_pgdat", "parallel_rot10_pgdat", "baseline_cnn10_narrow_pgdat"}


def test_the_spatial_tab_renders_in_a_real_browser_and_on_a_phone(measured, tmp_path, chromium):
    """Real Chromium: a click on the Spatial tab shows the ranked spatial table (one row per model, best first)
    and the angle table; at 390 px nothing sticks out and the first ranked row is on the first screen."""
    import re

    from symbench.leaderboard import browser as lb_browser

    _, rows = measured
    append_rows(tmp_path / "rows.jsonl", rows)
    lb_page.build(tmp_path / "rows.jsonl", tmp_path / "site")
    index = tmp_path / "site" / "index.html"
    dom = lb_browser.dump_dom_after(index, "document.querySelector('.tabs a[data-tab=\"spatial\"]').click();")
    assert 'data-js="ready"' in dom, "the page's script did not run"
    board = re.search(r'<section class="([^"]*)" id="spatial"', dom)
    assert board and "active" in board.group(1).split(), "the Spatial board is not the one shown after the click"
    assert re.search(r'<section class="[^"]*\bactive\b[^"]*" id="(?!spatial")', dom) is None  # one board at a time
    table = re.search(r'<table class="sortable" id="t-spatial".*?</table>', dom, re.S).group(0)
    ranked = re.findall(r'<tr class="row[^"]*\branked\b[^"]*"[^>]*data-model="([^"]+)"', table)
    by = {r["model"]: r["robust_acc"] for r in rows if r["threat"] == "spatial"}
    assert ranked == sorted(by, key=lambda m: -by[m])
    assert "Accuracy vs rotation angle" in dom
    got = lb_browser.measure_layout(index, 390, 844, fragment="spatial")
    assert got["tab"] == "spatial" and got["scrollWidth"] == 390 and got["overflowing"] == [], got
    assert got["first_ranked_top"] is not None and got["first_ranked_bottom"] <= 844, got
