"""Validity checks run with every attack suite: each a named flag with a verdict on the evaluation.

In the spirit of Carlini et al. 2019 ("On evaluating adversarial robustness"), AutoAttack's flags and
Pintor et al. 2021 ("Indicators of attack failure"). A row whose checks contain a ``fail`` is
``suspect``: still recorded, but shown as such wherever it is displayed. Each check is explained in
``docs/checks.md`` (anchor = check name).

The checks that need extra attacks run on a small diagnostic subset (the first ``m`` clean-correct
examples) at the run's reference eps, with cheap torchattacks/AutoAttack budgets; their cost is
recorded in the result.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from symbench.bench.attacks import attack_class, create_attack

log = logging.getLogger(__name__)
DOCS = "docs/checks.md"


@dataclass(frozen=True)
class CheckResult:
    status: str  # pass | warn | fail | skip
    detail: str


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

    def acc(self, x_adv: torch.Tensor) -> float:
        with torch.no_grad():
            return (self.model(x_adv).argmax(1) == self.y).float().mean().item()

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


def register_check(fn):
    CHECKS[fn.__name__] = fn
    return fn


@register_check
def iterative_beats_single_step(ctx: CheckContext) -> CheckResult:
    """PGD must not leave more examples correct than FGSM (else its gradients are not usable)."""
    fgsm = ctx.acc(ctx.adv("art_fgsm"))
    pgd = ctx.acc(ctx.adv("ta_pgd", steps=10))
    d = f"FGSM {fgsm:.3f} vs PGD-10 {pgd:.3f} at eps {ctx.eps:.4f} on {len(ctx.y)} examples"
    return CheckResult("fail" if pgd > fgsm + ctx.tol else "pass", d)


@register_check
def more_steps_converged(ctx: CheckContext) -> CheckResult:
    """PGD-40 should not beat PGD-10 by much: if it does, the attack had not converged."""
    k = ctx.acc(ctx.adv("ta_pgd", steps=10))
    k4 = ctx.acc(ctx.adv("ta_pgd", steps=40))
    drop = k - k4
    status = "pass" if drop <= ctx.tol else ("warn" if drop <= 0.1 else "fail")
    return CheckResult(status, f"PGD-10 {k:.3f} vs PGD-40 {k4:.3f} (drop {drop:+.3f})")


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
    with torch.no_grad():
        survivors = ctx.model(ctx.adv("ta_pgd", steps=40)).argmax(1) == ctx.y
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


@register_check
def outputs_are_logits(ctx: CheckContext) -> CheckResult:
    """Probabilities (rows summing to 1) instead of logits weaken cross-entropy gradients (AutoAttack flag)."""
    with torch.no_grad():
        out = ctx.model(ctx.x)
    probs = bool((out >= 0).all() and (out <= 1).all() and torch.allclose(out.sum(1), out.new_ones(len(out)), atol=1e-3))
    return CheckResult("fail" if probs else "pass",
                       "outputs look like probabilities, not logits" if probs else "outputs are logits")


def _reference(suite) -> tuple[str, float]:
    """The threat and eps the subset checks run at: the suite's first threat, eps closest to 8/255 (or 0.5 L2)."""
    t = suite.threats[0]
    target = 8 / 255 if t.norm == "linf" else 0.5
    return t.norm, min(t.eps, key=lambda e: abs(e - target))


def run_checks(model: nn.Module, suite, x: torch.Tensor, y: torch.Tensor, outcomes: list, *, m: int = 64,
               seed: int = 0, only: list[str] | None = None) -> tuple[dict, str, dict]:
    """Run every registered check; returns ``(checks, verdict, info)``.

    ``checks`` maps name → {"status", "detail"}; ``verdict`` is "suspect" if any check failed, else
    "trusted"; ``info`` holds the equivariance errors measured on the same subset.
    """
    norm, eps = _reference(suite)
    model.eval()
    with torch.no_grad():
        correct = (model(x).argmax(1) == y).nonzero().flatten()[:m]
    ctx = CheckContext(model, suite, outcomes, x[correct], y[correct], norm, eps, seed)
    results = {}
    for name, fn in CHECKS.items():
        if only and name not in only:
            continue
        if len(ctx.y) == 0 and name != "monotone_in_eps":
            results[name] = CheckResult("skip", "no clean-correct example to check on")
            continue
        try:
            results[name] = fn(ctx)
        except Exception as err:  # a check that crashes is itself a finding, never silently 'pass'
            log.exception("check %s failed to run", name)
            results[name] = CheckResult("warn", f"check could not run: {type(err).__name__}: {err}")
    verdict = "suspect" if any(r.status == "fail" for r in results.values()) else "trusted"
    info = {}
    if len(ctx.y):
        from symbench.bench.checks.equivariance import equivariance_errors

        info["equivariance"] = {"clean": equivariance_errors(model, ctx.x)}
        pgd_key = ("ta_pgd", None, None, (("steps", 10),))
        if pgd_key in ctx.cache:
            info["equivariance"]["adversarial"] = equivariance_errors(model, ctx.cache[pgd_key])
    return {k: asdict(v) for k, v in results.items()}, verdict, info
