"""Checks an evaluation runs before any compute: what would otherwise fail after an hour, fails now.

Each check raises ValueError / FileNotFoundError (one line in the CLI) naming the path or parameter;
the disk-space estimate only warns. :func:`preflight_bench` is the one call ``bench()`` makes.
"""
from __future__ import annotations

import logging
import math
import os
import shutil
from pathlib import Path

from symbench.bench.run.store import NotAFileError, NotWritableError, check_writable, check_writable_dir, resolve_target

log = logging.getLogger(__name__)

BLOCK = 4096  # a store record is a small file: it takes at least one filesystem block


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_output_file(path: str | os.PathLike, what: str = "--out") -> Path:
    """``path`` can be written as a file: not a directory, not read-only, its folder creatable and writable.

    Returns the file a write will change (a symlink's target).
    """
    target = resolve_target(Path(path))
    if target.is_dir():
        raise NotAFileError(f"{what} {path} is a directory; give a file path (e.g. {Path(path) / 'rows.jsonl'})")
    check_writable(target)
    base = _nearest_existing(target.parent)
    if not base.is_dir():
        raise NotAFileError(f"{what} {path}: {base} is a file, so no folder can be made there")
    try:
        check_writable_dir(base)  # by its mode bits too: root may write anywhere, a read-only folder says don't
    except NotWritableError as err:
        raise NotWritableError(f"{what} {path}: {err}") from None
    return target


def check_output_dir(path: str | os.PathLike, what: str = "--store") -> Path:
    """``path`` is (or can be made) a writable directory."""
    path = Path(path)
    base = _nearest_existing(path)
    if not base.is_dir():
        raise ValueError(f"{what} {path}: {base} is a file, not a directory")
    try:
        check_writable_dir(base)  # by its mode bits too: root may write anywhere, a read-only store says don't
    except NotWritableError as err:
        raise NotWritableError(f"{what} {path}: {err}") from None
    return path


def check_rows_file(path: str | os.PathLike) -> int:
    """The existing rows file parses line by line (else a ValueError naming file and line); returns its row count."""
    from symbench.bench.run.records import read_rows

    return len(read_rows(resolve_target(Path(path))))


def check_positive(name: str, value) -> None:
    """``n`` / ``batch_size``: None (the suite's) or an integer >= 1."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_labels(y, num_classes: int, source: str) -> None:
    """Every label is a class of the model (else clean accuracy is silently 0 and every check is skipped)."""
    if len(y) == 0:
        return
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= num_classes:
        raise ValueError(f"labels of {source} lie in {lo}..{hi}, outside the model's {num_classes} classes "
                         f"(0..{num_classes - 1}): wrong data file, or a model for another dataset?")


def estimate_store_bytes(suite, n: int) -> int:
    """Rough disk use of a run's store: one JSON file per (group, batch), at least one block each."""
    groups = [len(suite.attacks_for(t.norm)) for t in suite.threats for _ in t.eps]
    bs = max(1, suite.batch_size)
    total = 0
    for b in range(math.ceil(n / bs)):
        m = min(bs, n - b * bs)
        total += max(BLOCK, 300 + 12 * m)  # clean: pred + correct
        total += sum(max(BLOCK, 300 + m * (8 * (2 + a) + 16)) for a in groups)
    return total + 4 * BLOCK  # manifest, checks, orbit


def warn_low_disk(store: str | os.PathLike, suite, n: int) -> int | None:
    """Warn when the store's filesystem has less than twice the estimated need; returns the free bytes."""
    need = estimate_store_bytes(suite, n)
    try:
        free = shutil.disk_usage(_nearest_existing(Path(store))).free
    except OSError:
        return None
    if free < 2 * need:
        log.warning("only %.1f MB free for the store at %s; this run needs roughly %.1f MB: it may fail with a full "
                    "disk (finished batches are kept, rerun to resume)", free / 1e6, store, need / 1e6)
    return free


def preflight_bench(suite_name: str, *, n=None, batch_size=None, out=None, store=None, data=None, model=None):
    """Everything ``bench()`` can check before loading weights or data; returns the suite with overrides."""
    from symbench.bench.suites import load_suite
    from symbench.paths import user_store

    check_positive("n", n)
    check_positive("batch size", batch_size)
    suite = load_suite(suite_name)
    check_positive(f"suite {suite.name!r} n", suite.n)
    check_positive(f"suite {suite.name!r} batch_size", suite.batch_size)
    suite = suite.with_overrides(n=n, batch_size=batch_size)
    if out:
        check_output_file(out)
        check_rows_file(out)
    store = Path(store) if store is not None else user_store()
    check_output_dir(store)
    if data is not None and model is not None:
        check_labels(data.y, getattr(getattr(model, "card", None), "num_classes", 10), data.source)
    warn_low_disk(store, suite, len(data) if data is not None else suite.n)
    return suite
