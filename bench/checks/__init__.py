"""Validity checks run with every attack suite: each a named flag with a verdict on the evaluation.

In the spirit of Carlini et al. 2019 ("On evaluating adversarial robustness"), AutoAttack's flags and
Pintor et al. 2021 ("Indicators of attack failure"). A row whose checks contain a ``fail`` is
``suspect``: still recorded, but shown as such wherever it is displayed. Each check is explained in
``docs/checks.md`` (anchor = check name).

The checks that need extra attacks run on a small diagnostic subset (the first ``m`` clean-correct
examples) at the run's reference eps, with cheap torchattacks/AutoAttack budgets; their cost is
recorded in the result. ``apgd_not_stronger`` is judged per row (per threat and eps) on a random
subset of each row's survivors (see ``spot.py``); a randomized model is judged on k draws throughout.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from symbench.bench.attacks import attack_class, create_attack
from symbench.bench.run.progress import PassCounter, Heartbeat

log = logging.getLogger(__name__)
DOCS = "docs/checks.md"


@dataclass(frozen=True)
class CheckResult:
    status: str  # pass | warn | fail | skip
    detail: str
    rows: dict | None = None  # per-row results {"linf_0.03137255": {"status", "detail"}} of a per-row check

    def to_json(self) -> dict:
        d = {"status": self.status, "detail": self.detail}
        return {**d, "rows": self.rows} if self.rows is not None else d


@dataclass(frozen=True)
class AccStats:
    """Accuracy of a batch of (adversarial) images over k draws of the model's randomness."""

    all_k: float      # share correct in every draw
    expected: float   # mean single-draw accuracy
    se: float         # standard error of ``expected`` across the draws (0 for a deterministic model)


@dataclass
class CheckContext:
    """What the checks look at: the model, the run's outcomes and a diagnostic subset with cached attacks."""

    model: nn.Module
    suite: object
    outcomes: list
    x: torch.Tensor          # (m,3,H,W) clean-correct diagnostic subset
    y: torch.Tensor
    norm: str
    eps: float
    seed: int = 0
    cache: dict = field(default_factory=dict)
    draws: int = 1                       # k: draws of the model's randomness an example is judged on
    x_all: torch.Tensor | None = None    # the run's data, which the outcomes index
    y_all: torch.Tensor | None = None
    store: object = None                 # the run's Store (per-example results of per-row checks)

    def acc_stats(self, x_adv: torch.Tensor) -> AccStats:
        with torch.no_grad():
            hits = torch.stack([self.model(x_adv).argmax(1) == self.y for _ in range(self.draws)]).float()  # (k, m)
        per_draw = hits.mean(1)
        se = per_draw.std().item() / math.sqrt(self.draws) if self.draws > 1 else 0.0
        return AccStats(hits.min(0).values.mean().item(), per_draw.mean().item(), se)

    def acc(self, x_adv: torch.Tensor) -> float:
        """Accuracy counting an example correct only if every one of the k draws gets it right."""
        return self.acc_stats(x_adv).all_k

    def adv(self, name: str, eps: float | None = None, norm: str | None = None, **params) -> torch.Tensor:
        key = (name, eps, norm, tuple(sorted(params.items())))
        if key not in self.cache:
            atk = create_attack(name, norm=norm or self.norm, **params)
            self.cache[key] = atk(self.model, self.x, self.y, self.eps if eps is None else eps, seed=self.seed)
        return self.cache[key]

    @property
    def tol(self) -> float:
        """Accuracy differences below two examples of the subset are noise."""
        return max(0.02, 2.0 / max(1, len(self.y)))


CHECKS: dict[str, Callable[[CheckContext], CheckResult]] = {}
CHECK_VERSIONS: dict[str, int] = {}  # bumped when a check's rule changes: cached results of older versions are rerun


def register_check(fn=None, *, version: int = 1):
    def deco(f):
        CHECKS[f.__name__] = f
        CHECK_VERSIONS[f.__name__] = version
        return f
    return deco(fn) if fn is not None else deco


@register_check(version=2)
def iterative_beats_single_step(ctx: CheckContext) -> CheckResult:
    """PGD must not leave more examples correct than FGSM (else its gradients are not usable); an exact tie
    with survivors left is a warning: ten steps that find nothing beyond the first suggest they follow noise."""
    fgsm = ctx.acc(ctx.adv("art_fgsm"))
    pgd = ctx.acc(ctx.adv("ta_pgd", steps=10))
    m = len(ctx.y)
    d = f"FGSM {fgsm:.3f} vs PGD-10 {pgd:.3f} at eps {ctx.eps:.4f} on {m} examples"
    if pgd > fgsm + ctx.tol:
        return CheckResult("fail", d)
    if round(pgd * m) == round(fgsm * m) and pgd > 0:
        return CheckResult("warn", d + f": an exact tie with {round(pgd * m)} survivors left")
    return CheckResult("pass", d)


@register_check(version=2)
def more_steps_converged(ctx: CheckContext) -> CheckResult:
    """Two-sided: PGD-40 much below PGD-10 means the attack had not converged; PGD-40 *above* PGD-10 by more
    than noise means more steps made the attack weaker, the signature of noisy gradients (a random defense
    attacked without enough EOT). Accuracies are single-draw expectations over k draws; noise is two examples
    of the subset or twice the draws' standard error, whichever is larger."""
    a, b = ctx.acc_stats(ctx.adv("ta_pgd", steps=10)), ctx.acc_stats(ctx.adv("ta_pgd", steps=40))
    drop = a.expected - b.expected
    noise = max(ctx.tol, 2 * math.sqrt(a.se ** 2 + b.se ** 2))
    draws = f", mean of {ctx.draws} draws" if ctx.draws > 1 else ""
    d = f"PGD-10 {a.expected:.3f} vs PGD-40 {b.expected:.3f} (drop {drop:+.3f}, noise {noise:.3f}{draws})"
    if -drop > noise:
        return CheckResult("fail", d + ": more steps made the attack weaker, so its gradients are noisy "
                                       "(randomness attacked without enough EOT) and the row is too high")
    status = "pass" if drop <= noise else ("warn" if drop <= 0.1 else "fail")
    return CheckResult(status, d)


@register_check
def large_eps_breaks_all(ctx: CheckContext) -> CheckResult:
    """At Linf eps 0.5 any classifier can be fooled; accuracy above ~0 means the attack is blocked."""
    acc = ctx.acc(ctx.adv("ta_pgd", eps=0.5, norm="linf", steps=20))
    return CheckResult("fail" if acc > 0.02 else "pass", f"PGD-20 at Linf eps 0.5: accuracy {acc:.3f}")


@register_check
def monotone_in_eps(ctx: CheckContext) -> CheckResult:
    """Robust accuracy may not rise with eps (same attacks, larger ball)."""
    bad = []
    for norm in {o.norm for o in ctx.outcomes}:
        accs = [(o.eps, o.robust_acc) for o in sorted(ctx.outcomes, key=lambda o: o.eps) if o.norm == norm]
        bad += [f"{norm} {e1:g}->{e2:g}: {a1:.3f}->{a2:.3f}" for (e1, a1), (e2, a2) in zip(accs, accs[1:])
                if a2 > a1 + 0.01]
    if len(ctx.outcomes) < 2:
        return CheckResult("skip", "one eps only")
    return CheckResult("fail" if bad else "pass", "; ".join(bad) or "robust accuracy non-increasing in eps")


def _found_after_white_box(ctx: CheckContext, is_late) -> CheckResult | None:
    """In the run's cascade: how many examples did the first ``is_late`` attack break that every
    white-box attack before it left standing? None when the suite has no such attack."""
    specs = ctx.suite.attacks_for(ctx.norm)
    labels = [a.label for a in specs]
    late = [a.label for a in specs if is_late(a)]
    outs = [o for o in ctx.outcomes if o.norm == ctx.norm]
    if not late or not outs:
        return None
    i = labels.index(late[0])
    if i == 0:
        return CheckResult("skip", f"{late[0]} runs first: nothing to compare with")
    o = outs[-1]
    before, after = o.robust_after[labels[i - 1]], o.robust_after[late[0]]
    extra, n = int((before & ~after).sum()), int(before.sum())
    status = "pass" if extra == 0 else ("warn" if extra / max(1, n) <= 0.05 else "fail")
    return CheckResult(status, f"{late[0]} broke {extra} of {n} examples the white-box attacks left standing "
                               f"(eps {o.eps:g})")


@register_check
def black_box_not_stronger(ctx: CheckContext) -> CheckResult:
    """A black-box attack (Square) succeeding where white-box attacks failed points at masked gradients."""
    in_suite = _found_after_white_box(ctx, lambda a: attack_class(a.name).black_box)
    if in_suite is not None:
        return in_suite
    x_pgd = ctx.adv("ta_pgd", steps=40)  # outside no_grad: the attack needs gradients when not cached yet
    with torch.no_grad():
        survivors = ctx.model(x_pgd).argmax(1) == ctx.y
    if not survivors.any():
        return CheckResult("pass", "no example survived PGD-40 on the subset; nothing for Square to find")
    sq = create_attack("square", norm=ctx.norm, queries=300)
    x_sq = sq(ctx.model, ctx.x[survivors], ctx.y[survivors], ctx.eps, seed=ctx.seed)
    with torch.no_grad():
        extra = (ctx.model(x_sq).argmax(1) != ctx.y[survivors]).sum().item()
    n = int(survivors.sum())
    status = "pass" if extra == 0 else ("warn" if extra / len(ctx.y) <= 0.05 else "fail")
    return CheckResult(status, f"Square (300 queries) broke {extra} of {n} PGD-40 survivors")


@register_check
def transfer_not_stronger(ctx: CheckContext) -> CheckResult:
    """Examples crafted on a surrogate must not fool the model where its own gradients failed (masking)."""
    found = _found_after_white_box(ctx, lambda a: a.name == "transfer")
    return found or CheckResult("skip", "the suite has no transfer attack")


@register_check
def gradients_nonzero(ctx: CheckContext) -> CheckResult:
    """Zero or non-finite input gradients on many examples: shattered/vanishing gradients (Athalye et al. 2018)."""
    x = ctx.x.clone().requires_grad_(True)
    loss = F.cross_entropy(ctx.model(x), ctx.y, reduction="sum")
    grad, = torch.autograd.grad(loss, x)
    flat = grad.flatten(1)
    bad = (~torch.isfinite(flat).all(1)) | (flat.abs().amax(1) == 0)
    share = bad.float().mean().item()
    status = "pass" if share == 0 else ("warn" if share <= 0.1 else "fail")
    return CheckResult(status, f"{share:.1%} of examples have zero or non-finite input gradients")


@register_check
def deterministic_or_eot(ctx: CheckContext) -> CheckResult:
    """A randomized forward pass must be attacked with EOT (gradients averaged over the randomness)."""
    with torch.no_grad():
        a, b = ctx.model(ctx.x), ctx.model(ctx.x)
    random = not torch.equal(a, b)
    card = getattr(ctx.model, "card", None)
    declared = bool(getattr(card, "randomized", False))
    eot = any(attack_class(s.name).handles_randomness for s in ctx.suite.attacks)
    if random and not eot:
        return CheckResult("fail", "forward pass is random but no attack in the suite uses EOT")
    if random and not declared:
        return CheckResult("warn", "forward pass is random but the model card does not say randomized")
    return CheckResult("pass", "random forward pass, attacked with EOT" if random else "deterministic forward pass")


@register_check(version=3)  # 2: the subset grows while its interval straddles 2 points; 3: up to every survivor
def apgd_not_stronger(ctx: CheckContext) -> CheckResult:
    """Per row: APGD-CE + APGD-T (EOT for a randomized model) on a random subset of the row's survivors must not
    break more than 2 points of its robust accuracy (warn above 1); rows of suites that already run both skip."""
    from symbench.bench.checks.spot import row_group, spot_check_row

    if not ctx.outcomes or ctx.x_all is None:
        return CheckResult("skip", "no per-example outcomes to check")
    rows, worst = {}, []
    card = getattr(ctx.model, "card", None)
    for o in ctx.outcomes:
        status, detail, _ = spot_check_row(ctx.model, ctx.suite, ctx.x_all, ctx.y_all, o, draws=ctx.draws,
                                           seed=ctx.seed, store=ctx.store,
                                           num_classes=getattr(card, "num_classes", 10))
        rows[row_group(o.norm, o.eps)] = {"status": status, "detail": detail}
        worst.append((_RANK[status], status, detail))
    _, status, detail = max(worst, key=lambda t: t[0])
    if len(rows) > 1:
        bad = sum(r["status"] in ("warn", "fail") for r in rows.values())
        detail = f"worst of {len(rows)} rows ({bad} warn/fail): {detail}"
    return CheckResult(status, detail, rows)


_RANK = {"skip": 0, "pass": 1, "warn": 2, "fail": 3}


@register_check(version=2)  # 2: also scaled probabilities (1000 * softmax) and [0, 1] outputs
def outputs_are_logits(ctx: CheckContext) -> CheckResult:
    """Probabilities instead of logits weaken cross-entropy gradients (AutoAttack flag): rows that sum to 1,
    non-negative rows that all sum to one constant (a scaled probability vector such as ``1000 * softmax``),
    or outputs that all lie in [0, 1] (sigmoids). Centred logits (rows summing to 0, with negatives) pass."""
    with torch.no_grad():
        out = ctx.model(ctx.x).double()
    sums = out.sum(1)
    nonneg = bool((out >= 0).all())
    unit = bool(nonneg and (out <= 1).all())
    const = bool(len(out) > 1 and (sums - sums.mean()).abs().max() <= 1e-4 * max(1.0, sums.mean().abs().item()))
    probs = bool(unit and torch.allclose(sums, sums.new_ones(len(out)), atol=1e-3))
    if probs or (nonneg and const) or unit:
        why = ("rows sum to 1" if probs else f"every row is non-negative and sums to {sums.mean().item():.6g} "
               "(a scaled probability vector)" if nonneg and const else "every output lies in [0, 1]")
        return CheckResult("fail", f"outputs look like probabilities, not logits ({why}); return the pre-softmax "
                                   "logits, or cross-entropy attacks get weak gradients")
    return CheckResult("pass", "outputs are logits")


def _reference(suite) -> tuple[str, float]:
    """The threat and eps the subset checks run at: the suite's first threat, eps closest to 8/255 (or 0.5 L2)."""
    t = suite.threats[0]
    target = 8 / 255 if t.norm == "linf" else 0.5
    return t.norm, min(t.eps, key=lambda e: abs(e - target))


def run_checks(model: nn.Module, suite, x: torch.Tensor, y: torch.Tensor, outcomes: list, *, m: int = 64,
               seed: int = 0, only: list[str] | None = None, store=None) -> tuple[dict, str, dict]:
    """Run every registered check; returns ``(checks, verdict, info)``.

    ``checks`` maps name → {"status", "detail"} (plus "rows" for per-row checks, see :func:`row_checks`);
    ``verdict`` is "suspect" if any check failed, else "trusted"; ``info`` holds the equivariance errors
    measured on the same subset. ``store``: the run's Store, where per-row checks keep per-example results.
    """
    from symbench.bench.run.runner import scoring_draws

    norm, eps = _reference(suite)
    model.eval()
    draws = scoring_draws(model, suite, x)
    with torch.no_grad():
        correct = (model(x).argmax(1) == y).nonzero().flatten()[:m]
    ctx = CheckContext(model, suite, outcomes, x[correct], y[correct], norm, eps, seed, draws=draws, x_all=x, y_all=y,
                       store=store)
    results = {}
    names = [n for n in CHECKS if not only or n in only]
    with PassCounter(model) as fc, Heartbeat("validity checks", counter=fc) as beat:  # a line every few s
        for i, name in enumerate(names):
            if len(ctx.y) == 0 and name not in ("monotone_in_eps", "apgd_not_stronger"):
                results[name] = CheckResult("skip", "no clean-correct example to check on")
                continue
            beat.set(f"{name} ({i + 1}/{len(names)})")
            t0 = time.monotonic()
            try:
                results[name] = CHECKS[name](ctx)
            except Exception as err:  # a check that crashes is itself a finding, never silently 'pass'
                log.exception("check %s failed to run", name)
                results[name] = CheckResult("warn", f"check could not run: {type(err).__name__}: {err}")
            log.info("check %d/%d %s: %s (%.0f s)", i + 1, len(names), name, results[name].status,
                     time.monotonic() - t0)
        info = {}
        if len(ctx.y):
            from symbench.bench.checks.equivariance import equivariance_errors

            beat.set("equivariance errors of the check subset")
            info["equivariance"] = {"clean": equivariance_errors(model, ctx.x)}
            pgd_key = ("ta_pgd", None, None, (("steps", 10),))
            if pgd_key in ctx.cache:
                info["equivariance"]["adversarial"] = equivariance_errors(model, ctx.cache[pgd_key])
    verdict = verdict_of({k: v.to_json() for k, v in results.items()})
    return {k: v.to_json() for k, v in results.items()}, verdict, info


def verdict_of(checks: dict) -> str:
    """"suspect" if any check (or any row of a per-row check) failed, else "trusted"."""
    def failed(c):
        return c["status"] == "fail" or any(r["status"] == "fail" for r in (c.get("rows") or {}).values())
    return "suspect" if any(failed(c) for c in checks.values()) else "trusted"


def checks_id(versions: dict[str, int]) -> str:
    """A short digest of the check set (names and versions) that judged a row. It is part of a row's key, so
    rerunning a measurement under newer checks appends a row that supersedes the old verdict on the page."""
    import hashlib

    text = ",".join(f"{k}={v}" for k, v in sorted(versions.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def row_checks(cached: dict, outcome) -> dict:
    """``cached`` (a run's checks record) for one row: per-row checks replaced by that row's own result and
    the verdict recomputed, so a row is judged by its own eps (``apgd_not_stronger`` per row)."""
    from symbench.bench.checks.spot import row_group

    if "checks" not in cached:
        return cached
    group = row_group(outcome.norm, outcome.eps)
    checks = {}
    for name, c in cached["checks"].items():
        rows = c.get("rows")
        checks[name] = dict(rows[group]) if rows and group in rows else {"status": c["status"], "detail": c["detail"]}
    out = {k: v for k, v in cached.items() if k != "check_versions"}
    return {**out, "checks": checks, "verdict": verdict_of(checks),
            "checks_id": checks_id(cached.get("check_versions") or {n: 1 for n in cached["checks"]})}


def _valid_cache(rec: dict) -> None:
    if not isinstance(rec.get("checks"), dict) or rec.get("verdict") not in ("trusted", "suspect"):
        raise ValueError("a checks record holds 'checks' and a verdict")
    for c in rec["checks"].values():
        if c.get("status") not in _RANK or not isinstance(c.get("detail"), str):
            raise ValueError("every check has a status and a detail")


def cached_checks(model: nn.Module, suite, x: torch.Tensor, y: torch.Tensor, outcomes: list, store, *,
                  seed: int = 0, m: int = 64, only: tuple[str, ...] | None = None) -> dict:
    """The run's checks record ``{"checks", "verdict", "check_versions", equivariance...}`` from its store
    (group "checks"), running only the checks it lacks or holds at an older version; so new checks judge old
    runs without redoing the rest. ``only``: just these checks (a bounded set, e.g. per corruption); the record
    then holds and versions only those."""
    cached = store.get("checks", 0, check=_valid_cache) if store is not None else None
    have = dict(cached["checks"]) if cached else {}
    versions = dict(cached.get("check_versions", {})) if cached else {}
    names = [n for n in CHECKS if only is None or n in only]
    missing = [n for n in names if n not in have or versions.get(n, 1) != CHECK_VERSIONS[n]]
    if cached is not None and not missing:
        return cached
    log.info("running %d validity check(s): %s", len(missing), ", ".join(missing))
    checks, _, info = run_checks(model, suite, x, y, outcomes, m=m, seed=seed, only=missing, store=store)
    merged = {k: v for k, v in have.items() if k in CHECKS}
    merged.update(checks)
    merged = {k: merged[k] for k in names if k in merged}  # registry order
    rec = {**(cached or {}), **({} if cached and "equivariance" in cached else info),
           "checks": merged, "verdict": verdict_of(merged),
           "check_versions": dict(CHECK_VERSIONS) if only is None else {k: CHECK_VERSIONS[k] for k in merged}}
    if store is not None:
        store.put("checks", 0, rec)
    return rec
