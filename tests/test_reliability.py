"""The last gaps of the hostile audit (issue 25), one test each, every one failing on the code before the fix:
disk full, a row of an unknown schema_version, a read-only store folder (also as root), a broken suite TOML,
a kill during ``leaderboard build``, and caches outside ``$SYMBENCH_HOME``."""
from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from conftest import DET_SUITE
from symbench.bench.run import store as store_mod
from symbench.bench.run.store import DiskFullError, NotWritableError, atomic_write_text


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_full_disk_is_one_line_and_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "rows.jsonl"
    path.write_text("old\n")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(store_mod.os, "fsync", full)
    with pytest.raises(DiskFullError, match="no space left on the disk holding .*rows.jsonl is unchanged") as err:
        atomic_write_text(path, "new\n" * 1000)
    assert err.value.errno == errno.ENOSPC and isinstance(err.value, ValueError)  # the CLI's one-line kind
    assert "\n" not in str(err.value) and not str(err.value).startswith("[Errno")
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["rows.jsonl"]


def test_the_cli_reports_a_full_disk_in_one_line(tmp_path, monkeypatch, capsys):
    from symbench.cli import main

    rows = tmp_path / "rows.jsonl"
    rows.write_text("")
    monkeypatch.setattr(store_mod.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
    assert main(["leaderboard", "build", "--rows", str(rows), "--out", str(tmp_path / "site"), "--no-plots"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("symbench: error: no space left on the disk"), err
    assert not (tmp_path / "site").exists()


def test_a_row_of_an_unknown_schema_version_is_refused_with_file_and_line(tmp_path):
    from symbench.bench.run.records import read_rows

    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"schema_version": 1, "model": "a"}) + "\n"
                    + json.dumps({"schema_version": 2, "model": "b"}) + "\n")
    with pytest.raises(ValueError, match=rf"{path}:2: schema_version 2, but this symbench reads schema version 1"):
        read_rows(path)


def test_a_read_only_store_folder_is_refused_before_any_compute_even_as_root(tiny_model, tiny_data, tmp_path):
    """Root may write anywhere (``os.access`` says yes); a folder with no write bit says don't."""
    from symbench.bench.run.evaluate import bench

    suite = tmp_path / "det.toml"
    suite.write_text(DET_SUITE)
    store = tmp_path / "store"
    store.mkdir()
    store.chmod(0o555)
    try:
        with pytest.raises(NotWritableError, match=r"--store .*folder .*store is read-only \(mode dr-xr-xr-x\)"):
            bench("tiny", str(suite), model=tiny_model, data=tiny_data, store=store, checks=False, progress=False)
        with pytest.raises(NotWritableError, match="is read-only"):  # and any write below it, mid-run
            atomic_write_text(store / "m" / "k" / "clean" / "b00000.json", "{}")
        assert list(store.iterdir()) == []
    finally:
        store.chmod(0o755)


def test_a_broken_suite_toml_names_its_file(tmp_path):
    from symbench.bench.suites import load_suite

    path = tmp_path / "mine.toml"
    path.write_text('name = "mine"\n  = 3\n')
    with pytest.raises(ValueError, match=rf"suite file {path}: not valid TOML: .*line 2"):
        load_suite(str(path))
    path.write_text('name = "mine"\nversion = 1\n[[threats]]\nnorm = "linf"\neps = [300]\n[[attacks]]\nname = "art_fgsm"\n')
    with pytest.raises(ValueError, match=rf"suite file {path}: .*0-255"):
        load_suite(str(path))


def test_a_build_killed_midway_leaves_the_old_site_or_none(tmp_path, monkeypatch):
    from symbench.leaderboard import page as lb_page
    from test_leaderboard import fake_row

    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps(fake_row(m, suite="quick")) + "\n" for m in ("cascaded4", "baseline_cnn4")))
    out = tmp_path / "site"
    real, calls = lb_page.render_model, []

    def killed(page, m):
        calls.append(m["name"])
        if len(calls) == 2:  # after index.html, README.md and one model page were written
            raise KeyboardInterrupt
        return real(page, m)
    monkeypatch.setattr(lb_page, "render_model", killed)
    with pytest.raises(KeyboardInterrupt):
        lb_page.build(rows, out, plots=False)
    assert not out.exists()                                         # none, not 2 of 4 files
    monkeypatch.setattr(lb_page, "render_model", real)
    lb_page.build(rows, out, plots=False)
    before = _tree(out)
    assert {"index.html", "README.md", "models/cascaded4.html", "data/rows.jsonl"} <= set(before)
    rows.write_text(rows.read_text() + json.dumps(fake_row("equivariant4", suite="quick")) + "\n")
    calls.clear()
    monkeypatch.setattr(lb_page, "render_model", killed)
    with pytest.raises(KeyboardInterrupt):
        lb_page.build(rows, out, plots=False)
    assert _tree(out) == before                                     # the old site, whole
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".site.")] in ([], [".site.build.lock"])


def test_a_build_beside_its_rows_keeps_them_and_every_file_it_does_not_make(tmp_path):
    from symbench.leaderboard import page as lb_page
    from test_leaderboard import fake_row

    board = tmp_path / "v1"
    board.mkdir()
    (board / "rows.jsonl").write_text(json.dumps(fake_row("cascaded4", suite="quick")) + "\n")
    (board / "notes.txt").write_text("mine")  # not made by build: carried over
    lb_page.build(board / "rows.jsonl", board, plots=False)
    assert (board / "notes.txt").read_text() == "mine" and (board / "index.html").is_file()
    assert (board / "rows.jsonl").read_text().count("\n") == 1 and not (board / "data" / "rows.jsonl").exists()
    assert 'href="rows.jsonl"' in (board / "index.html").read_text()


def test_every_cache_is_under_symbench_home(tmp_path, monkeypatch):
    from symbench.bench.data import cache_dir
    from symbench.models.robustbench_zoo import default_model_dir

    monkeypatch.setenv("SYMBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SYMBENCH_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert default_model_dir() == tmp_path / "home" / "cache" / "robustbench"
    assert cache_dir() == tmp_path / "home" / "cache"
    from symbench.models.robustbench_zoo import RobustBenchWeightsError, load_robustbench_model

    with pytest.raises(RobustBenchWeightsError, match="downloading is off"):
        load_robustbench_model("robustbench:Standard", download=False)
    assert not (tmp_path / "user").exists()                       # nothing in ~/.cache


def test_paths_are_printed_absolute_outside_the_checkout(tmp_path, monkeypatch):
    """Run from /tmp with $SYMBENCH_HOME under it, the store was printed as 'home/store': useless elsewhere."""
    from symbench.paths import describe, user_store

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SYMBENCH_HOME", str(tmp_path / "home"))
    assert describe(user_store()) == str(tmp_path / "home" / "store")
    monkeypatch.setenv("SYMBENCH_HOME", "rel")                  # a relative one is printed as where it is
    assert user_store().is_absolute() and describe(user_store()) == str(tmp_path / "rel" / "store")


def test_the_readme_links_stay_inside_the_repository():
    import re

    root = Path(__file__).resolve().parents[1]
    text = (root / "README.md").read_text()
    links = [m for m in re.findall(r"\]\(([^)#]+)\)", text) if not m.startswith("http")]
    assert links and not [m for m in links if m.startswith("..")]
    assert [m for m in links if not (root / m).exists()] == []
    assert "| `paper_worst` |" in text                            # the suite the eps board ranks is in the table
