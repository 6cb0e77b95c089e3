"""A row's per-example outcomes as one compact, hashable record: what gets published beside the rows.

A row's numbers are means of masks over its examples (the first ``n`` of the data it names): the clean
mask, the cumulative mask after each attack of the suite, the final robust mask (worst case over every
attack), the escalated mask where escalation ran, and for a randomized model (worst of k draws) the
number of draws each example was correct in, clean and at its worst adversarial example found.
:class:`RowOutcome` holds them; :meth:`RowOutcome.to_json` packs each mask into bits (``numpy.packbits``,
little bit order, base64), so an n=1000 row costs about a kilobyte; :meth:`RowOutcome.sha256` is the
digest a published row carries, so a row points at exactly one outcome record.

:func:`from_store` reads them back from the (verified, signed) store records a run wrote.
"""
from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FORMAT = 1


def pack(mask: list[bool]) -> str:
    """Booleans → base64 of their bits (little bit order), the published form of a mask."""
    return base64.b64encode(np.packbits(np.asarray(mask, dtype=bool), bitorder="little").tobytes()).decode()


def unpack(text: str, n: int) -> list[bool]:
    """Inverse of :func:`pack` for a mask of ``n`` examples; refuses a payload of the wrong length."""
    raw = base64.b64decode(text.encode(), validate=True)
    if len(raw) != (n + 7) // 8:
        raise ValueError(f"a packed mask of {n} examples has {(n + 7) // 8} bytes, got {len(raw)}")
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), bitorder="little")
    if bits[n:].any():
        raise ValueError("a packed mask has bits set past its last example")
    return bits[:n].astype(bool).tolist()


def mask_sha256(mask: list[bool]) -> str:
    """The digest findings.json cites per mask (one byte per example: 0 or 1)."""
    return hashlib.sha256(bytes(int(b) for b in mask)).hexdigest()


@dataclass(frozen=True)
class RowOutcome:
    """The per-example outcomes behind one row (examples ``start .. start + n - 1`` of its data)."""

    n: int
    clean: list[bool]
    robust: list[bool]
    after: dict[str, list[bool]] = field(default_factory=dict)   # cumulative, in the suite's attack order
    escalated: list[bool] | None = None
    draws: int = 1
    clean_hits: list[int] | None = None    # k > 1: draws correct on the clean input, per example
    robust_hits: list[int] | None = None   # k > 1: draws correct at the worst adversarial example found
    start: int = 0

    def __post_init__(self):
        masks = [self.clean, self.robust, *self.after.values()] + ([self.escalated] if self.escalated else [])
        for m in masks + [h for h in (self.clean_hits, self.robust_hits) if h is not None]:
            if len(m) != self.n:
                raise ValueError(f"an outcome mask has {len(m)} entries for n={self.n}")

    def to_json(self) -> dict:
        d = {"format": FORMAT, "n": self.n, "start": self.start, "clean": pack(self.clean),
             "robust": pack(self.robust), "after": {k: pack(v) for k, v in self.after.items()}}
        if self.escalated is not None:
            d["escalated"] = pack(self.escalated)
        if self.draws > 1:
            d["draws"] = self.draws
            d["clean_hits"] = base64.b64encode(bytes(self.clean_hits or [])).decode()
            d["robust_hits"] = base64.b64encode(bytes(self.robust_hits or [])).decode()
        return d

    @classmethod
    def from_json(cls, d: dict) -> "RowOutcome":
        if d.get("format") != FORMAT:
            raise ValueError(f"outcome record format {d.get('format')!r}, this symbench reads {FORMAT}")
        n = int(d["n"])
        hits = {k: list(base64.b64decode(d[k])) for k in ("clean_hits", "robust_hits") if k in d}
        return cls(n=n, clean=unpack(d["clean"], n), robust=unpack(d["robust"], n),
                   after={k: unpack(v, n) for k, v in d.get("after", {}).items()},
                   escalated=unpack(d["escalated"], n) if d.get("escalated") else None,
                   draws=int(d.get("draws", 1)), start=int(d.get("start", 0)), **hits)

    def sha256(self) -> str:
        """Digest of the packed record: what a published row carries as ``outcomes_sha256``."""
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    def mask(self, metric: str) -> list[bool]:
        """``robust`` (worst case over the suite), ``clean``, ``escalated``, or ``after:<attack label>``."""
        if metric == "robust":
            return self.robust
        if metric == "clean":
            return self.clean
        if metric == "escalated":
            if self.escalated is None:
                raise ValueError("this row has no escalated outcome")
            return self.escalated
        if metric.startswith("after:") and metric[6:] in self.after:
            return self.after[metric[6:]]
        raise ValueError(f"unknown outcome {metric!r}; have robust, clean, escalated, after:<{'|'.join(self.after)}>")

    def disagreements(self, row: dict) -> list[str]:
        """Where the row's accuracies are not its masks' means (counts compared exactly)."""
        out = []

        def same(acc, mask, what):
            if acc is None:
                return
            want = sum(mask)
            if round(float(acc) * self.n) != want or abs(float(acc) - want / self.n) > 0.5 / self.n:
                out.append(f"{what} {float(acc):.4f} but its mask holds {want}/{self.n} = {want / self.n:.4f}")

        if row.get("n") != self.n and row.get("n_evaluated") != self.n:
            out.append(f"n={row.get('n')} but the outcome record holds {self.n} examples")
            return out
        same(row.get("clean_acc"), self.clean, "clean_acc")
        same(row.get("robust_acc"), self.robust, "robust_acc")
        for a in row.get("attacks") or []:
            if a["label"] not in self.after:
                out.append(f"attack {a['label']!r} has no mask in the outcome record")
            else:
                same(a.get("acc_after"), self.after[a["label"]], f"acc after {a['label']}")
        extra = set(self.after) - {a["label"] for a in row.get("attacks") or []}
        if extra:
            out.append(f"the outcome record has masks for attacks the row does not list: {sorted(extra)}")
        esc = (row.get("escalation") or {}).get("robust_acc", row.get("escalated_robust_acc"))
        if esc is not None:
            if self.escalated is None:
                out.append("the row has an escalated robust accuracy but its outcome record no escalated mask")
            else:
                same(esc, self.escalated, "escalated robust_acc")
        if self.draws > 1:
            for key, hits in (("clean_acc_expected", self.clean_hits), ("robust_acc_expected", self.robust_hits)):
                if row.get(key) is not None and abs(row[key] - sum(hits) / (self.draws * self.n)) > 1e-6:
                    out.append(f"{key} {row[key]:.4f} but the draws give {sum(hits) / (self.draws * self.n):.4f}")
        return out


def _group(row: dict) -> str:
    return f"{row['threat']}_{row['eps']:.8f}"


def from_store(row: dict, store_root: str | Path | None = None) -> RowOutcome:
    """The outcomes behind an attack-suite row, from the signed store records its run wrote (``store_key``).

    Raises ValueError naming what is missing: no store_key, no records, a record that fails
    verification, or fewer examples than the row's n.
    """
    from symbench.bench.run.store import Store

    if not row.get("store_key"):
        raise ValueError(f"row {row['model']} {row['suite']} has no store_key: it was not computed per example")
    store = Store(store_root, row["model"], row["store_key"])
    group = _group(row)
    files = sorted((store.dir / group).glob("b*.json"))
    if not files:
        raise ValueError(f"no stored outcomes for {row['model']} {row['suite']} {row['threat']} eps "
                         f"{row.get('eps_display', row['eps'])} in {store.dir / group}")
    clean, robust, after, hits_c, hits_r, draws = [], [], {}, [], [], 1
    for f in files:
        b = int(f.stem[1:])
        crec, arec = store.get("clean", b), store.get(group, b)
        if crec is None or arec is None:
            raise ValueError(f"stored outcome {f} (or its clean record) is missing or fails verification; rerun the "
                             "suite to recompute it")
        clean += [bool(v) for v in crec.get("correct_all", crec["correct"])]
        robust += [bool(v) for v in arec["robust"]]
        for k, v in arec["robust_after"].items():
            after.setdefault(k, []).extend(bool(x) for x in v)
        k = int(arec.get("draws", 1))
        if k > 1:
            draws = k
            hits_c += [round(p * k) for p in crec["p_correct"]]
            hits_r += [round(p * k) for p in arec["p_correct"]]
    if len(robust) != row["n"]:
        raise ValueError(f"{store.dir / group} holds {len(robust)} outcomes but the row says n={row['n']}; rerun the "
                         "suite to complete the store")
    escalated = None
    try:
        from symbench.bench.checks.escalate import escalated_mask
    except ImportError:  # escalation that lands in rows is newer than this module
        escalated_mask = None
    if escalated_mask is not None and (row.get("escalation") or row.get("escalated_robust_acc") is not None):
        escalated = escalated_mask(row, store_root)
    return RowOutcome(n=len(robust), clean=clean, robust=robust, after=after, escalated=escalated, draws=draws,
                      clean_hits=hits_c or None, robust_hits=hits_r or None)
