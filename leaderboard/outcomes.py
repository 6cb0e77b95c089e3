"""Published per-example outcomes: ``leaderboard/v1/outcomes.jsonl``, one record per attack row's run and (threat, eps).

Each line is ``{"model", "store_key", "group", "suite_id", "data_sha256", "sha256", "outcome"}`` where
``outcome`` is a packed :class:`~symbench.bench.run.outcomes.RowOutcome` and ``sha256`` its digest. A row
points at exactly one record: its ``(model, store_key, threat, eps)`` and, for an escalated row, its
``escalation_id`` (:func:`record_key`), and since issue 23 the digest it carries as ``outcomes_sha256``.
A record recomputed for a row keyed before the model code's hash also names ``recomputed_key``, the store
key its run has today (leaderboard/backfill.py).
The file is append-only like the rows, written by ``--publish`` /
``leaderboard add`` together with the rows, shipped as package data, and read by ``compare``,
``findings`` and ``leaderboard verify`` where the user's own store lacks a run.

Rows published before outcomes were (those whose run is not yet recomputed) are listed in
``outcomes_pending.jsonl`` beside it: ``leaderboard validate`` fails on any other attack row without
outcomes, and on a listed row whose outcomes have since been published (the list only shrinks).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

from symbench.paths import package_file

log = logging.getLogger("symbench")

OUTCOMES_FILE = "outcomes.jsonl"
PENDING_FILE = "outcomes_pending.jsonl"
# suites whose rows are a cascade over batches of examples: the rows that must publish their outcomes
ATTACK_KIND = "attack"


def published_outcomes() -> Path:
    """The shipped outcomes beside the shipped rows (package data)."""
    return package_file("symbench.leaderboard", "v1", OUTCOMES_FILE)


def beside(rows_path: str | Path) -> Path:
    """The outcomes file that belongs to a rows file (same folder)."""
    return Path(rows_path).parent / OUTCOMES_FILE


def group_of(row: dict) -> str:
    return f"{row['threat']}_{row['eps']:.8f}"


def key_of(row: dict) -> tuple[str, str, str]:
    return row["model"], str(row.get("store_key")), group_of(row)


# suite kinds whose rows are means of per-example masks in the runner's layout (clean + one group per threat/eps)
MASK_KINDS = frozenset({ATTACK_KIND, "spatial", "rotation_curve", "spatial_linf"})


@lru_cache(maxsize=None)
def _other_kinds() -> frozenset[str]:
    """Shipped suites whose rows are not means of runner-layout masks (corruptions, corrupted_adv, CLEVER)."""
    from symbench.bench.suites import SUITE_DIR, load_suite

    return frozenset(p.stem for p in SUITE_DIR.glob("*.toml") if load_suite(p.stem).kind not in MASK_KINDS)


@lru_cache(maxsize=None)
def suite_kind(name: str) -> str:
    """A shipped suite's kind; a suite symbench does not ship (a submitter's file) counts as an attack suite."""
    from symbench.bench.suites import UnknownSuiteError, load_suite

    try:
        return load_suite(name).kind
    except (UnknownSuiteError, ValueError, OSError):
        return ATTACK_KIND


def needs_outcomes(row: dict) -> bool:
    """A measured row of an attack or spatial suite (shipped or a submitter's): its numbers are means of masks."""
    return (row.get("kind", "measured") == "measured" and bool(row.get("store_key"))
            and row.get("robust_acc") is not None and not row.get("variant")
            and (row.get("suite") not in _other_kinds() or "outcomes_sha256" in row))


def record_key(row_or_record: dict) -> tuple[str, str, str, str]:
    """A record's identity: its run and (threat, eps), and the escalation whose mask it carries ("" for none).

    One run can have two published rows, the suite's and an escalation of it (issue 26); their records share
    the suite's masks and differ in the escalated one, so each has a record of its own.
    """
    d = row_or_record
    group = d["group"] if "group" in d else group_of(d)
    return d["model"], str(d.get("store_key")), group, d.get("escalation_id") or ""


@dataclass(frozen=True)
class OutcomeIndex:
    """The records of one outcomes file by :func:`record_key`."""

    path: Path
    records: dict

    @cached_property
    def by_run(self) -> dict:
        """(model, store_key, group) → that run's records (the suite's, and one per published escalation)."""
        out: dict = {}
        for k, rec in self.records.items():
            out.setdefault(k[:3], []).append(rec)
        return out

    @property
    def runs(self) -> set:
        """The (model, store_key, group) of every run with a record (what the pending list names)."""
        return set(self.by_run)

    def get(self, row: dict):
        """The verified :class:`RowOutcome` behind ``row``, or None when the file has none for it.

        The record the row names by ``outcomes_sha256`` among its run's records; a row that names none (published
        before issue 23) takes its own record, else any of its run's (they share the suite's masks).
        Raises ValueError when a record exists but is damaged, or its digest is not the one the row carries.
        """
        from symbench.bench.run.outcomes import RowOutcome

        run = self.by_run.get(key_of(row), [])
        if not run:
            return None
        want = row.get("outcomes_sha256")
        named = [rec for rec in run if rec["sha256"] == want]
        rec = named[0] if named else (self.records.get(record_key(row)) or run[0])
        out = RowOutcome.from_json(rec["outcome"])
        if out.sha256() != rec["sha256"]:
            raise ValueError(f"{self.path}: the outcome record of {row['model']} {rec['group']} (store key "
                             f"{rec['store_key']}) fails its sha256 (edited after it was published)")
        if want and want != rec["sha256"]:
            raise ValueError(f"{row['model']} {row['suite']} {row['threat']} eps {row.get('eps_display')}: the row "
                             f"points at outcomes {want[:12]}, {self.path} holds "
                             f"{', '.join(r['sha256'][:12] for r in run)}")
        return out


def load_index(path: str | Path | None = None) -> OutcomeIndex:
    """The outcomes file ``path`` (default: the shipped one), read once per (path, size, mtime)."""
    path = Path(path) if path else published_outcomes()
    try:
        st = path.stat()
    except FileNotFoundError:
        return OutcomeIndex(path, {})
    return _load(str(path), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=8)
def _load(path: str, size: int, mtime: int) -> OutcomeIndex:
    records = {}
    for i, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            records[record_key(rec)] = rec
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"{path}:{i}: not an outcome record ({err})") from None
    return OutcomeIndex(Path(path), records)


def record_for(row: dict, outcome, recomputed_key: str | None = None) -> dict:
    """The published record of ``row``'s outcomes; ``recomputed_key``: the store key they were recomputed under
    when it is not the row's (a row keyed before the model code's hash: leaderboard/recover.py)."""
    rec = {"model": row["model"], "store_key": row["store_key"], "group": group_of(row),
           "suite_id": row.get("suite_id"), "data_sha256": row.get("data_sha256"), "sha256": outcome.sha256(),
           "outcome": outcome.to_json()}
    if row.get("escalation_id"):
        rec["escalation_id"] = row["escalation_id"]
    if recomputed_key:
        rec["recomputed_key"] = recomputed_key
    return rec


def outcome_of(row: dict, store_root):
    """The row's outcomes from the store, checked against its numbers (ValueError naming what is wrong)."""
    from symbench.bench.run.outcomes import from_store

    outcome = from_store(row, store_root)
    bad = outcome.disagreements(row)
    if bad:
        raise ValueError(f"{row['model']} {row['suite']} {row['threat']} eps {row.get('eps_display')}: the store's "
                         f"outcomes do not give the row's numbers: {'; '.join(bad)}")
    return outcome


def append_records(outcomes_path: str | Path, records: list[dict]) -> int:
    """Append outcome records not yet in the file (under the rows' file lock); returns how many were added.

    A record the file already holds (:func:`record_key`) with another digest is refused, and so is one whose
    suite masks (clean, robust, per attack) differ from another record of the same run: outcomes are
    append-only and a run's outcomes are deterministic. An escalation of a published run adds its own record.
    """
    from symbench.bench.run.records import rows_lock
    from symbench.bench.run.store import atomic_write_text, check_writable, resolve_target

    path = resolve_target(Path(outcomes_path))
    check_writable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with rows_lock(path):
        have = load_index(path).records
        runs: dict[tuple, list[dict]] = {}  # the records of each run (record_key[:3]): one scan, not one per record
        for kk, o in have.items():
            runs.setdefault(kk[:3], []).append(o)
        masks: dict[int, tuple] = {}        # a record's suite masks, decoded once (by identity, not its claims)

        def suite_masks(o):
            if id(o) not in masks:
                masks[id(o)] = _suite_masks(o)
            return masks[id(o)]
        new = []
        for rec in records:
            k = record_key(rec)
            old = have.get(k)
            same_run = runs.get(k[:3], [])
            if (old is not None and old["sha256"] != rec["sha256"]) or any(suite_masks(o) != suite_masks(rec)
                                                                            for o in same_run):
                other = old or same_run[0]
                raise ValueError(f"{path} already holds other outcomes for {rec['model']} {rec['group']} store key "
                                 f"{rec['store_key']} ({other['sha256'][:12]} vs {rec['sha256'][:12]}): outcomes are "
                                 "append-only, and a run's outcomes do not change")
            if old is None and any(o["sha256"] == rec["sha256"] for o in same_run):
                continue  # the same outcomes, published before records named their escalation
            if old is None:
                have[k] = rec
                runs.setdefault(k[:3], []).append(rec)
                new.append(rec)
        if new:
            text = path.read_text() if path.is_file() else ""
            if text and not text.endswith("\n"):
                text += "\n"
            atomic_write_text(path, text + "".join(json.dumps(r, sort_keys=True, separators=(",", ":")) + "\n"
                                                   for r in new))
            log.info("published the per-example outcomes of %d run(s) to %s", len(new), path)
    return len(new)


def _suite_masks(rec: dict) -> tuple:
    """A record's masks of the suite itself (not the escalation's): the same in every record of one run."""
    from symbench.bench.run.outcomes import RowOutcome

    o = RowOutcome.from_json(rec["outcome"])
    return o.n, o.clean, o.robust, sorted(o.after.items())


def attach(rows: list[dict], store_root, outcomes_path: str | Path) -> list[dict]:
    """Publish the outcomes of ``rows`` from ``store_root`` into ``outcomes_path``; returns the rows pointing at them.

    Every row that :func:`needs_outcomes` gets ``outcomes_sha256``. All or nothing: a row whose run is not
    in the store, or whose masks' means are not its accuracies, is an error and nothing is written.
    """
    out, records = [], []
    for row in rows:
        if not needs_outcomes(row):
            out.append(row)
            continue
        try:
            outcome = outcome_of(row, store_root)
        except ValueError as err:
            raise ValueError(f"cannot publish {row['model']} {row['suite']} {row['threat']} eps "
                             f"{row.get('eps_display')} without its per-example outcomes: {err}") from None
        rec = record_for(row, outcome)
        records.append(rec)
        out.append({**row, "outcomes_sha256": rec["sha256"]})
    if records:
        append_records(outcomes_path, records)
    return out


def resolve(row: dict, store_root=None, outcomes_path: str | Path | None = None):
    """``(RowOutcome, source)`` for a row: the user's store when it holds the run, else the published outcomes.

    ``source`` says which ("store <dir>" or "published <file>"). Raises ValueError saying both were tried.
    """
    from symbench.bench.run.outcomes import from_store
    from symbench.paths import describe, user_store

    try:
        return from_store(row, store_root), f"store {describe(Path(store_root or user_store()))}"
    except ValueError as store_err:
        index = load_index(outcomes_path)
        got = index.get(row)
        if got is None:
            raise ValueError(f"no per-example outcomes for {row['model']} {row['suite']} {row['threat']} eps "
                             f"{row.get('eps_display', row['eps'])} (n={row.get('n')}): not in your store "
                             f"({store_err}) nor in the published outcomes {describe(index.path)}; run the suite "
                             "first") from None
        return got, f"published {describe(index.path)}"


def pending_path(rows_path: str | Path) -> Path:
    return Path(rows_path).parent / PENDING_FILE


def read_pending(rows_path: str | Path) -> set[tuple[str, str, str]]:
    p = pending_path(rows_path)
    if not p.is_file():
        return set()
    return {(r["model"], r["store_key"], r["group"]) for r in map(json.loads, p.read_text().splitlines()) if r}


def write_pending(rows_path: str | Path, keys: set[tuple[str, str, str]]) -> Path:
    from symbench.bench.run.store import atomic_write_text

    p = pending_path(rows_path)
    atomic_write_text(p, "".join(json.dumps({"model": m, "store_key": k, "group": g}) + "\n"
                                 for m, k, g in sorted(keys)))
    return p


def prune_pending(rows_path: str | Path, outcomes_path: str | Path | None = None) -> int:
    """Take off the pending list every entry whose outcomes are published now (by a backfill, or by a rerun
    of the same run published with its outcomes); returns how many. Locked: two ``--jobs`` slices finishing
    together must not each write back the list they read before the other pruned it."""
    from symbench.bench.run.records import rows_lock

    with rows_lock(pending_path(rows_path)):
        pending = read_pending(rows_path)
        done = pending & load_index(outcomes_path or beside(rows_path)).runs if pending else set()
        if done:
            write_pending(rows_path, pending - done)
    return len(done)


def validate(rows_path: str | Path, outcomes_path: str | Path | None = None) -> tuple[list[str], int]:
    """Problems of a rows file's outcomes, and how many rows wait in the pending list.

    A problem: an attack row with no outcome record that the pending list does not name; a record that
    fails its digest or that the row's ``outcomes_sha256`` does not name; accuracies that are not the
    masks' means; a pending entry that has outcomes now (take it off the list).
    """
    from symbench.bench.run.records import read_rows

    rows = read_rows(rows_path)
    index = load_index(outcomes_path or beside(rows_path))
    pending = read_pending(rows_path)
    errors, waiting, checked = [], 0, {}
    for i, row in enumerate(rows, 1):
        if not needs_outcomes(row):
            continue
        where = f"{rows_path}:{i}: {row['model']} {row['suite']} {row['threat']} eps {row.get('eps_display')}"
        try:
            got = index.get(row)
        except ValueError as err:
            errors.append(f"{where}: {err}")
            continue
        if got is None:
            if key_of(row) in pending and not row.get("outcomes_sha256"):
                waiting += 1
            else:
                errors.append(f"{where}: no per-example outcomes in {index.path.name}"
                              + (" (the row names some)" if row.get("outcomes_sha256") else ""))
            continue
        if key_of(row) in pending:
            errors.append(f"{where}: has published outcomes now; remove it from {PENDING_FILE}")
        bad = got.disagreements(row)
        if bad and (all(p.startswith(SOFT) for p in bad) or _drawn_unseeded(row)) and _superseded(row, rows, index):
            log.info("%s: %s (a superseded row: its run's randomized clean draws were recomputed later, and the "
                     "newer row's numbers all agree with them)", where, "; ".join(bad))
            bad = []
        errors += [f"{where}: {p}" for p in bad]
        checked[key_of(row)] = True
    return errors, waiting


# A randomized model's expected single-draw accuracies. Until 2026-12-07 its clean pass drew from the process's random
# state (the attack batches were seeded, the clean pass was not), so recomputing such a run (same key, same worst-of-k
# masks) could draw them differently: e.g. baseline_cnn10_at+equi_defense adaptive (13b0284a), 0.6475 on 2026-12-02,
# 0.6412 on 2026-12-07. The clean pass is seeded now; rows computed before stay as they are.
SOFT = ("clean_acc_expected", "robust_acc_expected")
# When the clean pass was seeded (2d75e9e). Before, a randomized run's k clean draws were unseeded: which examples
# all k draws classify correctly (the clean mask, hence the examples attacked) could differ too on a recompute,
# e.g. equivariant4+equi_defense adaptive (362785d8): clean 59/100 on 2026-12-02, 56/100 seeded.
CLEAN_PASS_SEEDED = "2026-12-07T09:06:34+00:00"


def _drawn_unseeded(row: dict) -> bool:
    """A randomized row computed before the clean pass was seeded: none of its numbers can be drawn again."""
    return int(row.get("draws_k") or 1) > 1 and row.get("created", "") < CLEAN_PASS_SEEDED


def _superseded(row: dict, rows: list[dict], index: OutcomeIndex) -> bool:
    """A newer row of the same run (and threat, eps) whose numbers, the expected accuracies included, all agree
    with the run's published record: the board shows that one."""
    for other in rows:
        if other is row or key_of(other) != key_of(row) or other.get("created", "") <= row.get("created", ""):
            continue
        got = index.get(other)
        if got is not None and not got.disagreements(other):
            return True
    return False
