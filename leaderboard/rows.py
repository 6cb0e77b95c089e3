"""Rows in: reading and schema-checking rows files, the append-only check, and which rows each section takes."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

from symbench.paths import checkout_root, package_file, published_rows

LEADERBOARD_DIR = package_file("symbench.leaderboard")
DEFAULT_ROWS = published_rows()


def read_jsonl(path: str | Path) -> list[dict]:
    """Rows of a JSONL file; a missing file is an empty leaderboard, not an error."""
    from symbench.bench.run.records import read_rows

    return read_rows(path)


def validate_rows_file(path: str | Path) -> list[str]:
    """Every schema error of a rows file as ``"<file>:<line>: <message>"`` (empty list: all valid).

    A frozen version keeps the schema its rows were written against beside them (``v1/schema.json``
    once ``v2/`` exists); otherwise rows are checked against the current ``leaderboard/schema.json``.
    """
    from symbench.bench.run.records import validate_row

    path = Path(path)
    errors = []
    if not path.is_file():
        return errors
    own = path.parent / "schema.json"
    frozen = own.is_file() and own.resolve() != (LEADERBOARD_DIR / "schema.json").resolve()
    check = _schema_checker(own) if frozen else validate_row
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            check(json.loads(line))
        except (ValueError, json.JSONDecodeError) as err:
            errors.append(f"{path}:{i}: {err}")
    return errors


def _schema_checker(schema_path: Path):
    """A row validator for a frozen version's own schema file."""
    import jsonschema

    checker = jsonschema.Draft202012Validator(json.loads(schema_path.read_text()))

    def check(row: dict) -> None:
        errs = list(checker.iter_errors(row))
        if errs:
            raise ValueError(f"row does not match {schema_path}: " + "; ".join(e.message for e in errs[:5]))
    return check


def check_append_only(path: str | Path, base: str = "HEAD") -> list[str]:
    """Problems if ``path`` is not its version at git revision ``base`` plus appended lines.

    Rows are evidence: editing or deleting one silently changes what a published number rests on,
    so the only allowed change is appending. Returns [] when git or the base version is unavailable.
    """
    path = Path(path).resolve()
    try:
        root = checkout_root() or Path.cwd()
        rel = path.relative_to(root)
        old = subprocess.run(["git", "show", f"{base}:{rel.as_posix()}"], cwd=root, capture_output=True,
                             text=True, timeout=20)
    except (ValueError, OSError, subprocess.SubprocessError):
        return []
    if old.returncode != 0:
        return []
    old_lines = [line for line in old.stdout.splitlines() if line.strip()]
    new_lines = [line for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    problems = [f"{rel}:{i}: line changed or removed since {base}"
                for i, (a, b) in enumerate(zip(old_lines, new_lines), 1) if a != b]
    if len(new_lines) < len(old_lines):
        problems.append(f"{rel}: {len(old_lines) - len(new_lines)} row(s) removed since {base}")
    return problems


def _variant(r: dict):
    return r.get("variant")


def _is_clever(r):
    return bool(r.get("clever"))


def _is_corruption(r):
    return r["threat"] == "corruptions"


def _is_corrupted_adv(r):
    return r["threat"] in ("linf", "l2") and bool(_variant(r)) and "/" in _variant(r)


def _is_attack(r):
    return (r.get("kind", "measured") == "measured" and r["threat"] in ("linf", "l2") and not _is_clever(r)
            and not _variant(r) and r.get("robust_acc") is not None)


def fgsm_alone(r: dict) -> float | None:
    """Accuracy after FGSM alone: the first attack of a cascade is the only one whose acc_after is its own."""
    atts = r.get("attacks") or []
    if atts and "fgsm" in atts[0]["label"].lower():
        return atts[0]["acc_after"]
    return None


CURVE_SUITES = ("paper_worst", "paper")  # the worst-case curve first, then seed 1's FGSM + PGD-40 protocol


def curve_basis(r: dict) -> str:
    """What a robustness-vs-eps point is: ``worst`` (APGD-CE + APGD-T included, or nothing survived, or the
    stronger-attack spot check passed or only warned on it: within its 2 points) or ``seed`` (FGSM + PGD-40
    only: an upper bound)."""
    if r["suite"] == "paper_worst" or not r.get("robust_acc"):
        return "worst"
    spot = (r.get("checks") or {}).get("apgd_not_stronger") or {}
    return "worst" if spot.get("status") in ("pass", "warn") else "seed"  # warn: within the 2-point tolerance


def curve_rows(rows: list[dict]) -> dict[str, dict[float, dict]]:
    """model -> Linf eps -> the row its robustness-vs-eps curve draws: the worst-case suite ``paper_worst``
    where the model has it at that eps (largest n), else the seed-protocol ``paper`` row (``curve_basis``)."""
    out: dict[str, dict[float, dict]] = {}
    rank = {s: i for i, s in enumerate(CURVE_SUITES)}
    for r in rows:
        if r["suite"] not in rank or r["threat"] != "linf" or not _is_attack(r):
            continue
        cur = out.setdefault(r["model"], {}).get(e := round(float(r["eps"]), 9))
        if cur is None or (rank[r["suite"]], -r["n"]) < (rank[cur["suite"]], -cur["n"]):
            out[r["model"]][e] = r
    return out


def seed_pgd(r: dict) -> float | None:
    """Accuracy after seed 1's FGSM + PGD-40 within a row's cascade (the ``paper`` number on the same examples)."""
    return next((a["acc_after"] for a in r.get("attacks") or [] if a["label"].startswith("art_pgd")), None)


def failing_checks(r: dict) -> list[tuple[str, str]]:
    return [(k, c.get("detail", "")) for k, c in sorted((r.get("checks") or {}).items()) if c.get("status") == "fail"]


def _rel(path: Path) -> str:
    try:
        return path.resolve().relative_to(checkout_root() or Path.cwd()).as_posix()
    except ValueError:
        return str(path)
