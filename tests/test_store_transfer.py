"""`symbench store export` / `import`: a store carried to a machine with another key is used, not recomputed.

A plain copy of the store is recomputed there (every record fails the new key's signature); an import
re-signs the records, so the same run on the new machine computes nothing and gives the same rows. A
record the export moved to another batch, or one that differs from what the destination holds, is refused.
"""
from __future__ import annotations

import gzip
import json
import logging
import shutil

import pytest

from symbench.bench.run import evaluate
from symbench.bench.run.store import SECRET_ENV
from symbench.bench.run.store_transfer import export_store, import_store
from conftest import DET_SUITE


@pytest.fixture
def suite_path(tmp_path):
    p = tmp_path / "det.toml"
    p.write_text(DET_SUITE)
    return p


@pytest.fixture(scope="module")
def det_data(tiny_data):
    from symbench.bench.data import ImageData

    return ImageData(tiny_data.x[:40], tiny_data.y[:40], "synthetic-40", tiny_data.sha256 + ":40")


def _rows(model, data, suite_path, store):
    rows = evaluate.bench("tiny", str(suite_path), model=model, data=data, store=str(store), progress=False,
                          checks=False)
    return [{k: v for k, v in r.items() if k not in ("created", "wall_seconds")} for r in rows]


def _stamps(store):
    return {p: p.stat().st_mtime_ns for p in store.rglob("b*.json")}


@pytest.fixture
def exported(tiny_model, det_data, suite_path, tmp_path, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, "machine-a")
    ref = _rows(tiny_model, det_data, suite_path, tmp_path / "a")
    got = export_store(tmp_path / "a", tmp_path / "a.jsonl.gz")
    assert (tmp_path / "a.jsonl.gz").stat().st_mode & 0o044  # the umask's mode, not mkstemp's 0600
    assert got.records == len(list((tmp_path / "a").rglob("b*.json"))) > 0 and not got.skipped
    monkeypatch.setenv(SECRET_ENV, "machine-b")
    return ref, tmp_path / "a.jsonl.gz"


def test_imported_store_is_used_where_a_copy_is_recomputed(exported, tiny_model, det_data, suite_path, tmp_path,
                                                           caplog):
    ref, export = exported
    shutil.copytree(tmp_path / "a", tmp_path / "copy")
    with caplog.at_level(logging.WARNING):
        assert _rows(tiny_model, det_data, suite_path, tmp_path / "copy") == ref
    assert sum("fails its signature" in r.getMessage() for r in caplog.records) > 0  # the copy was recomputed

    got = import_store(export, tmp_path / "b")
    assert got.records > 0 and not got.refused and got.runs == 1
    before = _stamps(tmp_path / "b")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert _rows(tiny_model, det_data, suite_path, tmp_path / "b") == ref
    assert not [r for r in caplog.records if "store record" in r.getMessage()]
    assert _stamps(tmp_path / "b") == before  # nothing recomputed, nothing rewritten
    again = import_store(export, tmp_path / "b")
    assert again.records == 0 and again.already == got.records


def _edit(export, out, edit):
    lines = [json.loads(line) for line in gzip.open(export, "rt")]
    i = next(i for i, it in enumerate(lines) if it.get("group", "").startswith("linf") and it["batch"] == 1)
    edit(lines[i])
    with gzip.open(out, "wt") as f:
        f.write("\n".join(json.dumps(it) for it in lines) + "\n")
    return lines[i]


def test_moved_or_conflicting_records_are_refused(exported, tmp_path):
    _, export = exported

    def move(item):  # the line and the record's own block both say batch 2, but it covers batch 1's examples
        item["batch"] = item["record"]["_integrity"]["batch"] = 2
    moved = _edit(export, tmp_path / "moved.jsonl.gz", move)
    got = import_store(tmp_path / "moved.jsonl.gz", tmp_path / "b")
    assert len(got.refused) == 1 and "covers examples [16, 32], but batch 2" in got.refused[0]
    dest = next((tmp_path / "b").rglob(f"{moved['group']}/b00002.json"))
    assert json.loads(dest.read_text())["robust"] != moved["record"]["robust"]  # batch 2 is the genuine one

    def relabel(item):  # only the line says batch 3: the record names another place
        item["batch"] = 3
    _edit(export, tmp_path / "relabel.jsonl.gz", relabel)
    got = import_store(tmp_path / "relabel.jsonl.gz", tmp_path / "c")
    assert len(got.refused) == 1 and "moved to another place" in got.refused[0]

    def flip(item):  # a different record for a place the destination already holds
        item["record"]["robust"] = [not v for v in item["record"]["robust"]]
    assert import_store(export, tmp_path / "c").records == 1  # the one the relabelled export lacked
    _edit(export, tmp_path / "flip.jsonl.gz", flip)
    got = import_store(tmp_path / "flip.jsonl.gz", tmp_path / "c")
    assert len(got.refused) == 1 and "already holds a different record" in got.refused[0]


def test_bad_export_file_is_one_line_error(tmp_path):
    (tmp_path / "x.jsonl.gz").write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="not a store export"):
        import_store(tmp_path / "x.jsonl.gz", tmp_path / "s")
    with pytest.raises(ValueError, match="no export file"):
        import_store(tmp_path / "missing.jsonl.gz", tmp_path / "s")
    with pytest.raises(ValueError, match="no store at"):
        export_store(tmp_path / "nostore", tmp_path / "out.jsonl.gz")


def test_cli_round_trip_and_refusal_exit_codes(exported, tmp_path, capsys):
    from symbench.cli import main

    _, export = exported
    assert main(["store", "import", str(export), "--store", str(tmp_path / "d")]) == 0
    assert "imported" in capsys.readouterr().out
    assert main(["store", "export", str(tmp_path / "d.jsonl.gz"), "--store", str(tmp_path / "d"), "--model", "x*", "t*"]) == 0
    assert main(["store", "export", str(tmp_path / "none.jsonl.gz"), "--store", str(tmp_path / "d"), "--model", "x*"]) == 2
    assert "whose model matches x*" in capsys.readouterr().err and not (tmp_path / "none.jsonl.gz").exists()
    assert import_store(tmp_path / "d.jsonl.gz", tmp_path / "e").records > 0   # what d's key verified goes on
    _edit(export, tmp_path / "bad.jsonl.gz", lambda item: item.update(batch=7))
    assert main(["store", "import", str(tmp_path / "bad.jsonl.gz"), "--store", str(tmp_path / "f")]) == 1
    assert "refused" in capsys.readouterr().err
    assert main(["store", "import", str(tmp_path / "nope.jsonl.gz")]) == 2   # one line, before any work


def test_interrupted_batch_keeps_the_state_further_along(exported, tmp_path):
    """Two machines that stopped one batch at different attacks hold different checkpoints, both right."""
    _, export = exported
    lines = [json.loads(line) for line in gzip.open(export, "rt")]
    final = next(it for it in lines if it.get("group", "").startswith("linf") and it["batch"] == 1)
    head = [lines[0], next(it for it in lines if "meta" in it and it["key"] == final["key"])]
    mask = final["record"]["robust"]

    def partial(after: dict, name: str):
        rec = {"done": len(after), "robust_after": after, "robust": list(after.values())[-1], "p_state": [1.0] * 16,
               "broken_by": [None] * 16, "n_forward": 1, "n_backward": 1, "seconds": 1.0,
               "_integrity": dict(final["record"]["_integrity"], group=final["group"] + ".partial")}
        with gzip.open(tmp_path / name, "wt") as f:
            f.write("\n".join(json.dumps(it) for it in head + [dict(final, group=final["group"] + ".partial",
                                                                      record=rec)]) + "\n")
        return tmp_path / name

    one, two = partial({"a": mask}, "one.jsonl.gz"), partial({"a": mask, "b": mask}, "two.jsonl.gz")
    other = partial({"a": [not v for v in mask]}, "other.jsonl.gz")
    held = lambda store: [json.loads(p.read_text())["done"] for p in store.rglob("*.partial/b*.json")]  # noqa: E731

    assert import_store(two, tmp_path / "p").records == 1
    got = import_store(one, tmp_path / "p")            # behind the held checkpoint: kept the held one, no refusal
    assert (got.records, got.already, got.refused) == (0, 1, []) and held(tmp_path / "p") == [2]
    assert import_store(one, tmp_path / "q").records == 1
    assert import_store(two, tmp_path / "q").records == 1 and held(tmp_path / "q") == [2]   # further along: taken
    got = import_store(other, tmp_path / "q")           # disagrees on an attack both finished: one of them is wrong
    assert len(got.refused) == 1 and "disagree" in got.refused[0] and held(tmp_path / "q") == [2]
    import_store(export, tmp_path / "r")
    got = import_store(two, tmp_path / "r")             # the batch is finished there: the checkpoint is stale
    assert (got.records, got.already) == (0, 1) and held(tmp_path / "r") == []
