"""Result rows: one schema-versioned JSON line per (model, suite, threat, eps), with provenance."""
from __future__ import annotations

import datetime as _dt
import json
import platform
import subprocess
from contextlib import contextmanager
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import torch

from symbench.bench.run.store import atomic_write_text, check_writable, remove_stale_temps, resolve_target
from symbench.paths import package_file
from symbench.bench.suites import Suite, eps_display

SCHEMA_VERSION = 1
READABLE_SCHEMA_VERSIONS = (1,)  # what read_rows accepts; a new schema adds its version here with the code reading it
SCHEMA_PATH = package_file("symbench.leaderboard", "schema.json")
# what makes two rows "the same measurement": appending it again is a no-op. checks_id (the check set that
# judged the row; absent on rows from before issue 17) lets a rerun under newer checks supersede an old verdict;
# escalation_id (the remedies and budgets that escalated a flagged row; absent on unescalated rows) likewise lets
# a rerun with escalation supersede the unescalated row, and keeps the two modes apart.
ROW_KEY = ("model", "ckpt_sha256", "suite_id", "threat", "eps", "variant", "n", "seed", "data_sha256", "checks_id",
           "escalation_id")


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
    n_masks = {len(outcome.clean), len(outcome.robust), *(len(v) for v in outcome.robust_after.values())}
    if len(n_masks) != 1:  # a short store record would otherwise give a row whose n is not what it averages
        raise ValueError(f"{model_name} {suite.id} {outcome.norm} eps={outcome.eps:g}: per-example masks have "
                         f"different lengths {sorted(n_masks)}; refusing to aggregate them into a row")
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
    # the model's code, the registered model a wrapper/defense wraps and its checkpoint, a per-threat eps override
    row.update({k: v for k, v in (("code_sha256", getattr(card, "code_sha256", None)),
                                  ("wraps", getattr(card, "base", None)),
                                  ("base_sha256", getattr(card, "base_sha256", None) if getattr(card, "base", None)
                                   else None),
                                  ("eps_override", {t: list(e) for t, e in getattr(suite, "eps_override", ()) or ()})) if v})
    row.update(extra or {})
    if row["n"] != len(outcome.clean) and row.get("n_evaluated") != len(outcome.clean):
        raise ValueError(f"{model_name} {suite.id}: row says n={row['n']} but aggregates {len(outcome.clean)} examples")
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


def check_row(row: dict) -> None:
    """Invariants of an attack row that a schema cannot state: robust <= every cumulative per-attack
    accuracy (non-increasing, in attack order) <= clean, and n >= 1.

    Corruption rows (``robust_acc_is`` set: accuracy on corrupted images, not under attack) and CLEVER
    rows (robust null) have no such order.
    """
    what = f"row {row.get('model')} {row.get('suite_id')} {row.get('threat')} eps={row.get('eps')}"
    if not isinstance(row.get("n"), int) or row["n"] < 1:
        raise ValueError(f"{what}: n must be a positive integer, got {row.get('n')!r}")
    if row.get("robust_acc") is None or row.get("robust_acc_is"):
        return
    chain = [("clean", row["clean_acc"])] + [(a["label"], a["acc_after"]) for a in row.get("attacks", [])]
    chain.append(("robust", row["robust_acc"]))
    for (la, a), (lb, b) in zip(chain, chain[1:]):
        if b > a + 1e-12:
            raise ValueError(f"{what}: accuracy after {lb} ({b:.4f}) exceeds {la} ({a:.4f}); robust accuracy can only "
                             "fall along the cascade, so the outcomes it came from are inconsistent")


def row_key(row: dict) -> tuple:
    return tuple(row.get(k) for k in ROW_KEY)


def read_rows(path: str | Path) -> list[dict]:
    """The rows of a JSONL file ([] when absent); a malformed line, or a row of another ``schema_version``
    (whose fields this code would misread), is a ValueError naming file and line."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{i}: not a JSON row ({err.msg} at column {err.colno}); fix or remove that "
                             "line") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{i}: a row must be a JSON object, got {type(row).__name__}")
        if row.get("schema_version", SCHEMA_VERSION) not in READABLE_SCHEMA_VERSIONS:
            raise ValueError(f"{path}:{i}: schema_version {row['schema_version']!r}, but this symbench reads schema "
                             f"version {', '.join(map(str, READABLE_SCHEMA_VERSIONS))} only (a newer symbench wrote it? "
                             "upgrade, or keep such rows in another file)")
        rows.append(row)
    return rows


@contextmanager
def rows_lock(path: Path):
    """Exclusive lock (``filelock``: ``flock`` on ``<rows>.lock``) around a read-modify-write of the rows file.

    Atomic replacement alone loses rows when two writers (parallel merges, two ``symbench bench`` runs)
    read the same old file and each replace it with its own additions. A symlinked rows file is locked
    at its target, so every writer through any link shares one lock.
    """
    from filelock import FileLock

    path = resolve_target(Path(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path.with_name(path.name + ".lock"))):
        yield


def append_rows(path: str | Path, rows: list[dict]) -> int:
    """Validate every row, then append the ones not already recorded; returns how many were added.

    All-or-nothing: an invalid row means nothing is written. The file is rewritten atomically, under a
    lock, so concurrent writers each add their rows.
    """
    for r in rows:
        validate_row(r)
        check_row(r)
    path = resolve_target(Path(path))  # a symlink: write (and lock) the file it points to
    if path.is_dir():
        raise ValueError(f"{path} is a directory; rows go to a .jsonl file")
    check_writable(path)  # refuse a read-only rows file; never chmod it
    with rows_lock(path):
        remove_stale_temps(path)  # only a killed writer leaves them, and every writer holds this lock
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
