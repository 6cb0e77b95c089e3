"""Leaderboard: every stored row matches the schema, pages are built from rows only, and the page works in a browser."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from symbench.bench.run.stats import accuracy_interval
from symbench.leaderboard import boards as lb_boards, browser as lb_browser, claims as lb_claims, page as lb_page
from symbench.leaderboard import rows as lb_rows
from symbench.bench.run.records import row_key
from symbench.leaderboard.robustbench_ref import REFERENCE_PATH

ROOT = Path(__file__).resolve().parents[1]
ROW_FILES = sorted((ROOT / "leaderboard").glob("v*/rows.jsonl")) + [REFERENCE_PATH]
PAPER_EPS = [0.01, 0.02, 0.03, 0.04, 0.05, 0.10]


# ------------------------------------------------------------------------------------------------
# the stored rows (CI gate)
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ROW_FILES, ids=lambda p: str(Path(p).relative_to(ROOT)))
def test_every_stored_row_matches_schema(path):
    assert lb_rows.validate_rows_file(path) == []
    keys = [row_key(r) for r in lb_rows.read_jsonl(path)]
    assert len(keys) == len(set(keys)), "the same measurement is recorded twice"


@pytest.mark.parametrize("path", ROW_FILES, ids=lambda p: str(Path(p).relative_to(ROOT)))
def test_stored_rows_only_grow_since_last_commit(path):
    if shutil.which("git") is None:
        pytest.skip("git not available")
    assert lb_rows.check_append_only(path, "HEAD") == []


def test_append_only_check_catches_an_edit(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / "leaderboard").mkdir(parents=True)
    rows = repo / "leaderboard" / "rows.jsonl"
    rows.write_text('{"a": 1}\n{"a": 2}\n')
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "-C", str(repo), "add", "."], check=True)
    subprocess.run([*git, "-C", str(repo), "commit", "-qm", "rows"], check=True)
    monkeypatch.setattr(lb_rows, "checkout_root", lambda: repo)  # check_append_only diffs against this checkout
    rows.write_text('{"a": 1}\n{"a": 2}\n{"a": 3}\n')
    assert lb_rows.check_append_only(rows) == []
    rows.write_text('{"a": 1}\n{"a": 9}\n')
    assert lb_rows.check_append_only(rows) == ["leaderboard/rows.jsonl:2: line changed or removed since HEAD"]


def test_seed_claims_are_the_papers_tables():
    claims = lb_claims.load_claims()
    by = {(c["model"], c["eps"]): c for c in claims["claims"]}
    assert (by["equivariant4", 0.03]["fgsm"], by["equivariant4", 0.03]["pgd"]) == (53.78, 23.30)
    assert (by["equivariant10", 0.03]["fgsm"], by["equivariant10", 0.03]["pgd"]) == (67.09, 52.37)
    assert (by["baseline_cnn10_pgdat", 0.03]["fgsm"], by["baseline_cnn10_pgdat", 0.03]["pgd"]) == (66.1, 54.0)
    for c in claims["claims"]:
        assert c["source"] in claims["sources"] and c["model"] in claims["models"]
        assert 0 <= c["pgd"] <= c["fgsm"] <= 100  # PGD is the stronger attack in every printed pair
    for s in claims["sources"].values():
        assert s["table"] and s["section"] and "page" in s



SEED1 = Path(__file__).resolve().parents[2] / "shared" / "seeds" / "000_7b23f56264ad1b89.txt"


@pytest.mark.skipif(not SEED1.is_file(), reason=f"seed transcript not found at {SEED1} (../shared/seeds)")
def test_table1_means_are_the_transcripts_mean_row_and_the_mean_of_its_corruptions():
    lines = SEED1.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Table 1:"))
    table = {}
    for line in lines[start + 3:start + 26]:
        cells = line.split("\t")
        if len(cells) == 21 and cells[0] not in ("", "Std"):  # skip the eps header and the std row
            table[cells[0]] = [float(c) for c in cells[1:]]
    assert len(table) == 20  # 19 corruptions + Mean
    order = ["baseline_cnn4", "cascaded4", "parallel_rot4", "parallel_rotscale4", "weighted_rotscale4"]  # its columns
    claims = lb_claims.load_claims()["corrupted_adv_claims"]
    means = {m["model"]: m for m in claims["means"]}
    odd = {(m["model"], m["eps"]): m for m in claims["mean_row_inconsistent"]}
    for k, model in enumerate(order):
        printed = table["Mean"][4 * k:4 * k + 4]
        assert means[model]["acc"] == printed and means[model]["eps"] == [0.01, 0.02, 0.03, 0.04]
        rows = [v[4 * k:4 * k + 4] for name, v in table.items() if name != "Mean"]
        for j, eps in enumerate(means[model]["eps"]):
            mean = sum(r[j] for r in rows) / 19
            if (model, eps) in odd:  # the paper's Mean disagrees with its own rows: recorded, not hidden
                assert round(mean, 2) == odd[model, eps]["mean_of_its_19_rows"] and abs(mean - printed[j]) > 0.05
            else:  # elsewhere the Mean row is the mean of the 19 corruption rows, to rounding
                assert abs(mean - printed[j]) < 0.011


def test_corrupted_adv_table_shows_the_seed_mean_beside_the_measured_one():
    rows = [{"model": "cascaded4", "suite": "corrupted_adv", "suite_id": "corrupted_adv@1", "variant": "mean/severity5", "eps": 0.02,
             "eps_display": "0.02", "clean_acc": 0.5, "robust_acc": 0.01, "n": 1900, "verdict": "trusted",
             "attacks": [{"label": "art_fgsm", "acc_after": 0.1}]},
            {"model": "cascaded4", "suite": "corrupted_adv", "suite_id": "corrupted_adv@1", "variant": "mean/severity5", "eps": 0.05,
             "eps_display": "0.05", "clean_acc": 0.5, "robust_acc": 0.0, "n": 1900, "verdict": "trusted",
             "attacks": [{"label": "art_fgsm", "acc_after": 0.05}]}]
    from symbench.leaderboard.sections import seed_corrupted_means

    t = lb_boards.corrupted_adv_table(rows, seed_corrupted_means(lb_claims.load_claims()))
    col = [c.header for c in t.cols].index("seed Table 1 %")
    assert [r.cells[col].text for r in t.rows] == ["0.1", "–"]  # 0.10% at eps 0.02; the seed has no eps 0.05

# ------------------------------------------------------------------------------------------------
# building pages from synthetic rows
# ------------------------------------------------------------------------------------------------

def fake_row(model, suite="paper", eps=8 / 255, clean=0.8, robust=0.3, fgsm=0.5, threat="linf", variant=None,
             verdict="trusted", checks=None, **extra) -> dict:
    """A schema-valid row (as tools write them) for page tests; numbers chosen by the test."""
    attacks = [] if fgsm is None else [{"label": "art_fgsm", "acc_after": fgsm}, {"label": "art_pgd[steps=40]", "acc_after": robust}]
    row = {"schema_version": 1, "model": model, "family": model.rstrip("0123456789"), "group": "C1", "params": 1000,
           "source": "symbench", "kind": "measured", "suite": suite, "suite_version": 1, "suite_sha256": "ab" * 32,
           "suite_id": f"{suite}@1#abababab", "threat": threat, "eps": eps,
           "eps_display": "8/255" if abs(eps - 8 / 255) < 1e-9 else f"{eps:g}", "variant": variant, "n": 1000, "seed": 0,
           "clean_acc": clean, "robust_acc": robust, "attacks": attacks, "ckpt_sha256": "cd" * 32,
           "data_source": "npz:test", "data_sha256": "ef" * 32, "data_split": "test", "toolkits": {"torch": "2.x"},
           "commit": "abc1234", "device": "cuda:NVIDIA H100 80GB HBM3", "wall_seconds": 1.0, "n_forward": 1, "n_backward": 1,
           "store_key": "k", "created": "2026-01-01T00:00:00+00:00",
           "checks": checks if checks is not None else {"gradients_nonzero": {"status": "pass", "detail": "ok"}},
           "verdict": verdict}
    row.update(extra)
    return row


def test_append_waits_for_another_writer_and_keeps_both_rows(tmp_path):
    """Two writers at once: the second blocks on the lock, then adds its row to the first one's file."""
    import threading

    from symbench.bench.run.records import append_rows, read_rows, rows_lock

    path = tmp_path / "rows.jsonl"
    done = threading.Event()
    with rows_lock(path):  # another writer is mid read-modify-write
        t = threading.Thread(target=lambda: (append_rows(path, [fake_row("b")]), done.set()))
        t.start()
        assert not done.wait(0.5), "append_rows wrote while another writer held the lock"
        path.write_text(json.dumps(fake_row("a")) + "\n")  # what the other writer leaves
    t.join(10)
    assert [r["model"] for r in read_rows(path)] == ["a", "b"]


def test_a_rerun_under_newer_checks_supersedes_the_old_verdict(tmp_path):
    """The same measurement judged by the same checks is appended once; judged by a newer check set (another
    checks_id) it is a new row, and the page shows the newer verdict (same n, appended last)."""
    from symbench.bench.checks import checks_id
    from symbench.bench.run.records import append_rows, read_rows

    path = tmp_path / "rows.jsonl"
    old = fake_row("m")  # a row from before checks_id existed
    new = fake_row("m", verdict="suspect", checks={"apgd_not_stronger": {"status": "fail", "detail": "APGD broke"}},
                   checks_id=checks_id({"apgd_not_stronger": 1}))
    assert append_rows(path, [old]) == 1 and append_rows(path, [old]) == 0
    assert append_rows(path, [new]) == 1 and append_rows(path, [new]) == 0
    shown, hidden = lb_boards.pick_rows(read_rows(path))
    assert [r["verdict"] for r in shown] == ["suspect"] and hidden == 1
    assert checks_id({"a": 1, "b": 2}) == checks_id({"b": 2, "a": 1}) != checks_id({"a": 1, "b": 3})


STANDARD = [("baseline_cnn10_pgdat", 0.615, 0.285, 0.40), ("baseline_cnn10_at", 0.65, 0.30, 0.485),
            ("equivariant10", 0.78, 0.01, 0.05), ("baseline_cnn4", 0.815, 0.0, 0.025)]


GEN = "generated:imagecorruptions-1.1.2:cifar10c-params-v1:seed=0"  # images made here, not the official files


def synthetic_rows() -> list[dict]:
    rows = []
    for model, base in [("equivariant4", 0.2), ("equivariant10", 0.25), ("baseline_cnn4", 0.1), ("baseline_cnn10_pgdat", 0.45)]:
        for e in PAPER_EPS:
            rows.append(fake_row(model, eps=e, clean=0.8, fgsm=base * (1 - 3 * e), robust=base * (1 - 6 * e)))
    # the threat boards: standard Linf 8/255 and L2 0.5; two AT models (their cards' recipes), n=200
    for model, clean, linf, l2 in STANDARD:
        rows.append(fake_row(model, suite="standard", clean=clean, robust=linf, fgsm=None, n=200))
        rows.append(fake_row(model, suite="standard", threat="l2", eps=0.5, clean=clean, robust=l2, fgsm=None, n=200))
    # a suspect row: gradient masking flagged
    rows.append(fake_row("cascaded4", suite="quick", clean=0.82, robust=0.61, fgsm=0.7, verdict="suspect",
                         checks={"iterative_beats_single_step": {"status": "fail", "detail": "PGD weaker than FGSM"},
                                 "gradients_nonzero": {"status": "pass", "detail": "ok"}}))
    rows.append(fake_row("cascaded4", suite="quick", eps=4 / 255, clean=0.82, robust=0.1, fgsm=0.2, verdict="unchecked",
                         checks={}, device="cpu:x86_64x2threads"))
    for model, med in [("equivariant4", 0.8), ("baseline_cnn4", 0.5)]:
        for norm, radius in [("l2", 3.0), ("linf", 0.1)]:
            rows.append(fake_row(model, suite="clever", eps=radius, threat=norm, robust=None, fgsm=None, variant="clever_u",
                                 verdict="unchecked", checks={},
                                 clever={"n_scored": 9, "median": med * radius / 3, "q1": 0.5 * med * radius / 3,
                                         "q3": 1.5 * med * radius / 3, "mean": med * radius / 3, "min": 0.01,
                                         "max": 2 * med * radius / 3, "implementation": "fast"}))
    for model, acc in [("equivariant4", 0.6), ("baseline_cnn4", 0.5)]:
        for c in ("gaussian_noise", "fog"):
            for s in (1, 3):
                rows.append(fake_row(model, suite="corruptions", eps=0.0, threat="corruptions", robust=acc - 0.05 * s,
                                     fgsm=None, variant=f"{c}/{s}", verdict="unchecked", checks={}, data_source=GEN))
            rows.append(fake_row(model, suite="corruptions", eps=0.0, threat="corruptions", robust=acc - 0.1, fgsm=None,
                                 variant=f"{c}/mean", verdict="unchecked", checks={}, data_source=GEN))
        rows.append(fake_row(model, suite="corruptions", eps=0.0, threat="corruptions", robust=acc - 0.1, fgsm=None,
                             variant="mean/all", verdict="unchecked", checks={}, data_source=GEN))
    return rows


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from symbench.bench.run.records import validate_row

    d = tmp_path_factory.mktemp("lb")
    rows = synthetic_rows()
    for r in rows:
        validate_row(r)
    (d / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = lb_page.build(d / "rows.jsonl", d)
    return d, res, rows


def test_build_writes_pages_and_plots(built):
    d, res, rows = built
    assert {p.name for p in res.plots} == {"robust_vs_eps_4layer.png", "robust_vs_eps_10layer.png", "clever.png",
                                          "corruptions.png", "board_linf.png", "board_l2.png"} | {f"model_{m}.png" for m in
                                                                ("equivariant4", "equivariant10", "baseline_cnn4",
                                                                 "baseline_cnn10_pgdat")}
    for p in res.plots:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
    md = (d / "README.md").read_text()
    page = (d / "index.html").read_text()
    assert "## Seed claims vs symbench" in md and "percentage points below the paper's PGD numbers" in md
    assert "iterative_beats_single_step" in md and "**suspect**" in md
    assert "cuda:NVIDIA H100 80GB HBM3" in md and "n = 1000" in md          # protocol: hardware and n from rows
    assert "| equivariant4 | 4-Layer Equivariant | 0.03 |" in md
    assert "## Linf 8/255" in md and "## L2 0.5" in md and "## CIFAR-10-C (generated)" in md
    assert "[baseline_cnn10_pgdat](models/baseline_cnn10_pgdat.html)" in md
    assert 'class="row apart suspect"' in page and "PGD weaker than FGSM" in page  # quick: listed, not ranked
    assert page.count("data:image/png;base64,") == 6 and "<script>" in page   # self-contained
    assert 'data-reported="1"' in page and ">Standard</a>" in page            # RobustBench rows interleaved
    assert "src=\"plots/" not in page and "http" not in page.split("<script>")[1]
    assert "an ESTIMATE, NOT A CERTIFICATE" in page
    assert {p.name for p in res.model_pages} == {f"{m}.html" for m in {r["model"] for r in rows}}


def test_claims_matched_to_paper_rows(built):
    _, _, rows = built
    matches = lb_claims.match_claims(lb_claims.load_claims(), [r for r in rows if lb_rows._is_attack(r)])
    m = next(m for m in matches if m.claim["model"] == "equivariant4" and m.claim["eps"] == 0.03)
    assert m.row is not None and m.measured_worst == pytest.approx(0.2 * (1 - 6 * 0.03))
    assert all(m.row is not None for m in matches)


def test_rebuild_is_byte_identical(built, tmp_path):
    d, res, _ = built
    files = sorted(p for p in d.rglob("*") if p.is_file())
    before = {p: p.read_bytes() for p in files}
    lb_page.build(d / "rows.jsonl", d)
    assert sorted(p for p in d.rglob("*") if p.is_file()) == files
    assert {p: p.read_bytes() for p in files} == before


def test_model_page_lists_the_remedies_of_an_escalated_row(tmp_path):
    """An escalated row (no 'skipped' key in its escalation) renders its remedies; a skipped one says why."""
    esc = fake_row("cascaded4", suite="standard", verdict="suspect")
    esc.update(escalated_robust_acc=0.072, escalation={
        "trigger": ["apgd_not_stronger"], "robust_acc": 0.072, "remedies": ["apgd_ce", "apgd_t"],
        "broken_by": {"apgd_ce": 25, "apgd_t": 5}, "surrogate": "baseline_cnn4",
        "effects": [{"remedy": "apgd", "attacked": 102, "broke": 30, "robust_acc_after": 0.072}]})
    skipped = fake_row("cascaded4", suite="standard", verdict="suspect", eps=4 / 255, escalation_skipped="--no-escalate")
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in (esc, skipped)))
    lb_page.build(tmp_path / "rows.jsonl", tmp_path, plots=False)
    html = (tmp_path / "models" / "cascaded4.html").read_text()
    assert "<b>Escalation</b>: robust 7.2" in html and "surrogate baseline_cnn4" in html
    assert "not escalated (--no-escalate)" in html


def test_build_with_few_rows_skips_missing_plots(tmp_path):
    (tmp_path / "rows.jsonl").write_text(json.dumps(fake_row("cascaded4", suite="quick")) + "\n")
    res = lb_page.build(tmp_path / "rows.jsonl", tmp_path)
    assert res.plots == []  # no paper, CLEVER or corruption rows, and a quick row is listed, not ranked: no plots
    md = (tmp_path / "README.md").read_text()
    assert "## Linf 8/255" in md and "## L2 0.5" not in md and "No `paper`-suite rows exist yet" in md
    assert "No `standard` row at this eps yet: nothing is ranked." in md and "suite quick, not standard" in md
    (tmp_path / "empty.jsonl").write_text("")
    lb_page.build(tmp_path / "empty.jsonl", tmp_path / "empty", plots=False)
    assert (tmp_path / "empty" / "index.html").is_file()


def test_build_refuses_invalid_rows(tmp_path):
    bad = fake_row("cascaded4", suite="quick")
    bad["robust_acc"] = 51.0  # percent instead of [0,1]
    (tmp_path / "rows.jsonl").write_text(json.dumps(bad) + "\n")
    with pytest.raises(ValueError, match="rows.jsonl:1"):
        lb_page.build(tmp_path / "rows.jsonl", tmp_path)
    assert not (tmp_path / "index.html").exists()


def test_cli_validate(capsys):
    from symbench.cli import main

    assert main(["leaderboard", "validate"]) == 0
    assert re.search(r"robustbench_reference.jsonl: \d+ row\(s\), ok", capsys.readouterr().out)


# ------------------------------------------------------------------------------------------------
# the page in a real browser
# ------------------------------------------------------------------------------------------------

# the `chromium` fixture lives in conftest.py (the Spatial tab's browser test uses it too)


def test_no_test_installs_a_system_package():
    """Tests have no side effects on the machine: none runs apt-get (or a pip install outside a temp venv)."""
    call = re.compile(r"""["'](apt-get|apt|dnf|yum|brew)["']\s*,""")
    found = [f"{p.name}:{i}" for p in sorted(Path(__file__).parent.glob("*.py"))
             for i, line in enumerate(p.read_text().splitlines(), 1) if call.search(line)]
    assert found == []
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.index("make browser") < ci.index("make test")  # CI installs the browser as its own step


def _visible_rows(dom: str, table_id: str) -> list[str]:
    table = re.search(rf'<table class="sortable" id="t-{table_id}".*?</table>', dom, re.S)
    assert table, f"table {table_id} missing from the DOM"
    trs = re.findall(r'<tr class="row[^"]*"[^>]*>.*?</tr>', table.group(0), re.S)
    return [tr for tr in trs if not re.match(r'<tr class="[^"]*\bhidden\b', tr)]


def _cells(tr: str) -> list[str]:
    """Each cell's visible text (tags dropped, whitespace squeezed)."""
    return [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", c.replace("<wbr>", ""))).strip()
            for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)]


# what a reader does: open the L2 tab, sort by clean accuracy, keep the AT models (the page's own
# handlers run on real click and change events)
READER = """
document.querySelector('.tabs a[data-tab="l2"]').click();
var th = Array.prototype.find.call(document.querySelectorAll('#t-l2 th'), function(t){return t.textContent.trim()==='clean %';});
th.click();
var at = document.getElementById('f-at'); at.value = 'yes'; at.dispatchEvent(new Event('change'));
"""


def test_reader_switches_tab_sorts_filters_and_opens_a_model_page(built, chromium, tmp_path):
    d, _, rows = built
    dom = lb_browser.dump_dom_after(d / "index.html", READER)
    assert 'data-js="ready"' in dom, "the page's script did not run"
    assert re.search(r'<section class="tab active" id="l2"', dom) and not re.search(r'class="tab active" id="linf"', dom)
    trs = _visible_rows(dom, "l2")
    at_models = [m for m, *_ in STANDARD if m.startswith("baseline_cnn10")]  # AT by their cards' recipes
    assert sorted(re.search(r'data-model="([^"]+)"', tr).group(1) for tr in trs) == sorted(at_models)
    assert all('data-at="yes"' in tr for tr in trs) and not any('data-reported="1"' in tr for tr in trs)
    header = re.findall(r"<th(?:\s[^>]*)?>(.*?)</th>", re.search(r'id="t-l2".*?</thead>', dom, re.S).group(0))
    col = {h: i for i, h in enumerate(header)}
    assert re.search(r'<th[^>]*aria-sort="descending"[^>]*>clean %</th>', dom)
    l2 = {r["model"]: r for r in rows if r["threat"] == "l2"}
    seen = [_cells(tr) for tr in trs]
    clean = [float(c[col["clean %"]].split()[0]) for c in seen]
    assert clean == sorted(clean, reverse=True)
    # the numbers and ranks it shows are the rows': robust % with its Wilson interval, rank bands
    # from overlapping intervals (0.485 and 0.40 of 200 overlap: both 1-2 among all four models)
    for c in seen:
        r = l2[c[col["model"]]]
        lo, hi = accuracy_interval(r["robust_acc"], r["n"])
        assert c[col["robust %"]] == f"{100 * r['robust_acc']:.1f} [{100 * lo:.1f}–{100 * hi:.1f}]"
        assert c[col["n"]].split()[0] == str(r["n"]) and c[col["rank"]] == "1–2"
        assert c[col["verdict"]].startswith("trusted")
    # open the first model's page from its link and check what it says against the rows
    href = re.search(r'<a href="(models/[^"]+)"', trs[0]).group(1)
    model = c0 = seen[0][col["model"]]
    page = lb_browser.dump_dom(d / href)
    assert f"<h1>{c0}</h1>" in page and 'data-js="ready"' in page
    r = l2[model]
    assert f"robust {100 * r['robust_acc']:.1f}%" in page and r["ckpt_sha256"][:12] in page.replace(" ", "")
    assert "gradients_nonzero" in page and "shattered or vanishing gradients" in page  # explained from docs/checks.md
    shot = lb_browser.take_full_screenshot(d / "index.html", tmp_path / "page.png", 390)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


PHONE = (390, 844)  # an iPhone 12-15 screen in CSS px


@pytest.mark.parametrize("tab", ["linf", "l2", "clever", "c10c-generated"])
def test_a_phone_shows_each_board_without_sideways_scrolling_and_its_first_ranked_row_on_the_first_screen(
        built, chromium, tab):
    """Real Chromium with a 390 px viewport (DevTools device emulation: a headless window cannot be narrower than
    500 px): the page is exactly as wide as the screen, nothing outside a table's own scroller sticks out, and the
    board's first ranked row lies entirely within the first 844 px."""
    d, _, _ = built
    got = lb_browser.measure_layout(d / "index.html", *PHONE, fragment=tab)
    assert got["viewport"][0] == PHONE[0] and got["tab"] == tab
    assert got["scrollWidth"] == PHONE[0] and got["overflowing"] == [], got
    assert got["first_ranked_top"] is not None and got["first_ranked_bottom"] <= PHONE[1], got


def test_each_ranked_board_says_which_protocol_it_ranks_and_lists_the_rest_apart(built):
    d, _, _ = built
    page = (d / "index.html").read_text()
    assert "Ranked: suite <code>standard</code> (AutoAttack: APGD-CE, APGD-T, FAB-T, Square) at Linf 8/255, n = 200" in page
    assert "Ranked: suite <code>standard</code> (AutoAttack: APGD-CE, APGD-T, FAB-T, Square) at L2 0.5, n = 200" in page
    linf = json.loads((d / "data" / "linf.json").read_text())
    listed = {r["model"]: r["listed"] for r in linf if r["kind"] == "measured"}
    assert listed == {"baseline_cnn10_pgdat": "ranked", "baseline_cnn10_at": "ranked", "equivariant10": "ranked",
                      "baseline_cnn4": "ranked", "cascaded4": "apart"}       # quick is never ranked with standard
    assert next(r for r in linf if r["model"] == "cascaded4")["why"] == "suite quick, not standard"
    ranked = [r for r in linf if r["listed"] == "ranked"]
    assert all(r["suite"] == "standard" and r["n"] == 200 for r in ranked)
    for r in linf:  # venue/paper, architecture, extra data and a parameter count for every row
        assert {"paper", "architecture", "extra_data", "params"} <= set(r) and r["architecture"]
        assert r["params"] is None or isinstance(r["params"], int)
    rb = [r for r in linf if r["listed"] == "reported"]
    assert rb and all(isinstance(r["params"], int) for r in rb if r["model"] == "robustbench:Standard")
    assert next(r for r in rb if r["model"] == "robustbench:Standard")["params"] == 36479194  # WRN-28-10, built


def test_a_smaller_n_is_listed_apart_not_ranked():
    rows = [fake_row(m, suite="standard", fgsm=None, n=n, robust=acc)
            for m, n, acc in [("a", 1000, 0.30), ("b", 1000, 0.32), ("c", 200, 0.40), ("d", 100, 0.35)]]
    board = lb_boards.threat_board(rows, [], {}, set(), "linf", 8 / 255, "linf", "Linf 8/255", "8/255")
    assert [r.record["model"] for r in board.table.sorted_rows()] == ["b", "a"] and "n = 1000" in board.protocol
    apart = {r.record["model"]: r.record["why"] for r in board.extra[0][2].rows}
    assert apart == {"c": "n=200, not 1000", "d": "n=100, not 1000"}
    from symbench.leaderboard.tables import table_markdown

    md = table_markdown(board.extra[0][2])  # the reason once, in its column (under the name only on a phone)
    assert md.count("n=200, not 1000") == 1 and md.count("n=100, not 1000") == 1


def test_committed_rows_build_the_boards(tmp_path):
    """The published rows: one row per model on each threat board, standard where it ran, claims matched."""
    src = ROOT / "leaderboard" / "v1" / "rows.jsonl"
    rows = [r for r in lb_rows.read_jsonl(src) if r.get("kind", "measured") == "measured"]
    res = lb_page.build(src, tmp_path, plots=False)
    linf = json.loads((tmp_path / "data" / "linf.json").read_text())
    mine = [r for r in linf if r["kind"] == "measured"]
    assert len(mine) == len({r["model"] for r in mine})
    with_standard = {r["model"] for r in rows if r["suite"] == "standard" and r["threat"] == "linf"}
    assert with_standard and all(r["suite"] == "standard" for r in mine if r["model"] in with_standard)
    checked = [r for r in lb_boards.pick_rows(rows)[0] if r.get("checks")]
    md = res.readme.read_text()
    assert f"of {len(checked)} checked rows trusted" in md
    assert "## CIFAR-10-C (generated)" in md and "baseline_cnn10_pgdat | CNN + AT" in md


def test_every_line_of_a_depth_plot_has_its_own_style():
    """The 10-layer plot once drew baseline_cnn10, baseline_cnn10_pgdat and weighted_rotscale10 all in grey,
    and the two AT baselines both black, so a claim marker could not be told apart."""
    from symbench.leaderboard.cards import model_cards
    from symbench.leaderboard.plots import _line_styles, _plt
    from symbench.models import list_models

    cards = model_cards(list_models())
    at = [m for m, c in cards.items() if c["adversarially_trained"]]
    assert {"baseline_cnn10_at", "baseline_cnn10_pgdat"} <= set(at)  # read from the recipes, not a name list
    for depth in (4, 10):
        shown = [m for m, c in cards.items() if c["depth"] == depth or m in at]
        styles = _line_styles(shown, cards, _plt())
        colors = [str(s["color"]) for s in styles.values()]
        assert len(set(colors)) == len(shown), styles          # a claim marker's colour names its model
        assert all(styles[m].get("ls") == "--" for m in at)   # every AT model dashed
        assert all(styles[m].get("ls", "-") == "-" for m in shown if m not in at)


def test_the_forest_plot_draws_the_reported_rows_the_board_shows():
    """RobustBench's rows the board shows by default are in its plot (grey squares, for scale), the rest are not."""
    from symbench.leaderboard.board_threat import plotted_records

    rows = [fake_row(m, suite="standard", fgsm=None, n=1000, robust=acc) for m, acc in [("a", 0.30), ("b", 0.32)]]
    refs = [{"model": f"robustbench:R{i}", "kind": "reported", "threat": "linf", "eps": 8 / 255, "clean_acc": 0.9,
             "robust_acc": 0.1 + 0.05 * i, "n": 10000} for i in range(12)]
    board = lb_boards.threat_board(rows, refs, {}, set(), "linf", 8 / 255, "linf", "Linf 8/255", "8/255")
    got = plotted_records(board)
    reported = [r for r in got if r["kind"] == "reported"]
    assert {r["model"] for r in got} >= {"a", "b"} and 0 < len(reported) < len(refs)
    assert all(r["robust_low"] < r["robust_acc"] < r["robust_high"] for r in reported)
