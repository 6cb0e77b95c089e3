"""The stronger-attack spot check, and the per-example cascade it shares with escalation.

A suite of weak attacks (FGSM + PGD) can pass every plausibility check and still sit several points
above the field's standard attacks. So on every row whose suite does not already run AutoAttack's
APGD-CE and APGD-T at the standard budget, a seeded random subset of the examples the suite left
robust is attacked again with APGD-CE then APGD-T (pyautoattack through ``bench.attacks``; with EOT
for a randomized model), and the broken share is scaled to the row: ``broken / subset × robust_acc``
is the robust accuracy the row over-reports. A subset of 64 cannot tell 1.5 points from 3 when most
examples survive (the audit's AT rows), so while the 95% interval of that estimate straddles the 2-point
line the subset doubles (the seeded order makes each subset contain the last; only the new examples are
attacked), up to ``spot_check_max_n`` (1024: every survivor of a 1000-example row) and the budget.
Per-example results go to the run's store, so a rerun costs nothing; the cost (forward passes, seconds)
is in the detail.
"""
from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from symbench.bench.attacks import create_attack
from symbench.bench.run.counting import CountingModel
from symbench.bench.run.runner import correct_fraction

log = logging.getLogger(__name__)

# defaults of the suite options spot_check_<key>; budget = base-network image passes per (threat, eps)
SPOT_DEFAULTS = {"n": 64, "iters": 100, "targets": 9, "eot": 20, "budget": 1_000_000}
SPOT_MAX_N = 1024  # suite option spot_check_max_n: the largest subset an undecided check grows to (budget too)
FAIL_POINTS, WARN_POINTS = 0.02, 0.01


def seed_of(*parts) -> int:
    """A 31-bit seed from any parts (suite seed, names, eps), stable across processes."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:4], "little") % 2**31


def row_group(norm: str, eps: float) -> str:
    """The runner's name for a (threat, eps): the key of per-row check results."""
    return f"{norm}_{eps:.8f}"


def runs_standard_apgd(suite, norm: str) -> bool:
    """The suite already runs APGD-CE and APGD-T (or the whole AutoAttack) at AutoAttack's budget under ``norm``."""
    def standard(spec) -> bool:
        p = dict(spec.params)
        return (p.get("iters") is None or p["iters"] >= 100) and (p.get("targets") is None or p["targets"] >= 9)

    names = {s.name for s in suite.attacks_for(norm) if standard(s)}
    return "autoattack" in names or {"apgd_ce", "apgd_t"} <= names


def sample_survivors(robust: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """A seeded random subset (sorted indices) of at most ``n`` of the examples marked robust."""
    idx = robust.nonzero().flatten()
    g = torch.Generator().manual_seed(seed)
    return idx[torch.randperm(len(idx), generator=g)[:n]].sort().values


@dataclass
class Cascade:
    """Per-example result of a list of attacks run one after another on the survivors of the previous ones."""

    idx: list[int]               # example indices into the run's data
    broken_by: list[str | None]  # first step that fooled at least one of the k draws, per example
    p_correct: list[float]       # share of the k draws correct at the worst adversarial example found
    per_step: dict[str, int]     # examples each step broke (first)
    n_forward: int
    n_backward: int
    seconds: float

    @property
    def broken(self) -> int:
        return sum(b is not None for b in self.broken_by)

    def record(self, config: dict) -> dict:
        return {"idx": self.idx, "broken_by": self.broken_by, "p_correct": self.p_correct, "per_step": self.per_step,
                "n_forward": self.n_forward, "n_backward": self.n_backward, "seconds": self.seconds,
                "config": config}

    @classmethod
    def from_record(cls, rec: dict) -> "Cascade":
        return cls(list(rec["idx"]), list(rec["broken_by"]), list(rec["p_correct"]), dict(rec["per_step"]),
                   int(rec["n_forward"]), int(rec["n_backward"]), float(rec["seconds"]))

    @classmethod
    def join(cls, parts: list["Cascade"]) -> "Cascade":
        """Cascades on disjoint subsets (pieces, growth stages) as one: lists in order, counts summed."""
        per_step: dict[str, int] = {}
        for p in parts:
            for label, broke in p.per_step.items():
                per_step[label] = per_step.get(label, 0) + broke
        return cls([i for p in parts for i in p.idx], [b for p in parts for b in p.broken_by],
                   [c for p in parts for c in p.p_correct], per_step, sum(p.n_forward for p in parts),
                   sum(p.n_backward for p in parts), sum(p.seconds for p in parts))


Step = tuple[str, Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]]  # (label, fn(model, x, y) -> x_adv)


def run_cascade(model: nn.Module, steps: list[Step], x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor,
                draws: int, num_classes: int) -> Cascade:
    """Run ``steps`` as a cascade on ``x[idx]``: an example leaves once any of ``draws`` fresh draws of the
    model misclassifies one of its adversarial examples (worst of k, the runner's rule)."""
    counted = CountingModel(model, num_classes)
    t0 = time.time()
    xs, ys = x[idx], y[idx]
    alive = torch.ones(len(idx), dtype=torch.bool, device=ys.device)
    p = torch.ones(len(idx), device=ys.device)
    broken_by: list[str | None] = [None] * len(idx)
    per_step = {}
    for label, fn in steps:
        live = alive.nonzero().flatten()
        per_step[label] = 0
        if not len(live):
            continue
        x_adv = fn(counted, xs[live], ys[live])
        frac = correct_fraction(counted, x_adv, ys[live], draws)
        p[live] = torch.minimum(p[live], frac)
        for j in live[frac < 1].tolist():
            broken_by[j] = label
        per_step[label] = int((frac < 1).sum())
        alive[live] = frac == 1
    return Cascade(idx.tolist(), broken_by, p.tolist(), per_step, counted.n_forward, counted.n_backward,
                   time.time() - t0)


def cached_cascade(store, group: str, idx: torch.Tensor, config: dict, compute: Callable[[], Cascade],
                   batch: int = 0) -> Cascade:
    """The stored cascade for (group, idx, config), else ``compute()`` stored under (``group``, ``batch``)."""
    want = idx.tolist()

    def check(rec):
        if rec.get("idx") != want or rec.get("config") != config:
            raise ValueError("stored for another subset or budget")
        if not (len(rec["broken_by"]) == len(rec["p_correct"]) == len(want)):
            raise ValueError("per-example lists do not cover the subset")

    if store is not None:
        rec = store.get(group, batch, check=check)
        if rec is not None:
            return Cascade.from_record(rec)
    res = compute()
    if store is not None:
        store.put(group, batch, res.record(config))
    return res


def spot_config(suite, model: nn.Module, draws: int, num_classes: int) -> tuple[dict, str, int]:
    """The spot check's budget from the suite's ``spot_check_*`` options, shrunk to fit ``spot_check_budget``
    (base-network passes): subset to 16, EOT to 4, iterations to 20, targets to 3, subset to 8, in that order;
    and the largest subset the budget and ``spot_check_max_n`` let an undecided check grow to."""
    opt = {k: suite.option(f"spot_check_{k}", d) for k, d in SPOT_DEFAULTS.items()}
    cfg = {"n": int(opt["n"]), "iters": int(opt["iters"]), "targets": min(int(opt["targets"]), num_classes - 1),
           "eot": int(opt["eot"]) if draws > 1 else 1, "draws": draws}
    per_pass = int(getattr(getattr(model, "card", None), "n_forward_passes", 1) or 1)
    budget = float(opt["budget"])

    def cost(c):
        return c["n"] * (1 + c["targets"]) * c["iters"] * c["eot"] * per_pass

    note = ""
    for key, floor in (("n", 16), ("eot", 4), ("iters", 20), ("targets", 3), ("n", 8)):
        if cost(cfg) <= budget:
            break
        fit = math.floor(cfg[key] * budget / cost(cfg))
        new = max(floor, min(cfg[key], fit))
        if new < cfg[key]:
            note += f"{key} {cfg[key]}->{new}, "
            cfg[key] = new
    if note:
        note = f"; shrunk to fit the budget of {budget:.0e} base passes ({note.rstrip(', ')})"
    per_example = cost(cfg) / cfg["n"]
    max_n = min(int(suite.option("spot_check_max_n", SPOT_MAX_N)), math.floor(budget / per_example))
    return cfg, note, max(cfg["n"], max_n)


def apgd_steps(norm: str, eps: float, cfg: dict, seed: int) -> list[Step]:
    """APGD-CE then APGD-T (pyautoattack, AutoAttack-standard components) with ``cfg``'s budget and EOT."""
    eot = cfg["eot"] if cfg["eot"] > 1 else None
    ce = create_attack("apgd_ce", norm=norm, iters=cfg["iters"], eot_iter=eot)
    t = create_attack("apgd_t", norm=norm, iters=cfg["iters"], targets=cfg["targets"], eot_iter=eot)
    return [("apgd_ce", lambda m, x, y: ce(m, x, y, eps, seed=seed_of(seed, "apgd_ce"))),
            ("apgd_t", lambda m, x, y: t(m, x, y, eps, seed=seed_of(seed, "apgd_t")))]


def spot_check_row(model: nn.Module, suite, x: torch.Tensor, y: torch.Tensor, outcome, *, draws: int, seed: int,
                   store=None, num_classes: int = 10) -> tuple[str, str, dict]:
    """(status, detail, numbers) of the spot check on one row's outcome."""
    norm, eps = outcome.norm, float(outcome.eps)
    if runs_standard_apgd(suite, norm):
        return "skip", f"the suite already runs APGD-CE + APGD-T at the standard budget under {norm}", {}
    ra = outcome.robust_acc
    n_surv = int(outcome.robust.sum())
    if n_surv == 0:
        return "pass", f"no example survived the suite at {norm} eps {eps:.4f}: nothing to check", {}
    cfg, note, max_n = spot_config(suite, model, draws, num_classes)
    row_seed = seed_of(seed, "spot", norm, eps)
    group = "spot_" + row_group(norm, eps)
    steps = apgd_steps(norm, eps, cfg, row_seed)
    parts, done, n = [], None, cfg["n"]
    while True:  # stage k attacks the survivors sample k adds to sample k-1 (batch k of the store group)
        want = sample_survivors(outcome.robust, n, row_seed)
        new = (want if done is None else want[~torch.isin(want, done)]).to(y.device)
        if len(new):
            parts.append(cached_cascade(store, group, new, cfg if not parts else {**cfg, "stage": len(parts)},
                                        lambda: run_cascade(model, steps, x, y, new, draws, num_classes),
                                        batch=len(parts)))
        done = want
        broken, s = sum(p.broken for p in parts), len(done)
        if s >= n_surv or n >= max_n or not _undecided(broken, s, ra):
            break
        n = min(2 * n, max_n)
    joined = Cascade.join(parts)
    per_step = {k: joined.per_step.get(k, 0) for k in ("apgd_ce", "apgd_t")}
    n_forward, seconds = joined.n_forward, joined.seconds
    drop = broken / s * ra
    if len(parts) > 1:
        note += f"; grown {cfg['n']}->{s} while the 95% interval straddled {100 * FAIL_POINTS:.0f} points"
    status = "fail" if drop > FAIL_POINTS else ("warn" if drop > WARN_POINTS else "pass")
    budget = f"{cfg['iters']} iterations, {cfg['targets']} targets" + (
        f", EOT {cfg['eot']}, worst of {draws} draws" if draws > 1 else "")
    lo, hi = _drop_interval(broken, s, ra)
    detail = (f"APGD-CE + APGD-T ({budget}) broke {broken} of {s} randomly chosen survivors (of {n_surv}) at "
              f"{norm} eps {eps:.4f} (APGD-CE {per_step['apgd_ce']}, APGD-T {per_step['apgd_t']}): "
              f"robust_acc {ra:.3f} is ~{100 * drop:.1f} points too high (~{ra - drop:.3f}"
              + (f"; 95% {100 * lo:.1f}-{100 * hi:.1f} points" if s < n_surv else ", all survivors")
              + f"); cost {n_forward} forward passes{note}")  # no wall seconds: a row must not depend on the machine
    return status, detail, {"broken": broken, "subset": s, "survivors": n_surv, "drop": drop,
                            "n_forward": n_forward, "seconds": seconds, **cfg}


def _drop_interval(broken: int, subset: int, robust_acc: float) -> tuple[float, float]:
    """95% Wilson interval of the points the row over-reports, from ``broken`` of a random ``subset`` of survivors."""
    from symbench.bench.run.stats import wilson_interval

    lo, hi = wilson_interval(broken, subset)
    return lo * robust_acc, hi * robust_acc


def _undecided(broken: int, subset: int, robust_acc: float) -> bool:
    lo, hi = _drop_interval(broken, subset, robust_acc)
    return lo <= FAIL_POINTS < hi
