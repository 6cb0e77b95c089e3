"""Result rows: one schema-versioned JSON line per (model, suite, threat, eps), with provenance."""
from __future__ import annotations

import datetime as _dt
import fcntl
import json
import platform
import subprocess
from contextlib import contextmanager
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import torch

from symbench.bench.run.store import atomic_write_text
from symbench.paths import package_file
from symbench.bench.suites import Suite, eps_display

SCHEMA_VERSION = 1
SCHEMA_PATH = package_file("symbench.leaderboard", "schema.json")
# what makes two rows "the same measurement": appending it again is a no-op
ROW_KEY = ("model", "ckpt_sha256", "suite_id", "threat", "eps", "variant", "n", "seed", "data_sha256")


def toolkit_versions() -> dict[str, str]:
    out = {}
    for dist in ("torch", "adversarial-robustness-toolbox", "pyautoattack", "torchattacks", "e2cnn", "robustbench"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "absent"
    return out


@lru_cache(maxsize=1)
def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def device_string(device) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{platform.machine()}x{torch.get_num_threads()}threads"


def make_row(*, model_name: str, card, ckpt_sha256: str, suite: Suite, outcome, data, device, store_key: str,
             extra: dict | None = None) -> dict:
    """Build a row from a run's per-example outcomes (never from hand-typed numbers)."""
    row = {
        "schema_version": SCHEMA_VERSION,
        "model": model_name,
        "family": getattr(card, "family", None),
        "group": getattr(card, "group", None),
        "params": getattr(card, "params", None),
        "source": getattr(card, "source", "symbench"),
        "kind": "measured",
        "suite": suite.name, "suite_version": suite.version, "suite_sha256": suite.sha256, "suite_id": suite.id,
        "threat": outcome.norm, "eps": float(outcome.eps), "eps_display": eps_display(outcome.eps),
        "variant": None,  # e.g. "gaussian_noise/3" for corruption rows: distinguishes rows of one (suite, eps)
        "n": int(len(outcome.clean)), "seed": suite.seed,
        "clean_acc": outcome.clean_acc, "robust_acc": outcome.robust_acc,
        "attacks": [{"label": k, "acc_after": v} for k, v in outcome.per_attack_acc().items()],
        "ckpt_sha256": ckpt_sha256,
        "data_source": data.source, "data_sha256": data.sha256, "data_split": data.split,
        "toolkits": toolkit_versions(), "commit": git_commit(), "device": device_string(device),
        "wall_seconds": round(outcome.seconds, 3),
        "n_forward": int(outcome.n_forward), "n_backward": int(outcome.n_backward),
        "store_key": store_key,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "checks": {}, "verdict": "unchecked",
    }
    row.update(extra or {})
    return row


@lru_cache(maxsize=1)
def _validator():
    import jsonschema

    schema = json.loads(SCHEMA_PATH.read_text())
    return jsonschema.Draft202012Validator(schema)


def validate_row(row: dict) -> None:
    errors = sorted(_validator().iter_errors(row), key=lambda e: list(e.path))
    if errors:
        raise ValueError("row does not match leaderboard/schema.json: "
                         + "; ".join(f"{'/'.join(map(str, e.path)) or '(row)'}: {e.message}" for e in errors[:5]))


def row_key(row: dict) -> tuple:
    return tuple(row.get(k) for k in ROW_KEY)


def read_rows(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@contextmanager
def rows_lock(path: Path):
    """Exclusive ``flock`` on ``<rows>.lock`` around a read-modify-write of the rows file.

    Atomic replacement alone loses rows when two writers (parallel merges, two ``symbench bench`` runs)
    read the same old file and each replace it with its own additions.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def append_rows(path: str | Path, rows: list[dict]) -> int:
    """Validate every row, then append the ones not already recorded; returns how many were added.

    All-or-nothing: an invalid row means nothing is written. The file is rewritten atomically, under a
    lock, so concurrent writers each add their rows.
    """
    for r in rows:
        validate_row(r)
    path = Path(path)
    with rows_lock(path):
        return _append_unlocked(path, rows)


def _append_unlocked(path: Path, rows: list[dict]) -> int:
    existing = read_rows(path)
    seen = {row_key(r) for r in existing}
    new = []
    for r in rows:
        if row_key(r) not in seen:
            seen.add(row_key(r))
            new.append(r)
    if new:
        text = path.read_text() if path.is_file() else ""
        if text and not text.endswith("\n"):
            text += "\n"
        text += "".join(json.dumps(r, sort_keys=False) + "\n" for r in new)
        atomic_write_text(path, text)
    return len(new)


def format_rows(rows: list[dict]) -> str:
    lines = [f"{'model':22s} {'suite':10s} {'threat':6s} {'eps':>8s} {'clean':>6s} {'robust':>6s}  per-attack (cumulative)"]
    for r in rows:
        per = ", ".join(f"{a['label']} {a['acc_after']:.3f}" for a in r["attacks"])
        if r.get("clever"):  # CLEVER rows: an estimate, robust_acc is null
            c = r["clever"]
            per = (f"CLEVER median {c['median']:.4g} (q1 {c['q1']:.4g}, q3 {c['q3']:.4g}, n={c['n_scored']})"
                   if c.get("median") is not None else "CLEVER: no image scored")
        robust = "  null" if r["robust_acc"] is None else f"{r['robust_acc']:6.3f}"
        variant = f" {r['variant']}" if r.get("variant") else ""
        lines.append(f"{r['model']:22s} {r['suite']:10s} {r['threat']:6s} {r['eps_display']:>8s} "
                     f"{r['clean_acc']:6.3f} {robust}  {per}{variant}  [{r['verdict']}]")
    return "\n".join(lines)
