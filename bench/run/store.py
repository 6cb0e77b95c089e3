"""Per-example outcomes on disk: one JSON file per (run, threat, eps, batch), written atomically.

A run killed at any point leaves only complete batch files; rerunning skips them and recomputes the
rest with the same per-batch seeds, so the final numbers equal an uninterrupted run's.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def run_key(**parts) -> str:
    """Stable hash of what determines a run's per-example outcomes."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Store:
    """Directory of outcome files for one run: ``<root>/<model>/<key>/<group>/b<i>.json``."""

    def __init__(self, root: str | Path, model: str, key: str):
        self.dir = Path(root) / model.replace("/", "_").replace(":", "_") / key

    def _path(self, group: str, batch: int) -> Path:
        return self.dir / group / f"b{batch:05d}.json"

    def get(self, group: str, batch: int) -> dict | None:
        p = self._path(group, batch)
        if not p.is_file():
            return None
        try:
            return json.loads(p.read_text())
        except json.JSONDecodeError:  # cannot happen with atomic writes; treat as missing
            return None

    def put(self, group: str, batch: int, record: dict) -> None:
        atomic_write_text(self._path(group, batch), json.dumps(record))

    def write_meta(self, meta: dict) -> None:
        atomic_write_text(self.dir / "meta.json", json.dumps(meta, indent=1, default=str))
