"""Per-example outcomes on disk: one JSON file per (run, threat, eps, batch), written atomically, verified on read.

A run killed at any point leaves only complete batch files; rerunning skips them and recomputes the
rest with the same per-batch seeds, so the final numbers equal an uninterrupted run's.

Nothing read back is trusted blindly. Every record carries an ``_integrity`` block: store format, run
key, group, batch, the example range it covers and an HMAC-SHA256 signature. The key is
``$SYMBENCH_STORE_SECRET`` when set (a store shared by Ray/SLURM workers: its holders share it), else a
per-user secret created on first use at ``$SYMBENCH_HOME/store_secret`` (mode 0600), the way Jupyter
signs notebooks: so only the user (or the holders of the shared secret) can write a record a run will
accept. A record that fails its signature, is not signed (a bare sha256 anyone can recompute), names
another run/group/batch, does not cover its batch or fails the caller's invariant check is reported
with its path and treated as missing (recomputed), or refused with ``strict=True``. Only a store whose
``meta.json`` says format 1 (written before records carried a hash) may hold unsigned records, and only
while it says so (see docs/faults.md).
"""
from __future__ import annotations

import errno
import hashlib
import hmac
import json
import logging
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

FORMAT = 2  # 1: records without an _integrity block (before issue 15); 2: signed records
INTEGRITY = "_integrity"
SECRET_ENV = "SYMBENCH_STORE_SECRET"
SECRET_FILE = "store_secret"  # under $SYMBENCH_HOME, mode 0600: the per-user signing key
# fields the content hash leaves out: wall-clock time differs between identical runs (Ray vs local)
_UNHASHED = frozenset({INTEGRITY, "seconds"})


class NotWritableError(PermissionError, ValueError):
    """A file symbench was asked to replace is read-only; it never changes permissions itself.

    A ValueError too, so the CLI reports it in one line like any other bad input.
    """


class NotAFileError(IsADirectoryError, ValueError):
    """A path symbench should write a file to is a directory."""


class DiskFullError(OSError, ValueError):
    """The disk (or quota) filled up during a write; the file being replaced is unchanged.

    A ValueError too, so the CLI reports it in one line; the ``errno`` stays ENOSPC / EDQUOT.
    """

    def __str__(self) -> str:
        return str(self.strerror)


class StoreRecordError(ValueError):
    """A stored record failed verification and the store was opened with ``strict=True``."""


def process_umask() -> int:
    """The process umask, read without changing it where the OS allows (``os.umask`` is racy)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def resolve_target(path: str | Path) -> Path:
    """The file a write to ``path`` must change: a symlink's target (so the link and its sharers see it)."""
    path = Path(path)
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def check_writable(path: Path) -> None:
    """Raise :class:`NotWritableError` if ``path`` exists and may not be written (never chmods it).

    A file without any write bit is refused even for root, who ``os.access`` says may write anything:
    the owner marked it read-only on purpose.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        raise NotAFileError(f"{path} is a directory, not a file")
    if not st.st_mode & 0o222 or not os.access(path, os.W_OK):
        raise NotWritableError(f"{path} is not writable (mode {stat.filemode(st.st_mode)}); symbench does not change "
                               "permissions: make it writable (chmod u+w) or write elsewhere")


def check_writable_dir(path: str | Path) -> Path:
    """Raise :class:`NotWritableError` unless files can be made in ``path`` (or the folders to it); never chmods.

    Checks the nearest folder that exists. A folder without any write bit is refused even for root, for
    whom ``os.access`` says yes: its owner marked it read-only on purpose (a read-only store, a frozen
    results folder). Returns that nearest existing folder.
    """
    base = Path(path)
    while not base.exists() and base != base.parent:
        base = base.parent
    st = base.stat()
    if not stat.S_ISDIR(st.st_mode):
        raise NotAFileError(f"{base} is a file, so no folder can be made there (wanted {path})")
    if not st.st_mode & 0o222 or not os.access(base, os.W_OK | os.X_OK):
        raise NotWritableError(f"folder {base} is read-only (mode {stat.filemode(st.st_mode)}); symbench does not "
                               "change permissions: make it writable (chmod u+w) or write elsewhere")
    return base


_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


def temp_name_prefix(path: Path) -> str:
    """Prefix of the temporary files an atomic write of ``path`` creates (``.<name>.XXXX.tmp``, git-ignored)."""
    return f".{path.name}."


def remove_stale_temps(path: Path) -> int:
    """Delete temporary files an interrupted atomic write of ``path`` left; call only under the file's lock."""
    n = 0
    for p in path.parent.glob(temp_name_prefix(path) + "*.tmp"):
        try:
            p.unlink()
            n += 1
        except OSError:
            pass
    if n:
        log.info("removed %d stale temporary file(s) of %s left by an interrupted write", n, path)
    return n


def atomic_write_text(path: str | Path, text: str | bytes) -> Path:
    """Replace ``path`` with ``text`` (or bytes: a compressed file) atomically; returns the file actually written.

    A symlink is followed (its target is replaced, the link stays); an existing file keeps its mode, a
    new one gets the umask's (not mkstemp's 0600); a read-only file or folder (no write bit, even for
    root) is refused, never chmodded. A full disk raises :class:`DiskFullError` (one line) and leaves
    the old file as it was and no temporary file behind.
    """
    target = resolve_target(path)
    check_writable(target)
    check_writable_dir(target.parent)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            mode = stat.S_IMODE(target.stat().st_mode)
        except FileNotFoundError:
            mode = 0o666 & ~process_umask()
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=temp_name_prefix(target), suffix=".tmp")
        try:
            os.fchmod(fd, mode)
            with os.fdopen(fd, "wb" if isinstance(text, bytes) else "w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as err:
        if err.errno not in _DISK_FULL:
            raise
        raise DiskFullError(err.errno, f"no space left on the disk holding {target.parent} (writing {target.name}, "
                            f"{len(text if isinstance(text, bytes) else text.encode()) / 1e6:.2g} MB): {target.name} is unchanged and finished work is kept; "
                            "free some space and run the same command again") from None
    return target


def run_key(**parts) -> str:
    """Stable hash of what determines a run's per-example outcomes."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def record_hash(record: dict, where: list, secret: str | None = None) -> str:
    """``sha256:<hex>`` (``hmac-sha256:<hex>`` with a secret) of a record's canonical JSON and its place.

    ``where`` = [run key, group, batch, example range]: a record copied to another batch or run fails.
    """
    body = json.dumps({"record": {k: v for k, v in record.items() if k not in _UNHASHED}, "where": where},
                      sort_keys=True, separators=(",", ":"), default=list).encode()
    if secret:
        return "hmac-sha256:" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return "sha256:" + hashlib.sha256(body).hexdigest()


def user_secret_path() -> Path:
    """The per-user signing key's file (``$SYMBENCH_HOME/store_secret``)."""
    from symbench.paths import home

    return home() / SECRET_FILE


def store_secret() -> str:
    """The key records are signed with: ``$SYMBENCH_STORE_SECRET``, else the per-user secret (created here).

    The per-user secret is 32 random bytes (hex) written once with mode 0600 (``O_EXCL``, so two runs
    starting together agree on one); it never goes into a row, a page or a published file.
    """
    env = os.environ.get(SECRET_ENV)
    if env:
        return env
    path = user_secret_path()
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        text = ""
    if text:
        return text
    import secrets

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it between our read and our open
        return path.read_text().strip() or _empty_secret(path)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    log.info("created the per-user store signing key %s (mode 0600); a store shared with other machines needs "
             "$%s instead (docs/scale-out.md)", path, SECRET_ENV)
    return path.read_text().strip()


def _empty_secret(path: Path) -> str:
    raise ValueError(f"the store signing key {path} is empty; delete it (a new one is made, and records signed "
                     f"with the old one are recomputed) or set ${SECRET_ENV}")


def with_index(record: dict, index: tuple[int, int]) -> dict:
    """``record`` plus the example range it covers, for handing to another store's :meth:`Store.put`."""
    return {**record, INTEGRITY: {"index": list(index)}}


_legacy_reported: set[Path] = set()


class Store:
    """Directory of outcome files for one run: ``<root>/<model>/<key>/<group>/b<i>.json`` plus ``meta.json``.

    Args:
        strict: a record that fails verification raises :class:`StoreRecordError` instead of being
            recomputed (for audits of a shared store; legacy records without a hash are refused too).
    """

    def __init__(self, root: str | Path | None, model: str, key: str, *, strict: bool = False):
        if root is None:  # the user's store (``$SYMBENCH_HOME/store``)
            from symbench.paths import user_store
            root = user_store()
        self.key = key
        self.strict = strict
        self.dir = Path(root) / model.replace("/", "_").replace(":", "_") / key

    def _path(self, group: str, batch: int) -> Path:
        return self.dir / group / f"b{batch:05d}.json"

    def get(self, group: str, batch: int, *, index: tuple[int, int] | None = None,
            check: Callable[[dict], None] | None = None) -> dict | None:
        """The verified record of (group, batch), or None when absent or rejected (then recompute it).

        Args:
            index: the example range ``[start, stop)`` the batch covers; a record for another range is rejected.
            check: raises ValueError when the record breaks an invariant of its kind (lengths, subsets ...).
        """
        p = self._path(group, batch)
        if not p.is_file():
            return None
        try:
            rec = json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            return self._reject(p, f"is not valid JSON (truncated or corrupt: {err})")
        if not isinstance(rec, dict) or not rec:
            return self._reject(p, "is empty or not a JSON object")
        meta = rec.pop(INTEGRITY, None)
        if meta is None:  # unsigned: only a store that still says format 1 may hold such records
            if self.strict or not self.legacy_format():
                return self._reject(p, "is not signed (no _integrity block)" + (
                    "" if self.legacy_format() else f"; this store's meta.json says format {self.format()}, "
                    "whose records are all signed"))
        else:
            problem = self._verify(meta, rec, group, batch, index)
            if problem:
                return self._reject(p, problem)
        if check is not None:
            try:
                check(rec)
            except (ValueError, TypeError, KeyError, IndexError) as err:
                return self._reject(p, f"breaks an invariant: {err}")
        if meta is None and self.dir not in _legacy_reported:
            _legacy_reported.add(self.dir)
            log.info("store %s says format 1 (written before records were signed): its unsigned records are "
                     "accepted after their invariant checks", self.dir)
        return rec

    def format(self) -> int | None:
        """The store format its ``meta.json`` declares (None: no manifest yet); read once per Store."""
        if not hasattr(self, "_format"):
            manifest = self.manifest()
            fmt = manifest.get("format") if isinstance(manifest, dict) else None
            self._format = fmt if isinstance(fmt, int) else None
        return self._format

    def legacy_format(self) -> bool:
        """The manifest says format 1: the store predates signed records."""
        return self.format() == 1

    def _verify(self, meta, rec: dict, group: str, batch: int, index) -> str | None:
        if not isinstance(meta, dict):
            return "has a malformed _integrity block"
        for field, want in (("key", self.key), ("group", group), ("batch", batch)):
            if meta.get(field) != want:
                return f"belongs to {field} {meta.get(field)!r}, not {want!r} (copied from another run?)"
        # a record merged from a remote shard may lack the range; its lengths are still checked
        if index is not None and meta.get("index") is not None and meta.get("index") != list(index):
            return f"covers examples {meta.get('index')}, but batch {batch} is examples {list(index)}"
        got = str(meta.get("hash", ""))
        if not got.startswith("hmac-sha256:"):
            return ("is not signed (a bare content hash, which anyone can recompute after an edit); signed "
                    "records carry an HMAC")
        where = [meta.get("key"), meta.get("group"), meta.get("batch"), meta.get("index")]
        if not hmac.compare_digest(got, record_hash(rec, where, store_secret())):
            source = f"${SECRET_ENV}" if os.environ.get(SECRET_ENV) else f"your key {user_secret_path()}"
            return (f"fails its signature (edited after it was written, or signed with another key than "
                    f"{source})")
        return None

    def _reject(self, path: Path, problem: str) -> None:
        if self.strict:
            raise StoreRecordError(f"store record {path} {problem}; refusing it (strict): delete the file to "
                                   "recompute it, or run without strict")
        log.warning("store record %s %s: not used, recomputing it", path, problem)
        return None

    def put(self, group: str, batch: int, record: dict, *, index: tuple[int, int] | None = None) -> None:
        """Write ``record`` with its integrity block (the caller's dict is not changed).

        ``index`` defaults to the range in ``record["_integrity"]`` when the record carries one (a
        shard's record handed to the driver, see :func:`with_index`).
        """
        if index is None and isinstance(record.get(INTEGRITY), dict):
            index = record[INTEGRITY].get("index")
        # hash what a reader will parse (JSON turns tuples into lists and int keys into strings)
        rec = json.loads(json.dumps({k: v for k, v in record.items() if k != INTEGRITY}))
        where = [self.key, group, batch, list(index) if index is not None else None]
        rec[INTEGRITY] = {"format": FORMAT, "key": self.key, "group": group, "batch": batch, "index": where[3],
                          "hash": record_hash(rec, where, store_secret())}
        atomic_write_text(self._path(group, batch), json.dumps(rec))

    def write_meta(self, meta: dict) -> None:
        """The run's manifest (``meta.json``): what the run is, its key and the store format."""
        manifest = {"format": FORMAT, "key": self.key, **meta}
        path = self.dir / "meta.json"
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            old = None
        if isinstance(old, dict) and old.get("key", self.key) != self.key:
            log.warning("manifest %s names run key %s, not %s (directory moved or edited); rewriting it",
                        path, old.get("key"), self.key)
        if old != json.loads(json.dumps(manifest, default=str)):
            atomic_write_text(path, json.dumps(manifest, indent=1, default=str))
        self._format = FORMAT

    def manifest(self) -> dict | None:
        try:
            return json.loads((self.dir / "meta.json").read_text())
        except (OSError, ValueError):
            return None
