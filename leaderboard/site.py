"""Swap a built site into place whole: a build killed at any point leaves the old site (or none), never a mix.

``leaderboard build`` renders into a hidden sibling folder (``.<name>.build-XXXX.tmp``) seeded with the
old site's generated files, so an incremental build (no plots, no screenshots) keeps what it does not
redo. Files the build does not make (the rows file beside a published board, ``findings.json``, a
schema) are copied in at the last moment, under the rows file's lock, so a row appended while the
pages were rendering is not lost. Then the two folders are exchanged in one ``renameat2(RENAME_EXCHANGE)``
where the kernel has it (Linux ≥ 3.15), else by two renames, between which the site is absent for a
moment: a kill there leaves ``.<name>.old-XXXX.tmp``, which the next build puts back before it starts.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("symbench.leaderboard")

# what a build writes; everything else in the folder is carried over untouched
GENERATED = ("README.md", "index.html", "models", "data", "plots", "screenshot.png", "screenshot-390.png")
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _stage_prefix(out: Path) -> str:
    return f".{out.name}.build-"


def _old_prefix(out: Path) -> str:
    return f".{out.name}.old-"


def _copy(src: Path, dst: Path) -> None:
    if src.is_dir() and not src.is_symlink():
        shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True)
    else:
        shutil.copy2(src, dst, follow_symlinks=False)


def _carry(src: Path, dst: Path) -> None:
    """Copy ``src`` into the staged site; a lock file is hard-linked, so its lockers keep one inode."""
    if src.name.endswith(".lock") and src.is_file():
        try:
            os.link(src, dst)
            return
        except OSError:
            pass
    _copy(src, dst)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths (Linux ``renameat2``); False where the kernel or libc cannot."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0


def swap_in(stage: Path, out: Path) -> None:
    """Put the folder ``stage`` where ``out`` is; the old ``out`` is deleted afterwards."""
    if not out.exists():
        os.rename(stage, out)
        return
    if _exchange(stage, out):
        shutil.rmtree(stage, ignore_errors=True)  # now the old site
        return
    old = Path(tempfile.mkdtemp(dir=out.parent, prefix=_old_prefix(out), suffix=".tmp"))
    os.rmdir(old)
    os.rename(out, old)
    os.rename(stage, out)
    shutil.rmtree(old, ignore_errors=True)


def _recover(out: Path) -> None:
    """Before a build: put back a site a kill left renamed away; drop staged folders of killed builds."""
    olds = sorted(out.parent.glob(_old_prefix(out) + "*.tmp"), key=lambda p: p.stat().st_mtime)
    if olds and not out.exists():
        os.rename(olds.pop(), out)
        log.warning("restored %s, which an interrupted build had moved aside", out)
    for p in olds + list(out.parent.glob(_stage_prefix(out) + "*.tmp")):
        shutil.rmtree(p, ignore_errors=True)


@contextmanager
def staged_site(out: Path, rows_path: Path | None = None) -> Iterator[Path]:
    """Yield a hidden folder to build ``out`` into; on a clean exit it replaces ``out`` whole.

    On any exception (a KeyboardInterrupt too) the staged folder is deleted and ``out`` is untouched.
    ``rows_path``: a rows file inside ``out`` whose lock (``<rows>.lock``) is held while the files the
    build does not make are copied in and the folders swapped.
    """
    from filelock import FileLock

    from symbench.bench.run.store import check_writable_dir

    out = Path(out)
    check_writable_dir(out.parent)
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out.parent / f".{out.name}.build.lock")):
        _recover(out)
        stage = Path(tempfile.mkdtemp(dir=out.parent, prefix=_stage_prefix(out), suffix=".tmp"))
        try:
            os.chmod(stage, 0o777 & ~_umask())  # mkdtemp's 0700 would make the published site private
            if out.is_dir():
                for name in GENERATED:
                    if (out / name).exists():
                        _copy(out / name, stage / name)
            yield stage
            lock = None
            if rows_path is not None and Path(rows_path).resolve().parent == out.resolve():
                from symbench.bench.run.records import rows_lock
                lock = rows_lock(Path(rows_path))
            with lock if lock is not None else _nothing():
                if out.is_dir():
                    for src in out.iterdir():
                        if src.name not in GENERATED and not src.name.endswith(".tmp") and not (stage / src.name).exists():
                            _carry(src, stage / src.name)
                swap_in(stage, out)
        finally:
            if stage.exists():
                shutil.rmtree(stage, ignore_errors=True)


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def _umask() -> int:
    from symbench.bench.run.store import process_umask

    return process_umask()
