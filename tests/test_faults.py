"""Fault injection: kills, damaged or forged store records, hostile rows files, bad inputs (docs/faults.md).

Every case is small (a 32-image synthetic set, FGSM + 3-step PGD) and asserts what symbench promises:
a killed run resumes to identical rows; a bad store record is reported with its path and recomputed,
never aggregated; a bad input fails before any compute with one ``symbench: error:`` line and leaves
rows and store byte-identical.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from symbench.bench.run import evaluate
from symbench.bench.run.records import append_rows, read_rows
from symbench.bench.run.store import INTEGRITY, NotWritableError, StoreRecordError, record_hash
from conftest import make_data

REPO = Path(__file__).resolve().parents[1]
SUITE = """
name = "faults"
version = 1
n = 32
seed = 0
batch_size = 8
[[threats]]
norm = "linf"
eps = [0.03]
[[attacks]]
name = "art_fgsm"
[[attacks]]
name = "art_pgd"
steps = 3
random_init = 0
"""
VOLATILE = ("created", "wall_seconds")  # differ between identical runs


def make_small():
    """32 in-distribution images, every 4th relabelled: clean accuracy 0.75, so each batch has wrong examples."""
    from symbench.bench.data import ImageData

    d = make_data(n=32, seed=0)
    y = d.y.clone()
    y[::4] = (y[::4] + 1) % 10
    sha = hashlib.sha256(d.sha256.encode() + y.numpy().tobytes()).hexdigest()
    return ImageData(d.x, y, "synthetic-relabelled", sha)


@pytest.fixture(scope="module")
def small_data():
    return make_small()


@pytest.fixture
def suite_path(tmp_path):
    p = tmp_path / "faults.toml"
    p.write_text(SUITE)
    return p


def _bench(model, data, suite_path, root: Path, **kw):
    kw.setdefault("out", str(root / "rows.jsonl"))
    return evaluate.bench("tiny", str(suite_path), model=model, data=data, store=str(root / "store"),
                          progress=False, checks=False, **kw)


def _stable(rows):
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in rows]


def _snapshot(*roots: Path) -> dict:
    """Every file under ``roots`` with its bytes' hash and mode: 'byte-identical' means this is equal."""
    out = {}
    for root in roots:
        if root.is_file():
            out[str(root)] = (hashlib.sha256(root.read_bytes()).hexdigest(), stat.S_IMODE(root.stat().st_mode))
        elif root.is_dir():
            for f in sorted(root.rglob("*")):
                if f.is_file():
                    out[str(f)] = (hashlib.sha256(f.read_bytes()).hexdigest(), stat.S_IMODE(f.stat().st_mode))
    return out


@pytest.fixture(scope="module")
def reference(tiny_model, small_data, tmp_path_factory):
    """Rows of a clean, uninterrupted run."""
    root = tmp_path_factory.mktemp("ref")
    (root / "faults.toml").write_text(SUITE)
    return _stable(_bench(tiny_model, small_data, root / "faults.toml", root))


def _record(root: Path, group_glob: str, batch: int = 1) -> Path:
    (p,) = [p for p in (root / "store").rglob(f"{group_glob}/b{batch:05d}.json")]
    return p


# ---------------------------------------------------------------------------------------------------------------
# SIGKILL at several points, then resume
# ---------------------------------------------------------------------------------------------------------------

DRIVER = r"""
import fnmatch, os, signal, sys
sys.path.insert(0, {tests!r})
from safetensors.torch import load_file
from conftest import TinyCNN
from test_faults import make_small
from symbench.bench.run import evaluate

pattern, kill_at = sys.argv[1], int(sys.argv[2])
real_replace, seen = os.replace, [0]

def dying_replace(src, dst):
    if fnmatch.fnmatch(str(dst), pattern):
        seen[0] += 1
        if seen[0] == kill_at:  # the temporary file is complete, the rename has not happened
            os.kill(os.getpid(), signal.SIGKILL)
    real_replace(src, dst)

os.replace = dying_replace
model = TinyCNN()
model.load_state_dict(load_file({weights!r}))
evaluate.bench("tiny", {suite!r}, model=model.eval(), data=make_small(), store={store!r},
               out={out!r}, progress=False, checks=False)
"""


@pytest.mark.parametrize("pattern,kill_at", [
    ("*/linf_*/b*.json", 2),   # mid-run, inside an attack record's write
    ("*/rows.jsonl", 1),       # inside the final rows write
], ids=["mid-run", "rows-write"])
def test_sigkill_then_resume_gives_identical_rows_and_leaves_no_stray_files(
        pattern, kill_at, tiny_model, small_data, suite_path, tmp_path, reference):
    from safetensors.torch import save_file

    weights = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_model.state_dict().items()}, str(weights))
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(tests=str(REPO / "tests"), weights=str(weights), suite=str(suite_path),
                                    store=str(tmp_path / "store"), out=str(tmp_path / "rows.jsonl")))
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, str(script), pattern, str(kill_at)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert not read_rows(tmp_path / "rows.jsonl")  # nothing half-written
    leftovers = [p for p in tmp_path.rglob("*.tmp")]
    assert leftovers, "the kill should have left the interrupted write's temporary file"
    ignored = [line.strip() for line in (REPO / ".gitignore").read_text().splitlines()]
    assert all(any(fnmatch.fnmatch(p.name, g) for g in ignored) for p in leftovers), leftovers  # git never sees them

    resumed = _bench(tiny_model, small_data, suite_path, tmp_path)
    _bench(tiny_model, small_data, suite_path, tmp_path)  # a second complete run appends nothing
    assert _stable(resumed) == reference
    assert _stable(read_rows(tmp_path / "rows.jsonl")) == reference
    assert not list(tmp_path.glob(".rows.jsonl.*.tmp"))  # the rows writer cleans its stale temporaries


# ---------------------------------------------------------------------------------------------------------------
# damaged and forged store records
# ---------------------------------------------------------------------------------------------------------------

def _forge_all_robust(p: Path) -> None:
    rec = json.loads(p.read_text())
    rec["robust"] = [True] * len(rec["robust"])
    rec["robust_after"] = {k: [True] * len(v) for k, v in rec["robust_after"].items()}
    p.write_text(json.dumps(rec))


def _rehash(p: Path, rec: dict, meta: dict | None, secret: str | None = None) -> None:
    """Write ``rec`` back with a valid sha256 (what a forger who read store.py can do)."""
    if meta is not None:
        meta["hash"] = record_hash(rec, [meta["key"], meta["group"], meta["batch"], meta["index"]], secret)
        rec = {**rec, INTEGRITY: meta}
    p.write_text(json.dumps(rec))


def _forge_and_rehash(p: Path) -> None:
    """A forger who knows the hash scheme: only the invariants (robust ⊆ clean) can catch this."""
    rec = json.loads(p.read_text())
    meta = rec.pop(INTEGRITY, None)
    rec["robust"] = [True] * len(rec["robust"])
    rec["robust_after"] = {k: [True] * len(v) for k, v in rec["robust_after"].items()}
    _rehash(p, rec, meta)


def _truncate_half_examples(p: Path) -> None:
    """Half the examples, hash recomputed: the record no longer covers its batch."""
    rec = json.loads(p.read_text())
    meta = rec.pop(INTEGRITY, None)
    rec["robust"] = rec["robust"][:4]
    rec["robust_after"] = {k: v[:4] for k, v in rec["robust_after"].items()}
    _rehash(p, rec, meta)


def _copy_other_batch(p: Path) -> None:
    p.write_text(p.with_name("b00000.json").read_text())


FAULTS = {
    "corrupt-bytes": lambda p: p.write_bytes(p.read_bytes()[:20] + b"\x00\xff garbage" + p.read_bytes()[30:]),
    "truncated-file": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "empty-object": lambda p: p.write_text("{}"),
    "forged-all-robust": _forge_all_robust,
    "forged-and-rehashed": _forge_and_rehash,
    "half-the-examples": _truncate_half_examples,
    "another-batch's-record": _copy_other_batch,
    "negative-count": lambda p: p.write_text(p.read_text().replace('"n_forward": ', '"n_forward": -')),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_damaged_or_forged_record_is_reported_and_recomputed(fault, tiny_model, small_data, suite_path, tmp_path,
                                                             reference, caplog):
    _bench(tiny_model, small_data, suite_path, tmp_path, out=None)
    p = _record(tmp_path, "linf_*")
    FAULTS[fault](p)
    with caplog.at_level(logging.WARNING):
        rows = _bench(tiny_model, small_data, suite_path, tmp_path)
    assert _stable(rows) == reference  # never aggregated: the row equals a clean run's
    assert any(str(p) in r.getMessage() for r in caplog.records), f"no warning named {p}"
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # recomputed and rewritten: the next run is quiet
        _bench(tiny_model, small_data, suite_path, tmp_path, out=None)
    assert not [r for r in caplog.records if "store record" in r.getMessage()]


def test_damaged_clean_record_is_recomputed(tiny_model, small_data, suite_path, tmp_path, reference, caplog):
    _bench(tiny_model, small_data, suite_path, tmp_path, out=None)
    p = _record(tmp_path, "clean", 2)
    rec = json.loads(p.read_text())
    rec["correct"] = [True] * len(rec["correct"])  # every example "correct", whatever it predicted
    p.write_text(json.dumps(rec))
    with caplog.at_level(logging.WARNING):
        assert _stable(_bench(tiny_model, small_data, suite_path, tmp_path)) == reference
    assert any(str(p) in r.getMessage() for r in caplog.records)


def test_deleted_records_are_recomputed(tiny_model, small_data, suite_path, tmp_path, reference):
    _bench(tiny_model, small_data, suite_path, tmp_path, out=None)
    _record(tmp_path, "linf_*", 3).unlink()
    _record(tmp_path, "clean", 0).unlink()
    assert _stable(_bench(tiny_model, small_data, suite_path, tmp_path)) == reference


def test_strict_refuses_a_bad_record_and_writes_no_row(tiny_model, small_data, suite_path, tmp_path):
    from symbench.bench.run.runner import run_suite
    from symbench.bench.suites import load_suite

    _bench(tiny_model, small_data, suite_path, tmp_path, out=None)
    p = _record(tmp_path, "linf_*")
    _forge_all_robust(p)
    with pytest.raises(StoreRecordError, match=str(p)):
        run_suite(tiny_model, load_suite(str(suite_path)), small_data, model_name="tiny",
                  store_root=str(tmp_path / "store"), progress=False, strict=True)


def test_unsigned_records_are_read_only_while_the_store_says_format_1(tiny_model, small_data, suite_path, tmp_path,
                                                                       reference, monkeypatch, caplog):
    """A store written by older symbench (no _integrity, meta.json format 1): its records are accepted after the
    invariant checks while the manifest says format 1; the same records in a format-2 store are recomputed."""
    from symbench.bench.run import runner
    from symbench.bench.run.store import Store

    old = Store(tmp_path / "old", "m", "k")  # records of other kinds (CLEVER, corruptions): no invariant to check
    (old.dir / "clever_l2").mkdir(parents=True)
    (old.dir / "meta.json").write_text(json.dumps({"format": 1, "key": "k"}))
    (old.dir / "clever_l2" / "b00000.json").write_text(json.dumps({"score": 0.5}))
    (old.dir / "clever_l2" / "b00001.json").write_text("{}")
    assert old.get("clever_l2", 0) == {"score": 0.5} and old.get("clever_l2", 1) is None
    with pytest.raises(StoreRecordError):
        Store(tmp_path / "old", "m", "k", strict=True).get("clever_l2", 0)
    (old.dir / "meta.json").write_text(json.dumps({"format": 2, "key": "k"}))
    with caplog.at_level(logging.WARNING):
        assert Store(tmp_path / "old", "m", "k").get("clever_l2", 0) is None
    assert any("not signed" in r.getMessage() and "b00000.json" in r.getMessage() for r in caplog.records)

    _bench(tiny_model, small_data, suite_path, tmp_path, out=None)  # a run's store says format 2
    for f in (tmp_path / "store").rglob("b*.json"):
        rec = json.loads(f.read_text())
        rec.pop(INTEGRITY, None)
        f.write_text(json.dumps(rec))
    calls = []
    real = runner._attack_batch
    monkeypatch.setattr(runner, "_attack_batch", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert _stable(_bench(tiny_model, small_data, suite_path, tmp_path)) == reference
    assert len(calls) == 4  # every unsigned attack record recomputed


def test_records_signed_with_another_key_are_rejected(tiny_model, small_data, suite_path, tmp_path, reference,
                                                      monkeypatch, caplog):
    """$SYMBENCH_STORE_SECRET (a shared store's key) replaces the per-user key: records signed with the user's key
    fail, are recomputed and re-signed; a forger's HMAC under a guessed key fails too."""
    _bench(tiny_model, small_data, suite_path, tmp_path, out=None)  # signed with the per-user key
    monkeypatch.setenv("SYMBENCH_STORE_SECRET", "s3cret")
    with caplog.at_level(logging.WARNING):
        assert _stable(_bench(tiny_model, small_data, suite_path, tmp_path)) == reference
    assert sum("fails its signature" in r.getMessage() for r in caplog.records) == 4 * 2  # 4 batches x (clean, linf)
    p = _record(tmp_path, "linf_*")
    rec = json.loads(p.read_text())
    meta = rec.pop(INTEGRITY)
    assert meta["hash"].startswith("hmac-sha256:")
    rec["n_forward"] += 1  # harmless to invariants; only the signature can catch it
    meta["hash"] = record_hash(rec, [meta["key"], meta["group"], meta["batch"], meta["index"]], "guess")
    p.write_text(json.dumps({**rec, INTEGRITY: meta}))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert _stable(_bench(tiny_model, small_data, suite_path, tmp_path, out=None)) == reference
    assert any(str(p) in r.getMessage() for r in caplog.records)


def test_rows_are_checked_before_they_are_appended(tmp_path, reference):
    row = dict(json.loads(json.dumps(reference[0])), created="2026-01-01T00:00:00+00:00", wall_seconds=1.0)
    bad = dict(row, robust_acc=min(1.0, row["clean_acc"] + 0.1))
    with pytest.raises(ValueError, match="exceeds"):
        append_rows(tmp_path / "rows.jsonl", [bad])
    assert not (tmp_path / "rows.jsonl").exists()


# ---------------------------------------------------------------------------------------------------------------
# the rows file
# ---------------------------------------------------------------------------------------------------------------

def _a_row(reference, **kw):
    return dict(json.loads(json.dumps(reference[0])), created="2026-01-01T00:00:00+00:00", wall_seconds=1.0, **kw)


def test_read_only_rows_file_is_refused_not_chmodded(tmp_path, reference):
    """Also as root (this CI's user), for whom os.access says everything is writable: no write bit = read-only."""
    path = tmp_path / "rows.jsonl"
    append_rows(path, [_a_row(reference)])
    path.chmod(0o444)
    before = _snapshot(path)
    with pytest.raises(NotWritableError, match=f"{path} is not writable"):
        append_rows(path, [_a_row(reference, seed=7)])
    assert _snapshot(path) == before


def test_rows_file_keeps_its_mode_and_new_files_get_the_umask(tmp_path, reference):
    path = tmp_path / "rows.jsonl"
    old = os.umask(0o027)
    try:
        append_rows(path, [_a_row(reference)])
        assert stat.S_IMODE(path.stat().st_mode) == 0o640  # not mkstemp's 0600
        path.chmod(0o664)
        append_rows(path, [_a_row(reference, seed=7)])
        assert stat.S_IMODE(path.stat().st_mode) == 0o664
    finally:
        os.umask(old)
    assert len(read_rows(path)) == 2


def test_symlinked_rows_file_writes_and_locks_its_target(tmp_path, reference):
    real = tmp_path / "shared" / "board.jsonl"
    real.parent.mkdir()
    append_rows(real, [_a_row(reference)])
    link = tmp_path / "rows.jsonl"
    link.symlink_to(real)
    append_rows(link, [_a_row(reference, seed=7)])
    assert link.is_symlink() and len(read_rows(real)) == 2
    assert (real.parent / "board.jsonl.lock").exists() and not (tmp_path / "rows.jsonl.lock").exists()


def test_stale_temporary_rows_files_are_removed(tmp_path, reference):
    path = tmp_path / "rows.jsonl"
    stale = tmp_path / ".rows.jsonl.abc123.tmp"
    stale.write_text("half a file")
    append_rows(path, [_a_row(reference)])
    assert not stale.exists() and len(read_rows(path)) == 1


# ---------------------------------------------------------------------------------------------------------------
# bad inputs: exit != 0, one clear line, rows and store byte-identical
# ---------------------------------------------------------------------------------------------------------------

def _npz_dir(root: Path, labels_offset: int = 0) -> Path:
    g = np.random.default_rng(0)
    (root / "cifar10").mkdir(parents=True)
    np.savez(root / "cifar10" / "test.npz", x=g.integers(0, 256, (32, 32, 32, 3), dtype=np.uint8),
             y=(np.arange(32) % 10 + labels_offset).astype(np.int64))
    return root


def _cli(argv, capsys):
    from symbench.cli import main

    rc = main(argv)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("symbench: error:")]
    assert rc != 0 and len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


@pytest.fixture
def cli_env(tmp_path, monkeypatch, suite_path, reference, tiny_model, small_data):
    """A rows file and a store that already hold a run, and the argv of a tiny CLI bench."""
    monkeypatch.setenv("SYMBENCH_HOME", str(tmp_path / "home"))
    _bench(tiny_model, small_data, suite_path, tmp_path)
    data = _npz_dir(tmp_path / "data")
    argv = ["bench", "--model", "baseline_cnn4", "--suite", str(suite_path), "--data-dir", str(data),
            "--store", str(tmp_path / "store"), "--out", str(tmp_path / "rows.jsonl"), "--no-progress",
            "--skip-checks"]
    return tmp_path, argv


def _set(argv, flag, value):
    argv = list(argv)
    argv[argv.index(flag) + 1] = value
    return argv


def _out_is_a_directory(root, argv):
    (root / "outdir").mkdir()
    return _set(argv, "--out", str(root / "outdir")), ["is a directory"]


def _malformed_rows_line(root, argv):
    bad = root / "bad.jsonl"
    bad.write_text(json.dumps({"model": "x"}) + "\n{not json\n")
    return _set(argv, "--out", str(bad)), [f"{bad}:2"]


def _read_only_rows(root, argv):
    (root / "rows.jsonl").chmod(0o444)
    return argv, ["not writable"]


def _attack_parameter_of_the_wrong_type(root, argv):
    suite = root / "ten.toml"
    suite.write_text(SUITE.replace("steps = 3", 'steps = "ten"'))
    return _set(argv, "--suite", str(suite)), ["'faults'", "'art_pgd'", "steps"]


def _npz(root):
    return root / "data" / "cifar10" / "test.npz"


def _truncated_npz(root, argv):
    npz = _npz(root)
    npz.write_bytes(npz.read_bytes()[: npz.stat().st_size // 2])
    return argv, [str(npz)]


def _random_bytes_npz(root, argv):
    _npz(root).write_bytes(os.urandom(4096))
    return argv, [str(_npz(root)), "not a valid npz"]


def _labels_outside_the_classes(root, argv):
    _npz_dir(root / "data2", labels_offset=5)  # labels 5..14
    return _set(argv, "--data-dir", str(root / "data2")), ["outside", "classes"]


def _truncated_checkpoint(root, argv):
    from symbench.models.registry import checkpoint_path, get_card

    ckpt = root / "trunc.safetensors"
    full = checkpoint_path(get_card("baseline_cnn4")).read_bytes()
    ckpt.write_bytes(full[: len(full) // 2])  # --sha256 defaults to the file's own: only reading it can tell
    return argv + ["--checkpoint", str(ckpt)], [str(ckpt), "truncated or corrupt"]


BAD_INPUTS = [_out_is_a_directory, _malformed_rows_line, _read_only_rows, _attack_parameter_of_the_wrong_type,
              _truncated_npz, _random_bytes_npz, _labels_outside_the_classes, _truncated_checkpoint]


@pytest.mark.parametrize("bad", BAD_INPUTS, ids=[f.__name__.strip("_") for f in BAD_INPUTS])
def test_bad_input_fails_in_one_line_before_any_compute(bad, cli_env, capsys, monkeypatch):
    from symbench.bench.run import runner

    root, argv = cli_env
    monkeypatch.setattr(runner, "_attack_batch", lambda *a, **k: pytest.fail("computed before validating"))
    before = _snapshot(root / "rows.jsonl", root / "store")
    argv, expected = bad(root, argv)
    before[str(root / "rows.jsonl")] = _snapshot(root / "rows.jsonl")[str(root / "rows.jsonl")]  # after a chmod
    line = _cli(argv, capsys)
    assert all(e in line for e in expected), line
    assert "pickled" not in line
    assert _snapshot(root / "rows.jsonl", root / "store") == before


def test_api_refuses_non_positive_sizes_and_foreign_labels_before_writing(tiny_model, small_data, suite_path,
                                                                           tmp_path):
    from symbench.bench.data import ImageData

    for kw, match in [({"batch_size": -1}, "batch size"), ({"n": 0}, "n must be")]:
        with pytest.raises(ValueError, match=match):
            _bench(tiny_model, small_data, suite_path, tmp_path, **kw)
    shifted = ImageData(small_data.x, small_data.y + 10, "synthetic+10", "x")
    with pytest.raises(ValueError, match="outside the model's 10 classes"):
        _bench(tiny_model, shifted, suite_path, tmp_path)
    assert not (tmp_path / "store").exists() or not list((tmp_path / "store").rglob("b*.json"))
    assert not (tmp_path / "rows.jsonl").exists()


# ---------------------------------------------------------------------------------------------------------------
# training state and cards
# ---------------------------------------------------------------------------------------------------------------

def _train(out, state, data, **kw):
    from symbench.bench.train import train

    return train("baseline_cnn4", train_data=data, test_data=data, out_dir=out, state_root=state,
                 model_kwargs={"base": 4}, batch_size=16, lr=0.05, threads=1, progress=False, **kw)


def test_kill_during_the_training_state_write_resumes_to_the_same_weights(tmp_path, monkeypatch):
    data = make_data(n=48, seed=1, size=32)
    full = _train(tmp_path / "a", tmp_path / "sa", data, epochs=2)
    real_replace, seen = os.replace, [0]

    def killed_after_epoch_2_state_write(src, dst):
        real_replace(src, dst)
        if str(dst).endswith("state.safetensors"):
            seen[0] += 1
            if seen[0] == 2:  # the old code wrote state.json after this: a kill here mixed two epochs
                raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed_after_epoch_2_state_write)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / "b", tmp_path / "sb", data, epochs=2)
    monkeypatch.setattr(os, "replace", real_replace)
    (state_dir,) = (tmp_path / "sb").iterdir()
    assert [p.name for p in state_dir.iterdir()] == ["state.safetensors"]  # one file: nothing to get out of step
    resumed = _train(tmp_path / "b", tmp_path / "sb", data, epochs=2)
    assert resumed["sha256"] == full["sha256"]


def test_state_of_other_training_data_is_never_loaded(tmp_path, caplog):
    a, b = make_data(n=48, seed=1, size=32), make_data(n=48, seed=2, size=32)
    _train(tmp_path / "x", tmp_path / "s", a, epochs=1)  # leaves a finished state for data a
    fresh_b = _train(tmp_path / "y", tmp_path / "other", b, epochs=1)
    with caplog.at_level(logging.INFO):
        again_b = _train(tmp_path / "z", tmp_path / "s", b, epochs=1)
    assert again_b["sha256"] == fresh_b["sha256"]
    assert not any("resuming" in r.getMessage() for r in caplog.records)


def test_broken_trained_card_names_its_file_and_other_models_still_list(tmp_path, monkeypatch, caplog):
    from symbench.models import registry

    for f in registry.CHECKPOINT_DIR.glob("*.json"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    broken = tmp_path / "baseline_cnn4.json"
    broken.write_text(broken.read_text()[:40])  # truncated mid-write by an old, non-atomic writer
    monkeypatch.setattr(registry, "CHECKPOINT_DIR", tmp_path)
    with caplog.at_level(logging.WARNING):
        cards = [registry.get_card(n) for n in registry.list_models()]
    assert len(cards) > 5 and any(c.sha256 for c in cards)
    assert any(str(broken) in r.getMessage() for r in caplog.records)


def test_the_card_format_the_old_trainer_writes_still_reads(tmp_path, monkeypatch):
    """The training job running on the old code writes cards like this; the registry must keep reading them."""
    from symbench.models import registry

    card = {"name": "baseline_cnn4", "checkpoint": "baseline_cnn4.safetensors", "sha256": "ab" * 32, "epoch_kept": 6,
            "params": 123, "clean_acc": 0.5, "n_test": 10000, "test_data": {"source": "npz:x", "sha256": "cd" * 32},
            "recipe": {"epochs": 6, "batch_size": 256, "lr": 0.1, "weight_decay": 5e-4, "seed": 0,
                       "augment": "crop+flip", "adv": None, "adv_eps": 8 / 255, "adv_steps": 7, "threads": 2},
            "train_seconds": 1.0, "train_device": "cpu x2 threads (x86_64)", "torch": "2", "history": []}
    (tmp_path / "baseline_cnn4.json").write_text(json.dumps(card))
    monkeypatch.setattr(registry, "CHECKPOINT_DIR", tmp_path)
    got = registry.get_card("baseline_cnn4")
    assert got.sha256 == "ab" * 32 and got.clean_acc == 0.5 and got.recipe.epochs == 6


def test_cards_and_state_are_written_where_the_user_dir_says(tmp_path, monkeypatch):
    """``train`` without out_dir/state_root never writes into the shipped checkpoints (issue 13)."""
    from symbench.models import registry

    monkeypatch.setenv("SYMBENCH_HOME", str(tmp_path / "home"))
    shipped = _snapshot(registry.CHECKPOINT_DIR)
    _train(None, None, make_data(n=32, seed=3, size=32), epochs=1)
    assert (tmp_path / "home" / "checkpoints" / "baseline_cnn4.json").is_file()
    assert len(list((tmp_path / "home" / "train_state").glob("baseline_cnn4-*/state.safetensors"))) == 1
    assert _snapshot(registry.CHECKPOINT_DIR) == shipped


def test_store_path_that_is_a_file_and_a_nearly_full_disk(tmp_path, monkeypatch, caplog, reference):
    """--store naming a file fails before compute; too little free space for the estimated store only warns."""
    import shutil
    from collections import namedtuple

    from symbench.bench.run import preflight

    (tmp_path / "store").write_text("not a folder")
    with pytest.raises(ValueError, match="is a file, not a directory"):
        preflight.preflight_bench("quick", store=tmp_path / "store" / "x")
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 10**5, 10**5))
    with caplog.at_level(logging.WARNING):
        preflight.preflight_bench("quick", store=tmp_path / "other")
    assert any("MB free for the store" in r.getMessage() for r in caplog.records)
