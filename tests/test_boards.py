"""Boards: which row stands for a model, honest rank bands, intervals, escaping, atomic plots, downloads."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from symbench.bench.run.records import validate_row
from symbench.bench.run.stats import accuracy_interval
from symbench.leaderboard import boards as lb, page as lb_page
from symbench.leaderboard.claims import load_claims
from symbench.leaderboard.sections import validity_summary

EPS = 8 / 255


def row(model, suite="standard", threat="linf", eps=EPS, clean=0.8, robust=0.3, n=200, verdict="trusted",
        checks=None, **extra) -> dict:
    """A schema-valid row with the numbers a test picks."""
    r = {"schema_version": 1, "model": model, "family": "baseline", "group": "C1", "params": 1000, "source": "symbench",
         "kind": "measured", "suite": suite, "suite_version": 1, "suite_sha256": "ab" * 32,
         "suite_id": f"{suite}@1#abababab", "threat": threat, "eps": eps,
         "eps_display": "8/255" if abs(eps - EPS) < 1e-9 else f"{eps:g}", "variant": None, "n": n, "seed": 0,
         "clean_acc": clean, "robust_acc": robust, "attacks": [{"label": "apgd_ce", "acc_after": robust}],
         "ckpt_sha256": "cd" * 32, "data_source": "npz:test", "data_sha256": "ef" * 32, "data_split": "test",
         "toolkits": {"torch": "2.x"}, "commit": "abc1234", "device": "cpu:test", "wall_seconds": 1.0, "n_forward": 1,
         "n_backward": 1, "store_key": "k", "created": "2026-01-01T00:00:00+00:00",
         "checks": checks if checks is not None else {"gradients_nonzero": {"status": "pass", "detail": "ok"}},
         "verdict": verdict}
    r.update(extra)
    validate_row(r)
    return r


def test_a_smaller_n_rerun_never_replaces_a_larger_n_row():
    big, small, same = row("m", n=1000, robust=0.30), row("m", n=100, robust=0.90), row("m", n=1000, robust=0.31)
    kept, hidden = lb.pick_rows([big, small])
    assert kept == [big] and hidden == 1
    kept, _ = lb.pick_rows([big, small, same])  # a rerun at the same n is the newer measurement
    assert kept == [same]


def test_rank_bands_tie_overlapping_intervals_only():
    # a: [0.50, 0.60], b overlaps a, c is clearly below both
    bands = lb.rank_bands([(0.55, 0.50, 0.60), (0.52, 0.47, 0.57), (0.10, 0.05, 0.15)])
    assert bands == [(1, 2), (1, 2), (3, 3)]


def test_threat_board_ranks_one_protocol_with_wilson_intervals_and_lists_the_rest_apart():
    rows = [row("a", suite="quick", robust=0.60, n=500), row("a", suite="standard", robust=0.40, n=200),
            row("b", suite="quick", robust=0.38, n=500), row("c", suite="standard", robust=0.05, n=200),
            row("d", suite="standard", robust=0.39, n=200)]
    refs = [dict(row("robustbench:Standard", suite="robustbench", robust=0.0, clean=0.95, n=10000), kind="reported",
                 verdict="reported", checks={}),
            dict(row("robustbench:Strong", suite="robustbench", robust=0.6, clean=0.9, n=10000), kind="reported",
                 verdict="reported", checks={})]
    b = lb.threat_board(rows, refs, {}, {"a", "b", "c", "d"}, "linf", EPS, "linf", "Linf", "8/255")
    assert "suite `standard`" in b.protocol and "n = 200" in b.protocol
    measured = [r.record for r in b.table.sorted_rows()]
    assert [(r["model"], r["suite"]) for r in measured] == [("a", "standard"), ("d", "standard"), ("c", "standard")]
    lo, hi = accuracy_interval(0.40, 200)
    assert (measured[0]["robust_low"], measured[0]["robust_high"]) == (lo, hi)
    # a (40% of 200) and d (39% of 200) overlap: tied at 1-2; c is below both
    assert [(r["rank_best"], r["rank_worst"]) for r in measured] == [(1, 2), (1, 2), (3, 3)]
    ranks = {r.record["model"]: r.cells[0].text for r in b.table.rows}
    assert ranks == {"a": "1–2", "d": "1–2", "c": "3"}
    # the quick row is listed apart, never ranked among standard rows; RobustBench's in a table of its own
    (_, _, apart), (_, _, reported) = b.extra
    assert [(r.record["model"], r.record["why"]) for r in apart.rows] == [("b", "suite quick, not standard")]
    order = [r.record["model"] for r in reported.sorted_rows()]
    assert order == ["robustbench:Strong", "robustbench:Standard"]
    assert all("reported" in r.cls.split() and r.attrs["reported"] == "1" for r in reported.rows)
    # RobustBench's 10,000 images against a ranking on 200: the reader is told the intervals are not alike
    (_, note, _) = b.extra[1]
    assert "on 200 images, not 10,000" in note
    full = lb.threat_board([dict(r, n=10000) for r in rows], refs, {}, {"a", "b", "c", "d"}, "linf", EPS, "linf",
                           "Linf", "8/255")
    assert "same 10,000 images" in full.extra[1][1]
    assert "  " not in note and "  " not in full.extra[1][1]


def test_defense_gain_interval_is_newcombes():
    lo, hi = lb.diff_interval(56 / 70, 70, 48 / 80, 80)  # Newcombe (1998), Table II example: 0.0524 to 0.3339
    assert (round(lo, 4), round(hi, 4)) == (0.0524, 0.3339)
    d = row("m+def", suite="adaptive", robust=0.29, n=100, base_model="m", base_clean_acc=0.64, base_robust_acc=0.27)
    b = lb.defense_board([d], {}, {"m+def", "m"})
    rec = b.table.rows[0].record
    assert rec["gain"] == pytest.approx(0.02) and rec["gain_low"] < 0 < rec["gain_high"]  # no evidence it helps


def test_defense_gain_is_paired_when_the_row_has_it():
    """A row with the paired gain shows its interval and p-value; 'no significant gain' when the interval holds 0."""
    g = {"diff": 0.02, "low": -0.03, "high": 0.07, "p_value": 0.69, "significant": False}
    d = row("m+def", suite="adaptive", robust=0.29, n=100, base_model="m", base_clean_acc=0.64, base_robust_acc=0.27,
            defense_gain=g)
    r = lb.defense_board([d], {}, {"m+def", "m"}).table.rows[0]
    assert (r.record["gain_low"], r.record["gain_high"], r.record["gain_p_value"]) == (-0.03, 0.07, 0.69)
    assert r.record["gain_paired"] and "no significant gain" in " ".join(c.sub for c in r.cells)
    sig = dict(g, diff=0.10, low=0.04, high=0.16, p_value=0.001, significant=True)
    r = lb.defense_board([dict(d, defense_gain=sig)], {}, {"m+def", "m"}).table.rows[0]
    assert "no significant gain" not in " ".join(c.sub for c in r.cells)
    # an escalated row ranks by its escalated number; its gain cell says the gain is the suite's, not the headline's
    esc = lb.defense_board([dict(d, escalated_robust_acc=0.2)], {}, {"m+def", "m"}).table.rows[0]
    assert "attacked the defended model only" in " ".join(c.title or "" for c in esc.cells)
    assert "attacked the defended model only" not in " ".join(c.title or "" for c in r.cells)


def test_defense_board_shows_the_full_budget_rows_beside_the_ranked_adaptive_ones():
    """adaptive ranks; each defended model's adaptive_full row (or 'not yet measured') is its own table."""
    g = {"diff": -0.04, "low": -0.09, "high": 0.01, "p_value": 0.13, "significant": False}
    kw = dict(n=100, base_model="m", base_clean_acc=0.64, base_robust_acc=0.27)
    rows = [row("m+def", suite="adaptive", robust=0.29, **kw), row("m+def", suite="adaptive_full", robust=0.23, **kw,
            defense_gain=g), row("k+def", suite="adaptive", robust=0.01, **dict(kw, base_model="k"))]
    b = lb.defense_board(rows, {}, {"m+def", "m", "k+def", "k"})
    assert [r.record["model"] for r in b.table.rows] == ["m+def", "k+def"]
    assert b.table.rows[0].record["robust_acc"] == 0.29  # adaptive still ranks
    (title, _, full), = [e for e in b.extra if "adaptive_full" in e[0]]
    by = {r.record["model"]: r.record for r in full.rows}
    assert by["m+def"]["measured"] and by["m+def"]["robust_acc"] == 0.23 and by["m+def"]["gain_p_value"] == 0.13
    assert not by["k+def"]["measured"] and "not yet measured" in [c.text for c in full.rows[0].cells]
    assert not [e for e in lb.defense_board([], {}, set()).extra if "adaptive_full" in e[0]]  # no defended model


def test_eps_curve_is_the_worst_case_where_measured_and_marks_upper_bounds():
    """paper_worst replaces the seed-protocol paper row at its eps; a paper row with survivors and no passing
    APGD spot check is shown as an upper bound ('≥'); one that nothing survived is exact."""
    seed = [{"label": "art_fgsm", "acc_after": 0.5}, {"label": "art_pgd[steps=40]", "acc_after": 0.38}]
    worst = seed + [{"label": "apgd_ce", "acc_after": 0.35}, {"label": "apgd_t", "acc_after": 0.34}]
    rows = [row("at", suite="paper", eps=0.03, robust=0.38, n=1000, attacks=seed),
            row("at", suite="paper_worst", eps=0.03, robust=0.34, n=200, attacks=worst),
            row("at", suite="paper", eps=0.01, robust=0.52, n=1000, attacks=seed),
            row("plain", suite="paper", eps=0.03, robust=0.0, n=1000, attacks=seed),
            row("plain", suite="paper", eps=0.01, robust=0.02, n=1000, attacks=seed,
                checks={"apgd_not_stronger": {"status": "pass", "detail": "ok"}})]
    b = lb.eps_board(rows, {}, {"at", "plain"}, [])
    every = b.table.rows + [r for _, _, t in b.extra for r in t.rows]
    assert [r.record["model"] for r in b.table.rows] == ["at"]      # paper_worst at the headline eps: ranked
    assert [r.record["model"] for r in b.extra[0][2].rows] == ["plain"]  # the seed protocol only: listed apart
    rec = {r.record["model"]: r.record for r in every}
    assert rec["at"]["robust_acc@0.03"] == 0.34 and rec["at"]["suite@0.03"] == "paper_worst"
    assert rec["at"]["seed_pgd_acc@0.03"] == 0.38
    assert rec["at"]["basis@0.01"] == "seed" and rec["plain"]["basis@0.01"] == rec["plain"]["basis@0.03"] == "worst"
    texts = {r.record["model"]: [c.text for c in r.cells] for r in every}
    assert any(t.startswith("≥") for t in texts["at"]) and not any(t.startswith("≥") for t in texts["plain"])


def test_validity_counts_only_rows_that_carry_checks():
    rows = [row("a"), row("b", verdict="suspect", checks={"x": {"status": "fail", "detail": "d"}}),
            row("c", suite="corruptions", threat="corruptions", eps=0.0, checks={}, verdict="unchecked",
                variant="fog/1")]
    v = validity_summary(rows)
    assert (v["checked"], v["trusted"], v["without_checks"]) == (2, 1, 1)
    assert v["sentence"].startswith("1 of 2 checked rows trusted")


def test_seed_cnn_at_is_the_pgd_trained_baseline_as_the_readme_says():
    claims = load_claims()
    assert claims["models"]["baseline_cnn10_pgdat"]["paper_label"] == "CNN + AT"
    assert "baseline_cnn10_at" not in claims["models"]
    from symbench.models import get_card

    assert get_card("baseline_cnn10_pgdat").recipe.adv == "pgd"
    readme = Path(__file__).resolve().parents[1] / "README.md"
    if readme.is_file():  # the model named right before the README's "CNN+AT" is the one the claims use
        text = " ".join(readme.read_text().split())
        before = text[:text.index('the seed\'s "CNN+AT"')]
        assert before.rsplit("`", 2)[-2] == "baseline_cnn10_pgdat"


HOSTILE = '<img src=x onerror=alert(1)>'


def test_hostile_strings_reach_no_page_as_markup(tmp_path):
    rows = [row("cascaded4", verdict="suspect",
                checks={"gradients_nonzero": {"status": "fail", "detail": f"bad {HOSTILE} | cell"}}),
            row("baseline_cnn4", threat="l2", eps=0.5, device=f"cpu {HOSTILE}")]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = lb_page.build(tmp_path / "rows.jsonl", tmp_path, plots=False)
    md = res.readme.read_text()
    assert "<img" not in md and "&lt;img src=x onerror=alert(1)&gt;" in md and "\\| cell" in md
    for p in [res.html, *res.model_pages]:
        text = p.read_text()
        assert "<img src=x" not in text, p
    assert "&lt;img src=x onerror=alert(1)&gt;" in res.html.read_text()


def test_plots_are_written_atomically(tmp_path):
    from symbench.leaderboard.plots import _plt, _save

    plt = _plt()
    target = tmp_path / "p.png"
    fig, _ = plt.subplots()
    _save(fig, target)
    good = target.read_bytes()
    assert good[:8] == b"\x89PNG\r\n\x1a\n"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # a new plot: the umask's mode, not mkstemp's 0600
    target.chmod(0o640)
    fig, _ = plt.subplots()
    _save(fig, target)
    assert target.stat().st_mode & 0o777 == 0o640           # a replaced plot keeps its mode

    fig, _ = plt.subplots()

    def dies_halfway(f, **kw):
        f.write(b"\x89PNG half")
        raise KeyboardInterrupt

    fig.savefig = dies_halfway
    with pytest.raises(KeyboardInterrupt):
        _save(fig, target)
    assert target.read_bytes() == good                      # the old plot stays whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.png"]  # no temp file left behind


def test_every_board_downloads_as_csv_and_json_with_the_rows_numbers(tmp_path):
    rows = [row("a", robust=0.4), row("b", robust=0.1), row("a", threat="l2", eps=0.5, robust=0.5),
            row("a", suite="corruptions", threat="corruptions", eps=0.0, robust=0.6, variant="mean/all", checks={},
                verdict="unchecked", data_source="generated:imagecorruptions")]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = lb_page.build(tmp_path / "rows.jsonl", tmp_path, plots=False)
    names = {p.name for p in res.downloads}
    assert {"linf.csv", "linf.json", "l2.csv", "l2.json", "c10c-generated.csv", "claims.json", "models.csv"} <= names
    linf = json.loads((tmp_path / "data" / "linf.json").read_text())
    mine = {r["model"]: r for r in linf if r["kind"] == "measured"}
    assert mine["a"]["robust_acc"] == 0.4 and mine["b"]["robust_acc"] == 0.1 and mine["a"]["n"] == 200
    assert "CIFAR-10-C (generated)" in res.html.read_text()
    assert "robust_low" in (tmp_path / "data" / "linf.csv").read_text().splitlines()[0]


def test_a_page_built_elsewhere_links_its_own_copy_of_the_rows(tmp_path):
    src = tmp_path / "v1" / "rows.jsonl"
    src.parent.mkdir()
    src.write_text(json.dumps(row("a")) + "\n")
    res = lb_page.build(src, tmp_path / "site", plots=False)
    assert (tmp_path / "site" / "data" / "rows.jsonl").read_bytes() == src.read_bytes()
    assert '<a href="data/rows.jsonl">rows.jsonl</a>' in res.html.read_text()
    assert '<a href="../data/rows.jsonl">rows.jsonl</a>' in res.model_pages[0].read_text()
    lb_page.build(src, src.parent, plots=False)  # built beside its rows: links them, copies nothing
    assert '<a href="rows.jsonl">' in (src.parent / "index.html").read_text() and not (src.parent / "data" / "rows.jsonl").exists()


def test_audit_names_trusted_rows_that_no_apgd_result_covers():
    """A trusted FGSM+PGD row with survivors and no spot check is unaudited; 2% or less, a suite with APGD, or a
    passing spot check covers a row; a failed spot check is reported as failed."""
    from symbench.leaderboard.audit import audit, summary

    spot = lambda s: {"apgd_not_stronger": {"status": s, "detail": s}}  # noqa: E731
    rows = [row("a", suite="paper", eps=0.01, robust=0.30), row("b", suite="paper", eps=0.01, robust=0.02),
            row("c", suite="standard", robust=0.30), row("d", suite="paper", eps=0.01, robust=0.30, checks=spot("pass")),
            row("e", suite="paper", eps=0.01, robust=0.30, checks=spot("fail")),
            row("f", suite="paper", eps=0.01, robust=0.30, verdict="suspect", checks=spot("fail"))]
    got = {e["model"]: e["status"] for e in audit(rows)}
    assert got == {"a": "unaudited", "b": "≤ 2 points", "c": "apgd in suite", "d": "spot check", "e": "failed"}
    assert "1 unaudited" in summary(audit(rows))


def test_the_published_rows_build_the_same_pages_under_two_hash_seeds(tmp_path):
    """Two builds of the same rows give the same bytes: no page may depend on set or dict-of-set order, which
    moves with PYTHONHASHSEED (the eps board once ordered ties by set order, so every rebuild differed)."""
    import subprocess
    import sys

    rows = Path(__file__).resolve().parents[1] / "leaderboard" / "v1" / "rows.jsonl"
    if not rows.exists():
        pytest.skip(f"no published rows at {rows} (an installed wheel without the repository)")
    code = "import sys; from symbench.leaderboard import page; page.build(sys.argv[1], sys.argv[2], plots=False)"
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "SYMBENCH_HOME": str(tmp_path / "home")}
        subprocess.run([sys.executable, "-c", code, str(rows), str(tmp_path / seed)], env=env, check=True)
    files = {seed: {p.relative_to(tmp_path / seed): p.read_bytes() for p in (tmp_path / seed).rglob("*") if p.is_file()}
             for seed in ("1", "2")}
    assert files["1"].keys() == files["2"].keys() and len(files["1"]) > 10
    differ = sorted(str(p) for p in files["1"] if files["1"][p] != files["2"][p])
    assert not differ, f"pages that differ between hash seeds: {differ}"
