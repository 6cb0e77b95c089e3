"""Published per-example outcomes (issue 23): packed masks beside the rows, pairing from them, validate, verify."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from symbench.bench.run import evaluate
from symbench.bench.run.outcomes import RowOutcome, pack, unpack
from symbench.bench.run.records import read_rows
from symbench.leaderboard import outcomes as oc
from symbench.leaderboard.publish import publish_rows
from conftest import DET_SUITE, TinyCNN


def test_pack_round_trips_and_refuses_wrong_lengths():
    mask = [bool(i % 3) for i in range(1001)]
    assert unpack(pack(mask), 1001) == mask
    assert len(pack(mask)) <= 4 * ((1001 + 7) // 8 + 2) // 3  # about n/6 characters: a few MB for the board
    with pytest.raises(ValueError):
        unpack(pack(mask), 1000 - 16)
    with pytest.raises(ValueError, match="past its last"):
        unpack(pack([True] * 16), 10)


def test_outcome_digest_changes_with_one_bit():
    o = RowOutcome(n=8, clean=[True] * 8, robust=[True, False] * 4, after={"a": [True, False] * 4})
    flipped = RowOutcome(n=8, clean=[True] * 8, robust=[True, True] + [True, False] * 3, after=o.after)
    assert o.sha256() != flipped.sha256()
    assert RowOutcome.from_json(json.loads(json.dumps(o.to_json()))) == o


@pytest.fixture(scope="module")
def published(tmp_path_factory, tiny_model, tiny_data):
    """Two models run on the same 60 examples and published (with outcomes) to a board of their own."""
    from symbench.bench.data import ImageData

    root = tmp_path_factory.mktemp("pub")
    suite = root / "det.toml"
    suite.write_text(DET_SUITE)
    data = ImageData(tiny_data.x[:60], tiny_data.y[:60], "synthetic-60", tiny_data.sha256 + ":60")
    other = TinyCNN()  # untrained: a weaker model on the same examples
    rows = []
    for name, m in (("tiny_a", tiny_model), ("tiny_b", other.eval())):
        rows += evaluate.bench(name, str(suite), model=m, data=data, store=str(root / "store"), progress=False,
                               checks=False, out=str(root / "mine.jsonl"))
    board = root / "board" / "rows.jsonl"
    publish_rows(rows, board, force=True, store=root / "store")
    return {"root": root, "board": board, "rows": rows, "suite": suite, "data": data,
            "models": {"tiny_a": tiny_model, "tiny_b": other.eval()}}


def test_publish_writes_outcomes_that_validate(published):
    board = published["board"]
    rows = read_rows(board)
    assert rows and all(r["outcomes_sha256"] for r in rows)
    index = oc.load_index(oc.beside(board))
    assert len(index.records) == len(rows)  # one record per (run, threat, eps)
    for r in rows:
        got = index.get(r)
        assert got.disagreements(r) == [] and got.sha256() == r["outcomes_sha256"]
    assert oc.validate(board) == ([], 0)


def test_publishing_without_the_store_is_refused(published, tmp_path):
    with pytest.raises(ValueError, match="without its per-example outcomes"):
        publish_rows(published["rows"], tmp_path / "rows.jsonl", force=True, store=tmp_path / "empty")
    assert not (tmp_path / "rows.jsonl").exists() and not (tmp_path / "outcomes.jsonl").exists()


def _copy_board(published, tmp_path) -> Path:
    board = tmp_path / "board" / "rows.jsonl"
    shutil.copytree(published["board"].parent, board.parent)
    return board


def _board_before_outcomes(published, tmp_path, pending: bool = True) -> tuple[Path, list[dict]]:
    """A copy of the board as it was before outcomes were published: rows without ``outcomes_sha256``, no
    outcomes file, and (``pending``) every run on the pending list."""
    board = _copy_board(published, tmp_path)
    oc.beside(board).write_text("")
    bare = [{k: v for k, v in r.items() if k != "outcomes_sha256"} for r in read_rows(board)]
    board.write_text("".join(json.dumps(r) + "\n" for r in bare))
    if pending:
        oc.write_pending(board, {oc.key_of(r) for r in bare})
    return board, bare


def _edit_record(path: Path, edit) -> None:
    lines = path.read_text().splitlines()
    rec = json.loads(lines[0])
    out = RowOutcome.from_json(rec["outcome"])
    out = edit(out)
    rec["outcome"], rec["sha256"] = out.to_json(), out.sha256()  # a careful forger recomputes the digest
    lines[0] = json.dumps(rec)
    path.write_text("\n".join(lines) + "\n")


def test_validate_fails_on_masks_that_disagree_with_the_row(published, tmp_path):
    board = _copy_board(published, tmp_path)

    def flip_robust(o):
        i = o.robust.index(False) if False in o.robust else 0
        robust = list(o.robust)
        robust[i] = not robust[i]
        return RowOutcome(o.n, o.clean, robust, o.after, o.escalated, o.draws, o.clean_hits, o.robust_hits)

    _edit_record(oc.beside(board), flip_robust)
    errors, _ = oc.validate(board)
    assert errors and any("points at outcomes" in e or "robust_acc" in e for e in errors)


def test_validate_fails_on_a_row_without_outcomes_unless_pending(published, tmp_path):
    board, rows = _board_before_outcomes(published, tmp_path, pending=False)
    errors, waiting = oc.validate(board)
    assert len(errors) == len(rows) and waiting == 0
    oc.write_pending(board, {oc.key_of(r) for r in rows})
    assert oc.validate(board) == ([], len(rows))  # listed as published before outcomes existed


def test_publishing_a_pending_run_again_with_its_outcomes_takes_it_off_the_pending_list(published, tmp_path):
    """A run published before outcomes existed, rerun (e.g. escalated) and published with its outcomes: the
    pending entry goes, so validate passes without a hand edit."""
    board, rows = _board_before_outcomes(published, tmp_path)
    again = next(r for r in published["rows"] if r["model"] == "tiny_a")
    publish_rows([dict(again, escalation_id="0123456789ab")], board, force=True, store=published["root"] / "store")
    left = oc.read_pending(board)
    assert oc.key_of(again) not in left and len(left) == len(rows) - 1
    errors, waiting = oc.validate(board)
    assert not errors and waiting == len(rows) - 1


def test_compare_pairs_from_published_outcomes_with_an_empty_store(published, tmp_path):
    import symbench

    df = symbench.compare("tiny_a", "tiny_b", suite="det", rows=published["board"], store=tmp_path / "empty",
                          outcomes=oc.beside(published["board"]))
    assert len(df) == 2 and all(s.startswith("published") for s in df["source_a"])
    from_store = symbench.compare("tiny_a", "tiny_b", suite="det", rows=published["board"],
                                  store=published["root"] / "store")
    assert all(s.startswith("store") for s in from_store["source_a"])
    cols = ["acc_a", "acc_b", "diff", "p_value", "only_a", "only_b"]
    assert df[cols].equals(from_store[cols])  # the same numbers either way


def test_compare_refuses_rows_on_other_examples_in_one_line(published, tmp_path):
    import symbench

    rows = read_rows(published["board"])
    b = [dict(r, n=r["n"] - 1) for r in rows if r["model"] == "tiny_b"]
    mixed = tmp_path / "rows.jsonl"
    mixed.write_text("".join(json.dumps(r) + "\n" for r in [r for r in rows if r["model"] == "tiny_a"] + b))
    with pytest.raises(ValueError, match="different examples") as err:
        symbench.compare("tiny_a", "tiny_b", suite="det", rows=mixed, outcomes=oc.beside(published["board"]))
    assert "\n" not in str(err.value).split(";")[0]


def test_verify_passes_on_a_published_row_and_names_a_flipped_example(published, tmp_path):
    from symbench.leaderboard.verify import verify_row

    row = next(r for r in read_rows(published["board"]) if r["model"] == "tiny_a")
    outcome = oc.load_index(oc.beside(published["board"])).get(row)
    kw = dict(sample=12, model=published["models"]["tiny_a"], data=published["data"], suite=published["suite"])
    check = verify_row(row, outcome, **kw)
    assert check.ok and not check.mismatches, check.line()
    i = check.sample[0]
    robust = list(outcome.robust)
    robust[i] = not robust[i]
    forged = RowOutcome(outcome.n, outcome.clean, robust, outcome.after)
    bad = verify_row(row, forged, **kw)
    assert not bad.ok and [m.index for m in bad.mismatches] == [i]
    assert f"example {i}" in bad.line() and bad.line().startswith("FAIL")


REPO = Path(__file__).resolve().parents[1]
README_COMPARE = 'symbench.compare("equivariant10_pgdat", "baseline_cnn10_narrow_pgdat", suite="standard")'


def test_readme_compare_line_gives_the_published_findings_with_no_store(tmp_path, monkeypatch):
    """The README's notebook line on a fresh install (empty $SYMBENCH_HOME): the published outcomes alone give the
    findings' paired difference and McNemar p, computing nothing."""
    import symbench
    from symbench.bench.run import runner

    assert README_COMPARE in (REPO / "README.md").read_text()
    monkeypatch.setenv("SYMBENCH_HOME", str(tmp_path / "fresh"))
    monkeypatch.setattr(runner, "run_suite", lambda *a, **k: pytest.fail("compare computed something"))
    df = eval(README_COMPARE, {"symbench": symbench})
    findings = json.loads((REPO / "leaderboard" / "v1" / "findings.json").read_text())
    want = [c for c in findings["comparisons"] if c["pair"] == ["equivariant10_pgdat", "baseline_cnn10_narrow_pgdat"]]
    assert len(df) == len(want) == 2 and not df.attrs["refused"]
    for c in want:
        (got,) = [r for r in df.to_dict(orient="records") if r["threat"] == c["threat"]]
        assert got["n"] == c["n"] and got["source_a"].startswith("published") and got["source_b"].startswith("published")
        assert (got["diff"], got["p_value"]) == (pytest.approx(c["robust"]["diff"], abs=1e-12),
                                                 pytest.approx(c["robust"]["p_value"], rel=1e-9))


def test_an_escalation_of_a_published_run_adds_its_own_record_and_both_rows_resolve(published, tmp_path):
    """A run published with its outcomes, then escalated (issue 26): the escalated row's record (same run, the
    escalated mask added) is appended beside the suite's instead of being refused, each row resolves to its own
    and validates; an 'escalation' whose suite masks differ from the run's is refused (outcomes never change)."""
    board = _copy_board(published, tmp_path)
    rows = read_rows(board)
    plain = next(r for r in rows if r["model"] == "tiny_a")
    index = oc.load_index(oc.beside(board))
    suite_out = index.get(plain)
    escalated = [False] * suite_out.n  # the escalation broke every survivor
    esc_out = RowOutcome(suite_out.n, suite_out.clean, suite_out.robust, suite_out.after, escalated)
    esc_row = dict(plain, escalated_robust_acc=0.0, escalation_id="0123456789ab", outcomes_sha256=esc_out.sha256(),
                   escalation={"trigger": ["forced"], "robust_acc": 0.0, "remedies": [], "broken_by": {}})
    assert oc.append_records(oc.beside(board), [oc.record_for(esc_row, esc_out)]) == 1
    with board.open("a") as f:
        f.write(json.dumps(esc_row) + "\n")
    index = oc.load_index(oc.beside(board))
    assert index.get(plain).escalated is None and index.get(esc_row).escalated == escalated
    assert oc.validate(board) == ([], 0)
    robust = list(suite_out.robust)
    robust[0] = not robust[0]
    forged = RowOutcome(suite_out.n, suite_out.clean, robust, suite_out.after, escalated)
    with pytest.raises(ValueError, match="append-only"):
        oc.append_records(oc.beside(board), [oc.record_for(dict(esc_row, escalation_id="ba9876543210"), forged)])
    # the same outcomes again under another key (a record from before records named their escalation): not added
    assert oc.append_records(oc.beside(board), [oc.record_for(dict(plain, escalation_id="ba9876543210"),
                                                              suite_out)]) == 0


def test_backfill_recomputes_runs_into_an_empty_store_and_only_rows_whose_numbers_agree_are_published(
        published, tmp_path, monkeypatch):
    """`leaderboard outcomes --recompute`: the board's outcomes gone and no store, each run is found from its row's
    store key, recomputed, and published with the digest it had; a row whose robust accuracy was edited by one
    example stays pending, as its run's masks do not give its numbers. A model no row has is an error."""
    from symbench.leaderboard import backfill as bf, recover

    board = _copy_board(published, tmp_path)
    rows = read_rows(board)
    want = {oc.key_of(r): r["outcomes_sha256"] for r in rows}
    oc.beside(board).write_text("")
    bare = [{k: v for k, v in r.items() if k != "outcomes_sha256"} for r in rows]
    liar = bare[-1]
    liar["robust_acc"] = min(1.0, liar["robust_acc"] + 1 / liar["n"])
    board.write_text("".join(json.dumps(r) + "\n" for r in bare))
    oc.write_pending(board, set(want))
    monkeypatch.setattr(recover, "load_for_row", lambda row, **kw: (published["models"][row["model"]],
                                                                     published["data"]))
    find = recover.find_run
    monkeypatch.setattr(recover, "find_run", lambda row, m, d: find(row, m, d, suite=published["suite"]))
    with pytest.raises(ValueError, match="no row of .* matches --model 'tiny_typo'"):
        bf.backfill(board, store=tmp_path / "fresh", model="tiny_typo", recompute=True, progress=False)
    report = bf.backfill(board, store=tmp_path / "fresh", recompute=True, progress=False)
    assert (report.published, report.pending) == (len(rows) - 1, 1), report.lines
    assert "do not give the row's numbers" in next(line for line in report.lines if line.startswith("pending"))
    index = oc.load_index(oc.beside(board))
    got = {k[:3]: rec["sha256"] for k, rec in index.records.items()}
    assert got == {k: v for k, v in want.items() if k != oc.key_of(liar)}  # the digests the rows were published with
    assert oc.read_pending(board) == {oc.key_of(liar)}


def test_backfill_recomputes_rows_keyed_before_the_code_hash_under_todays_key(published, tmp_path, monkeypatch):
    """Rows computed before the model code's hash joined the store key (2026-12-02) carry the older key: the backfill
    finds their runs by it, recomputes them under today's key and publishes the digest they had, naming that key;
    such a row edited by one example stays pending (only agreeing numbers count), and so does a row whose key neither
    formula gives. A second backfill, without --recompute, finds the runs stored under today's key and publishes them
    from there."""
    from symbench.bench.run.runner import suite_run_key
    from symbench.leaderboard import backfill as bf, recover

    board = _copy_board(published, tmp_path)
    rows = read_rows(board)
    models, data = published["models"], published["data"]
    monkeypatch.setattr(recover, "load_for_row", lambda row, **kw: (models[row["model"]], data))
    find = recover.find_run
    monkeypatch.setattr(recover, "find_run", lambda row, m, d: find(row, m, d, suite=published["suite"]))
    old_key = {}
    for r in rows:
        plan = recover.find_run(r, models[r["model"]], data)
        assert plan is not None and not plan.legacy
        old_key[r["store_key"]] = suite_run_key(models[r["model"]], plan.suite, data, code=False)
        assert old_key[r["store_key"]] != r["store_key"]
    bare = [{**{k: v for k, v in r.items() if k not in ("outcomes_sha256", "code_sha256")},  # as rows of then
             "store_key": old_key[r["store_key"]] if r["model"] == "tiny_a" else "f" * 16} for r in rows]
    today = {old_key[r["store_key"]]: r["store_key"] for r in rows}
    want = {oc.key_of(b): r["outcomes_sha256"] for b, r in zip(bare, rows)}
    liar = next(b for b in reversed(bare) if b["model"] == "tiny_a")
    liar["robust_acc"] = min(1.0, liar["robust_acc"] + 1 / liar["n"])
    assert recover.find_run(liar, models["tiny_a"], data).legacy
    oc.beside(board).write_text("")
    board.write_text("".join(json.dumps(r) + "\n" for r in bare))
    oc.write_pending(board, set(want))
    n_b = sum(b["model"] == "tiny_b" for b in bare)

    report = bf.backfill(board, store=tmp_path / "fresh", recompute=True, progress=False)
    assert (report.published, report.pending) == (len(bare) - n_b - 1, n_b + 1), report.lines
    pending = [line for line in report.lines if line.startswith("pending")]
    assert sum("do not give the row's numbers" in line for line in pending) == 1
    assert sum("cannot be recomputed" in line for line in pending) == n_b
    assert sum("recomputed as" in line for line in report.lines) == report.published
    records = oc.load_index(oc.beside(board)).records.values()
    assert {(rec["model"], rec["store_key"], rec["group"]): rec["sha256"] for rec in records} == {
        k: v for k, v in want.items() if k[0] == "tiny_a" and k != oc.key_of(liar)}
    assert all(rec["recomputed_key"] == today[rec["store_key"]] for rec in records)
    assert (tmp_path / "fresh" / "tiny_a" / today[liar["store_key"]]).is_dir()
    assert oc.read_pending(board) == {oc.key_of(b) for b in bare if b["model"] == "tiny_b" or b is liar}
    assert oc.validate(board) == ([], n_b + 1)

    # the liar told the truth after all: published from today's key in the store without --recompute, nothing computed
    board.write_text("".join(json.dumps({**b, "robust_acc": r["robust_acc"]} if b is liar else b) + "\n"
                             for b, r in zip(bare, rows)))
    from symbench.bench.run import runner

    monkeypatch.setattr(runner, "_attack_batch", lambda *a, **k: pytest.fail("a stored batch was computed again"))
    again = bf.backfill(board, store=tmp_path / "fresh", model="tiny_a", progress=False)
    assert (again.published, again.pending) == (1, 0), again.lines
    # only reading, a row whose key neither formula gives says what the store lacks, not that it cannot be recomputed
    stray = bf.backfill(board, store=tmp_path / "fresh", model="tiny_b", progress=False)
    assert stray.pending == n_b and all("no stored outcomes" in line for line in stray.lines), stray.lines


def test_validate_lets_a_superseded_row_differ_only_in_a_randomized_runs_expected_accuracies(published, tmp_path):
    """A randomized run recomputed later (same key, same worst-of-k masks) can draw its clean pass differently: an
    older row of it whose expected accuracies differ passes validate when a newer row of the run agrees in every
    number; without that newer row it fails, and a difference in a worst-of-k number fails either way."""
    board = _copy_board(published, tmp_path)
    row = next(r for r in read_rows(board) if r["model"] == "tiny_a")
    got = oc.load_index(oc.beside(board)).get(row)
    k = 4
    hits = [k if c else 0 for c in got.clean]
    rhits = [k if r else 0 for r in got.robust]
    rand = RowOutcome(got.n, got.clean, got.robust, got.after, draws=k, clean_hits=hits, robust_hits=rhits)
    new = dict(row, outcomes_sha256=rand.sha256(), created="2026-12-07T00:00:00+00:00",
               clean_acc_expected=sum(hits) / (k * got.n), robust_acc_expected=sum(rhits) / (k * got.n))
    old = dict(new, created="2026-12-02T00:00:00+00:00", clean_acc_expected=new["clean_acc_expected"] - 1 / (k * got.n))
    oc.beside(board).write_text(json.dumps(oc.record_for(new, rand)) + "\n")

    def validate(*rows):
        board.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return oc.validate(board)[0]

    assert validate(old, new) == []
    assert [e for e in validate(old) if "clean_acc_expected" in e]  # nothing supersedes it
    assert len(validate(old, dict(new, robust_acc_expected=0.5))) == 2  # the newer row disagrees too: both fail
    hard = dict(old, clean_acc=old["clean_acc"] - 1 / got.n)
    assert [e for e in validate(hard, new) if "clean_acc " in e]
    # a randomized row from before the clean pass was seeded: its clean mask itself was an unseeded draw, so any
    # number may differ, but only while a newer row of the run agrees; one computed since must agree itself
    unseeded = dict(hard, draws_k=k)
    assert validate(unseeded, new) == []
    assert [e for e in validate(unseeded) if "clean_acc " in e]
    since = dict(unseeded, created="2026-12-07T10:00:00+00:00")
    assert [e for e in validate(since, dict(new, created="2026-12-07T11:00:00+00:00")) if "clean_acc " in e]


def test_outcomes_and_verify_find_the_data_beside_the_checkout_as_their_help_says(monkeypatch, tmp_path):
    """Both say "default: $SYMBENCH_DATA, then shared/data"; they passed None on, and a recompute failed with
    'CIFAR-10 not found ... no directory given' where `bench` found ../shared/data."""
    from symbench.cli import build_parser
    from symbench.leaderboard import backfill as bf, commands, verify

    beside = tmp_path / "shared" / "data"
    monkeypatch.setattr(commands, "default_data_dir", lambda: beside)
    seen = {}

    class Report:
        lines = []

        def summary(self):
            return ""

    monkeypatch.setattr(bf, "backfill", lambda rows, **kw: seen.setdefault("outcomes", kw["data_dir"]) and Report())
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"model": "m", "suite": "s", "threat": "linf", "eps": 0.03, "n": 4}) + "\n")
    args = build_parser().parse_args(["leaderboard", "outcomes", "--rows", str(rows), "--threads", "1"])
    assert args.func(args) == 0 and seen["outcomes"] == beside
    row = read_rows(rows)[0]
    monkeypatch.setattr(verify, "select_rows", lambda rows, **kw: [row])
    monkeypatch.setattr(oc, "load_index", lambda path: SimpleNamespace(get=lambda r: object(), path=path))
    passed = SimpleNamespace(line=lambda: "ok", ok=True)
    monkeypatch.setattr(verify, "verify_row", lambda r, o, **kw: seen.setdefault("verify", kw["data_dir"]) and passed)
    args = build_parser().parse_args(["leaderboard", "verify", "--rows", str(rows), "--threads", "1"])
    assert args.func(args) == 0 and seen["verify"] == beside


def test_a_backfill_killed_between_runs_leaves_a_board_that_validates(published, tmp_path, monkeypatch):
    """The backfill runs for hours in the background; killed after publishing one run, its outcomes are on the
    board and its pending entry is gone, so the half-done board can be committed as it is."""
    from symbench.leaderboard import backfill as bf

    board, rows = _board_before_outcomes(published, tmp_path)
    calls, real = [], bf._outcome

    def killed_on_the_second_run(*a, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **kw)
    monkeypatch.setattr(bf, "_outcome", killed_on_the_second_run)
    with pytest.raises(KeyboardInterrupt):
        bf.backfill(board, store=published["root"] / "store", progress=False)
    errors, waiting = oc.validate(board)
    assert not errors, errors  # no run both published and pending, none unpublished and unlisted
    assert 0 < waiting < len(rows)  # so the rows that left the list are the ones whose outcomes landed
