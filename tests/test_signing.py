"""The store signs by default: the hostile audit's three forgeries, with no secret set and no flag.

Each forgery puts a number of the forger's choosing into a row on a store that only hashed its records
(before issue 23): (1) strip the ``_integrity`` block and mark every clean-correct example robust; (2) flip
one example per batch to robust and recompute the plain sha256; (3) edit a cached checks record and
recompute its hash. With the per-user signing key each is reported, recomputed, and the row is a clean
run's.
"""
from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import pytest

from symbench.bench.run import evaluate
from symbench.bench.run.store import INTEGRITY, SECRET_ENV, record_hash, store_secret, user_secret_path
from conftest import DET_SUITE

VOLATILE = ("created", "wall_seconds")


@pytest.fixture(autouse=True)
def _no_shared_secret(monkeypatch):
    monkeypatch.delenv(SECRET_ENV, raising=False)


@pytest.fixture(scope="module")
def det_data(tiny_data):
    from symbench.bench.data import ImageData

    return ImageData(tiny_data.x[:60], tiny_data.y[:60], "synthetic-60", tiny_data.sha256 + ":60")


@pytest.fixture
def suite_path(tmp_path):
    p = tmp_path / "det.toml"
    p.write_text(DET_SUITE)
    return p


def _bench(model, data, suite_path, root: Path, checks=False):
    rows = evaluate.bench("tiny", str(suite_path), model=model, data=data, store=str(root / "store"),
                          progress=False, checks=checks)
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in rows]


def _attack_records(root: Path) -> list[Path]:
    return sorted((root / "store").rglob("linf_*/b*.json"))


def _plain_rehash(p: Path, rec: dict, meta: dict) -> None:
    """What a forger who read store.py could do before: recompute the unkeyed sha256."""
    meta["hash"] = record_hash(rec, [meta["key"], meta["group"], meta["batch"], meta["index"]], None)
    p.write_text(json.dumps({**rec, INTEGRITY: meta}))


def _clean_of(p: Path) -> list[bool]:
    clean = p.parents[1] / "clean" / p.name
    return json.loads(clean.read_text())["correct"]


def strip_and_mark_all_robust(p: Path) -> None:
    """Forgery 1: no _integrity block, every clean-correct example robust (masks stay consistent)."""
    rec = json.loads(p.read_text())
    rec.pop(INTEGRITY)
    clean = _clean_of(p)
    rec["robust"] = list(clean)
    rec["robust_after"] = {k: list(clean) for k in rec["robust_after"]}
    p.write_text(json.dumps(rec))


def flip_one_and_rehash(p: Path) -> None:
    """Forgery 2: one broken, clean-correct example per batch marked robust after every attack; sha256 recomputed."""
    rec = json.loads(p.read_text())
    meta = rec.pop(INTEGRITY)
    clean = _clean_of(p)
    i = next(i for i, (c, r) in enumerate(zip(clean, rec["robust"])) if c and not r)
    rec["robust"][i] = True
    for mask in rec["robust_after"].values():
        mask[i] = True
    _plain_rehash(p, rec, meta)


@pytest.mark.parametrize("forge", [strip_and_mark_all_robust, flip_one_and_rehash])
def test_forged_attack_records_are_recomputed(forge, tiny_model, det_data, suite_path, tmp_path, caplog):
    reference = _bench(tiny_model, det_data, suite_path, tmp_path)  # the honest run's rows
    files = _attack_records(tmp_path)
    forged = [p for p in files if any(c and not r for c, r in zip(_clean_of(p), json.loads(p.read_text())["robust"]))]
    assert forged, "the fixture must have broken examples to forge"
    for p in forged:
        forge(p)
    with caplog.at_level(logging.WARNING):
        rows = _bench(tiny_model, det_data, suite_path, tmp_path)
    assert rows == reference  # the forged robust accuracy never reaches a row
    for p in forged:
        assert any(str(p) in r.getMessage() and "not signed" in r.getMessage() for r in caplog.records)


def test_forged_checks_record_is_recomputed(tiny_model, det_data, suite_path, tmp_path, caplog):
    """Forgery 3: a cached checks record edited (every check passes, verdict trusted, or the reverse) and rehashed."""
    reference = _bench(tiny_model, det_data, suite_path, tmp_path, checks=True)  # the honest run's rows
    (p,) = list((tmp_path / "store").rglob("checks/b00000.json"))
    rec = json.loads(p.read_text())
    meta = rec.pop(INTEGRITY)
    flip = "suspect" if rec["verdict"] == "trusted" else "trusted"
    rec["verdict"] = flip
    for c in rec["checks"].values():
        c["status"] = "fail" if flip == "suspect" else "pass"
    _plain_rehash(p, rec, meta)
    with caplog.at_level(logging.WARNING):
        rows = _bench(tiny_model, det_data, suite_path, tmp_path, checks=True)
    assert [r["verdict"] for r in rows] == [r["verdict"] for r in reference] != [flip] * len(rows)
    assert [r["checks"] for r in rows] == [r["checks"] for r in reference]
    assert any(str(p) in r.getMessage() for r in caplog.records)


def test_per_user_key_is_private_and_stable(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMBENCH_HOME", str(tmp_path / "home"))
    key = store_secret()
    path = user_secret_path()
    assert path == tmp_path / "home" / "store_secret" and len(key) == 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert store_secret() == key  # read back, not regenerated
    monkeypatch.setenv(SECRET_ENV, "shared")
    assert store_secret() == "shared"  # a shared store's key overrides it
    assert os.environ["SYMBENCH_HOME"] == str(tmp_path / "home")
