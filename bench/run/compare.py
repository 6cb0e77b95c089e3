"""Paired comparison of two models from their stored per-example outcomes (what per-example storage is for).

Two rows of the same suite, threat and eps that were run on the same examples (same data hash, same
n) are compared example by example: both accuracies, the difference with its 95% interval, and the
exact McNemar p-value. Rows run on different examples are refused: an unpaired difference of two
n=200 accuracies says far less than it seems to.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from symbench.bench.run.stats import PairedComparison, paired_comparison


@dataclass(frozen=True)
class RowComparison:
    model_a: str
    model_b: str
    suite: str
    threat: str
    eps: float
    eps_display: str
    metric: str                    # "robust" (worst case over the suite's attacks) or "clean"
    stats: PairedComparison

    def to_json(self) -> dict:
        d = asdict(self)
        d.update(d.pop("stats"))
        d["significant"] = self.stats.significant
        return d

    def sentence(self) -> str:
        s = self.stats
        at = f" at {self.threat} eps {self.eps_display}" if self.metric == "robust" else ""
        what = f"{self.metric} accuracy{at} ({self.suite}, n={s.n})"
        if not s.significant:
            return (f"No significant difference in {what}: {self.model_a} {s.acc_a:.1%} vs {self.model_b} "
                    f"{s.acc_b:.1%}, difference {s.diff:+.1%} [{s.diff_low:+.1%}, {s.diff_high:+.1%}], "
                    f"McNemar p={s.p_value:.3g}.")
        better, worse = (self.model_a, self.model_b) if s.diff > 0 else (self.model_b, self.model_a)
        return (f"{better} is better than {worse} in {what}: {s.acc_a:.1%} vs {s.acc_b:.1%}, difference "
                f"{s.diff:+.1%} [{s.diff_low:+.1%}, {s.diff_high:+.1%}], McNemar p={s.p_value:.3g}.")


def row_outcomes(row: dict, store_root: str | Path | None = None, metric: str = "robust") -> list[bool]:
    """The per-example outcomes behind a row, read from the store it names (``store_key``)."""
    from symbench.bench.run.store import Store

    if not row.get("store_key"):
        raise ValueError(f"row {row['model']} {row['suite']} has no store_key: it was not computed per example")
    store = Store(store_root, row["model"], row["store_key"])
    group = "clean" if metric == "clean" else f"{row['threat']}_{row['eps']:.8f}"
    files = sorted((store.dir / group).glob("b*.json"))
    if not files:
        raise ValueError(f"no stored outcomes for {row['model']} {row['suite']} {row['threat']} eps "
                         f"{row.get('eps_display', row['eps'])} in {store.dir / group}: run the suite first "
                         "(or point --store at the store that ran it)")
    out: list[bool] = []
    for f in files:
        rec = store.get(group, int(f.stem[1:]))
        if rec is None:
            raise ValueError(f"stored outcome {f} is unreadable; rerun the suite to recompute it")
        out += [bool(v) for v in rec["correct" if metric == "clean" else "robust"]]
    if len(out) != row["n"]:
        raise ValueError(f"{store.dir / group} holds {len(out)} outcomes but the row says n={row['n']}; "
                         "rerun the suite to complete the store")
    return out


def compare_rows(a: dict, b: dict, store_root: str | Path | None = None, metric: str = "robust") -> RowComparison:
    """Compare two rows example by example; refuses rows run on different examples or settings."""
    for k in ("suite", "threat"):
        if a[k] != b[k]:
            raise ValueError(f"rows differ in {k}: {a[k]!r} vs {b[k]!r}")
    if abs(a["eps"] - b["eps"]) > 1e-9:
        raise ValueError(f"rows differ in eps: {a['eps']} vs {b['eps']}")
    if (a.get("data_sha256"), a["n"]) != (b.get("data_sha256"), b["n"]):
        raise ValueError(f"the two rows were run on different examples (n {a['n']} vs {b['n']}, data "
                         f"{str(a.get('data_sha256'))[:12]} vs {str(b.get('data_sha256'))[:12]}); rerun one with the "
                         "other's --n and data")
    stats = paired_comparison(row_outcomes(a, store_root, metric), row_outcomes(b, store_root, metric))
    return RowComparison(a["model"], b["model"], a["suite"], a["threat"], a["eps"], a.get("eps_display", ""),
                         metric, stats)


def matching_rows(rows: list[dict], model: str, suite: str) -> dict[tuple, dict]:
    """(threat, eps) → the newest row of ``model`` in ``suite`` with the largest n (no smaller-n stand-ins)."""
    best: dict[tuple, dict] = {}
    for r in rows:
        if r["model"] != model or r["suite"] != suite or r.get("robust_acc") is None or r.get("variant"):
            continue
        k = (r["threat"], round(r["eps"], 8))
        if k not in best or r["n"] >= best[k]["n"]:
            best[k] = r
    return best
