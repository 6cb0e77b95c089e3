"""Move a per-example store between machines: ``symbench store export`` / ``symbench store import``.

A store's records are signed with a key that never leaves its machine (bench/run/store.py), so a store
copied elsewhere is recomputed there, record by record. That is right for a store someone else could
have written, and wasteful for your own: a GPU machine's shards brought home, a long sharded run carried
from one short-lived machine to the next. Export writes the records your key verifies into one gzipped
JSON-lines file (no key in it); import re-signs them with the importing key, which is a decision to
vouch for them, the way ``git pull`` of rows.jsonl is. What import still checks: each record names the
run, group, batch and example range of the place it goes (a record moved to another batch is refused),
the run's manifest agrees with the destination's, and a record already in the destination is never
replaced by a different one. What it cannot check is content: reading a record back still runs its
invariant checks, and ``symbench leaderboard verify`` recomputes a sample of a finished row's examples.
"""
from __future__ import annotations

import datetime as _dt
import fnmatch
import gzip
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from symbench.bench.run.cascade import partial_group
from symbench.bench.run.store import INTEGRITY, Store, atomic_write_text, check_writable_dir

log = logging.getLogger(__name__)

EXPORT_FORMAT = 1
_NAME = re.compile(r"^[A-Za-z0-9_.+=-]+$")   # a store directory's model part or a group (no '/', no '..')
_KEY = re.compile(r"^[0-9a-f]{8,64}$")
_RECORD = re.compile(r"^b(\d{5,})\.json$")
_PARTIAL = partial_group("")   # the suffix of an interrupted batch's checkpoint group
_MANIFEST_FIELDS = ("model", "suite", "data_sha256", "n", "batch_size")  # what must agree between stores


@dataclass
class Transfer:
    """What an export or import did, per record."""
    runs: int = 0
    records: int = 0          # written (export) or imported and re-signed (import)
    already: int = 0          # import: the destination already holds the same record
    skipped: list[str] = field(default_factory=list)   # export: records this key does not verify
    refused: list[str] = field(default_factory=list)   # import: records not imported, with the reason

    def line(self, verb: str, where: str) -> str:
        parts = [f"{verb} {self.records} record(s) of {self.runs} run(s) {where}"]
        if self.already:
            parts.append(f"{self.already} already there")
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped (not verified by this key)")
        if self.refused:
            parts.append(f"{len(self.refused)} refused")
        return "; ".join(parts)


def _safe(name, what: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name) or name in {".", ".."}:
        raise ValueError(f"{what} {name!r} is not a store directory name")
    return name


def _run_dirs(root: Path, models: list[str] | None):
    for meta in sorted(root.glob("*/*/meta.json")):
        run = meta.parent
        if not models or any(fnmatch.fnmatch(run.parent.name, m) for m in models):
            yield run


def export_store(root: str | Path, out: str | Path, *, models: list[str] | None = None) -> Transfer:
    """Write every record of ``root`` (of runs whose model directory matches one of ``models``) this key verifies."""
    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise ValueError(f"no store at {root}")
    check_writable_dir(out.parent)
    result = Transfer()
    lines = [json.dumps({"symbench_store_export": EXPORT_FORMAT,
                         "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})]
    for run in _run_dirs(root, models):
        store = Store(root, run.parent.name, run.name)
        manifest = store.manifest()
        if not isinstance(manifest, dict) or manifest.get("key") != run.name:
            result.skipped.append(f"{run}: its meta.json does not name run key {run.name}")
            continue
        result.runs += 1
        lines.append(json.dumps({"model_dir": run.parent.name, "key": run.name, "meta": manifest}))
        for path in sorted(run.glob("*/b*.json")):
            m = _RECORD.match(path.name)
            if not m:
                continue
            group, batch = path.parent.name, int(m.group(1))
            try:
                index = json.loads(path.read_text()).get(INTEGRITY, {}).get("index")
            except (ValueError, AttributeError):
                index = None
            rec = store.get(group, batch, index=tuple(index) if isinstance(index, list) else None)
            if rec is None:
                result.skipped.append(str(path))
                continue
            rec[INTEGRITY] = {"key": run.name, "group": group, "batch": batch, "index": index}
            lines.append(json.dumps({"model_dir": run.parent.name, "key": run.name, "group": group,
                                     "batch": batch, "record": rec}))
            result.records += 1
    if not result.runs:
        raise ValueError(f"no runs in {root}" + (f" whose model matches {' or '.join(models)}" if models else ""))
    atomic_write_text(out, gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0))
    return result


def _batch_range(manifest: dict, batch: int) -> list[int] | None:
    n, bs = manifest.get("n"), manifest.get("batch_size")
    if not isinstance(n, int) or not isinstance(bs, int) or bs < 1:
        return None
    return [batch * bs, min(n, (batch + 1) * bs)]


def import_store(src: str | Path, root: str | Path) -> Transfer:
    """Re-sign the records of an export file ``src`` into the store at ``root`` (see the module docstring)."""
    src, root = Path(src), Path(root)
    try:
        with gzip.open(src, "rt") as f:
            lines = [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        raise ValueError(f"no export file {src}") from None
    except (OSError, EOFError, ValueError) as err:
        raise ValueError(f"{src} is not a store export (gzipped JSON lines): {err}") from None
    if not lines or not isinstance(lines[0], dict) or lines[0].get("symbench_store_export") != EXPORT_FORMAT:
        raise ValueError(f"{src} is not a symbench store export (format {EXPORT_FORMAT}); write one with "
                         "`symbench store export`")
    check_writable_dir(root)
    result = Transfer()
    manifests: dict[tuple[str, str], dict | None] = {}
    for i, item in enumerate(lines[1:], start=2):
        where = f"{src} line {i}"
        try:
            model_dir, key = _safe(item.get("model_dir"), "model directory"), item.get("key")
            if not isinstance(key, str) or not _KEY.match(key):
                raise ValueError(f"run key {key!r} is not a store key")
            store = Store(root, model_dir, key)
            if "meta" in item:
                manifests[(model_dir, key)] = _adopt_manifest(store, item["meta"])
                result.runs += 1
                continue
            manifest = manifests.get((model_dir, key))
            if manifest is None:
                raise ValueError(f"its run {model_dir}/{key} has no manifest line before it (or the manifest was refused)")
            group, batch, rec = _safe(item.get("group"), "group"), item.get("batch"), item.get("record")
            if not isinstance(batch, int) or batch < 0 or not isinstance(rec, dict):
                raise ValueError("batch or record missing")
            meta = rec.pop(INTEGRITY, None)
            if not isinstance(meta, dict) or [meta.get("key"), meta.get("group"), meta.get("batch")] != [key, group, batch]:
                raise ValueError(f"its record names {_names(meta)}, not run {key} group {group!r} batch {batch} "
                                 "(moved to another place)")
            index = meta.get("index")
            want = _batch_range(manifest, batch)
            if index is not None and want is not None and index != want:
                raise ValueError(f"its record covers examples {index}, but batch {batch} of this run is {want}")
            span = tuple(index) if index else None
            checkpoint = group.endswith(_PARTIAL)
            if checkpoint and store.get(group.removesuffix(_PARTIAL), batch, index=span) is not None:
                result.already += 1   # the destination finished this batch: its record supersedes any checkpoint
                continue
            held = store.get(group, batch, index=span)
            if held is not None and checkpoint and _further_partial(held, rec) is held:
                result.already += 1   # the destination's interrupted batch got as far or further: keep it
                continue
            if held is not None and not checkpoint:
                if _same(held, rec):
                    result.already += 1
                    continue
                raise ValueError(f"the destination already holds a different record of {model_dir}/{key} {group} "
                                 f"batch {batch}; kept it (delete it to take the imported one)")
            store.put(group, batch, rec, index=span)
            result.records += 1
        except (ValueError, TypeError, AttributeError) as err:
            result.refused.append(f"{where}: {err}")
            log.warning("not imported: %s: %s", where, err)
    return result


def _further_partial(held: dict, rec: dict) -> dict:
    """Of two states of one interrupted batch, the one more attacks into it; they must agree where both ran.

    A partial record is a checkpoint (bench/run/cascade.py), not a result: two machines that stopped the
    same batch at different attacks hold different ones, both right. Attacks are seeded by position,
    so the masks of the attacks both finished are equal, or one of them is wrong.
    """
    a, b = held.get("robust_after"), rec.get("robust_after")
    if not isinstance(a, dict) or not isinstance(b, dict) or any(a[k] != b[k] for k in a.keys() & b.keys()):
        raise ValueError("the destination holds a different state of this interrupted batch whose finished attacks "
                         "disagree with it; kept it (delete it to take the imported one)")
    return held if len(a) >= len(b) else rec


def _names(meta) -> str:
    if not isinstance(meta, dict):
        return "no place (no _integrity block)"
    return f"run {meta.get('key')} group {meta.get('group')!r} batch {meta.get('batch')}"


def _same(a: dict, b: dict) -> bool:
    strip = lambda r: {k: v for k, v in r.items() if k not in {INTEGRITY, "seconds"}}  # noqa: E731
    return json.loads(json.dumps(strip(a))) == json.loads(json.dumps(strip(b)))


def _adopt_manifest(store: Store, meta) -> dict:
    if not isinstance(meta, dict) or meta.get("key") != store.key:
        raise ValueError(f"its manifest does not name run key {store.key}")
    held = store.manifest()
    if isinstance(held, dict):
        diff = [f for f in _MANIFEST_FIELDS if held.get(f) != meta.get(f)]
        if diff:
            raise ValueError(f"the destination's manifest of run {store.key} differs in {', '.join(diff)}")
        return held
    store.write_meta({k: v for k, v in meta.items() if k not in {"format", "key"}})
    return meta
