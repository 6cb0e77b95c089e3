"""Escalation: when a row is flagged for hidden or noisy gradients, attack its survivors with remedies that
need no knowledge of the model's insides, and report the worst case next to the suite's number.

A *suspect* verdict alone leaves a user without a number to believe. The remedies, cheapest first, as a
cascade on the examples the suite left robust (Athalye et al. 2018; Tramer et al. 2020):

1. ``transfer``: APGD-CE then APGD-T crafted on a surrogate (a ``<model>+<defense>``'s undefended base,
   or any registered model the user names), judged on the model itself: defeats shattered or
   saturated gradients (quantization, softmax outputs) of a model that computes the surrogate's function.
2. ``apgd_eot``: APGD-CE then APGD-T on the model with EOT over its randomness (20 draws per step):
   defeats randomness attacked one draw at a time. For a deterministic model whose suite already ran
   both at the standard budget it would repeat them, so it is left out.
3. ``square``: Square at its full query budget (5000): gradient-free, so no gradient masking stops it.

Every example is judged worst of k (broken if any of k fresh draws misclassifies it), and the row
keeps both numbers: ``robust_acc`` (the suite's) and ``escalated_robust_acc``, with the remedy that
broke each example. Per-example results live in the run's store (group ``escalate_<threat>_<eps>``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
from torch import nn

from symbench.bench.attacks import create_attack
from symbench.bench.checks.spot import Step, cached_cascade, row_group, runs_standard_apgd, seed_of, run_cascade

log = logging.getLogger(__name__)

# checks whose failure means the gradients may be hidden, shattered, saturated or noisy
TRIGGERS = ("gradients_nonzero", "outputs_are_logits", "large_eps_breaks_all", "black_box_not_stronger",
            "transfer_not_stronger", "deterministic_or_eot", "more_steps_converged", "iterative_beats_single_step",
            "apgd_not_stronger")


@dataclass
class Escalation:
    """One row's escalated worst case: the suite's survivors attacked again by the remedies."""

    norm: str
    eps: float
    trigger: list[str]
    robust: torch.Tensor             # (N,) bool: robust under the suite and every remedy (worst of k)
    suite_robust_acc: float
    broken_by: dict[str, int]        # remedy step -> examples it broke first
    remedies: list[str]
    surrogate: str | None
    n_attacked: int
    n_forward: int
    seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def robust_acc(self) -> float:
        return self.robust.float().mean().item()

    def row_fields(self) -> dict:
        return {"escalated_robust_acc": self.robust_acc,
                "escalation": {"trigger": self.trigger, "suite_robust_acc": self.suite_robust_acc,
                               "robust_acc": self.robust_acc, "remedies": self.remedies, "broken_by": self.broken_by,
                               "surrogate": self.surrogate, "n_attacked": self.n_attacked,
                               "n_forward": self.n_forward, "seconds": round(self.seconds, 3), "notes": self.notes}}


def flagged(row_checks: dict | None) -> list[str]:
    """The hidden/noisy-gradient checks a row failed."""
    checks = (row_checks or {}).get("checks", row_checks or {})
    return [n for n in TRIGGERS if (checks.get(n) or {}).get("status") == "fail"]


def resolve_surrogate(model: nn.Module, surrogate, device) -> tuple[nn.Module | None, str | None]:
    """The surrogate for transfer: a module, a registered model name (its trained checkpoint), or by default the
    undefended base of a defended model; (None, None) when there is none."""
    from symbench.models.defenses import find_defense

    if isinstance(surrogate, nn.Module):
        card = getattr(surrogate, "card", None)
        return surrogate.eval(), getattr(card, "name", None) or type(surrogate).__name__
    if isinstance(surrogate, str) and surrogate:
        from symbench.models import create_model, resolve_name

        name = resolve_name(surrogate)
        return create_model(name, pretrained=True).to(device).eval(), name
    defense = find_defense(model)
    if defense is not None:
        card = getattr(model, "card", None)
        return defense.base, (card.name.split("+")[0] if card is not None else "base")
    return None, None


def _on_surrogate(atk, net: nn.Module, eps: float, seed: int):
    return lambda _model, x, y: atk(net, x, y, eps, seed=seed)


def _on_model(atk, eps: float, seed: int):
    return lambda model, x, y: atk(model, x, y, eps, seed=seed)


def remedy_steps(model, suite, norm: str, eps: float, *, draws: int, surrogate, surrogate_name, seed: int,
                 square_queries: int, eot: int, num_classes: int, apgd_iters: int | None = None
                 ) -> tuple[list[Step], list[str]]:
    """The remedies as cascade steps (label, fn), and notes on the ones left out."""
    steps, notes = [], []
    targets = min(9, num_classes - 1)
    it = {"iters": apgd_iters} if apgd_iters else {}
    if surrogate is not None:
        steps += [("transfer:apgd_ce", _on_surrogate(create_attack("apgd_ce", norm=norm, **it), surrogate, eps,
                                                     seed_of(seed, "transfer", "ce"))),
                  ("transfer:apgd_t", _on_surrogate(create_attack("apgd_t", norm=norm, targets=targets, **it),
                                                    surrogate, eps, seed_of(seed, "transfer", "t")))]
    else:
        notes.append("no surrogate (name one with surrogate=...; a <model>+<defense> uses its base): no transfer")
    if draws > 1 or not runs_standard_apgd(suite, norm):
        e = eot if draws > 1 else None
        tag = f"+eot{eot}" if e else ""
        steps += [(f"apgd_ce{tag}", _on_model(create_attack("apgd_ce", norm=norm, eot_iter=e, **it), eps,
                                              seed_of(seed, "apgd", "ce"))),
                  (f"apgd_t{tag}", _on_model(create_attack("apgd_t", norm=norm, targets=targets, eot_iter=e, **it),
                                             eps, seed_of(seed, "apgd", "t")))]
    else:
        notes.append("deterministic model and the suite already ran APGD-CE + APGD-T: not repeated")
    steps.append((f"square[{square_queries}]", _on_model(create_attack("square", norm=norm, queries=square_queries),
                                                         eps, seed_of(seed, "square"))))
    return steps, notes


def escalate(model: nn.Module, suite, data, outcomes: list, *, checks: dict | None = None, surrogate=None,
             store=None, device="cpu", force: bool = False, square_queries: int = 5000, eot: int = 20,
             apgd_iters: int | None = None, num_classes: int | None = None) -> list[Escalation | None]:
    """Escalated worst case per row (None for a row not flagged, unless ``force``).

    Args:
        model: the evaluated model (eval mode, on ``device``).
        suite, data, outcomes: the run (``outcomes`` from ``run_suite``, indexing ``data``).
        checks: the run's checks record (``cached_checks``); a row escalates when it failed one of ``TRIGGERS``.
        surrogate: a module or registered model name for the transfer remedy; None: a defended model's base.
        store: the run's Store (per-example results, so a rerun costs nothing).
        square_queries, eot: Square's query budget and APGD's EOT draws (AutoAttack's 5000 and 20).
        apgd_iters: APGD iterations (None: AutoAttack's 100); smaller only for tests.
    """
    from symbench.bench.checks import row_checks
    from symbench.bench.run.runner import scoring_draws

    card = getattr(model, "card", None)
    num_classes = num_classes or getattr(card, "num_classes", 10)
    x, y = data.x.to(device), data.y.to(device)
    draws = scoring_draws(model, suite, x)
    sur, sur_name = None, None
    out: list[Escalation | None] = []
    for o in outcomes:
        trig = flagged(row_checks(checks, o)) if checks else []
        if not trig and not force:
            out.append(None)
            continue
        if sur is None and sur_name is None:
            sur, sur_name = resolve_surrogate(model, surrogate, device)
        row_seed = seed_of(suite.seed, "escalate", o.norm, float(o.eps))
        steps, notes = remedy_steps(model, suite, o.norm, float(o.eps), draws=draws, surrogate=sur,
                                    surrogate_name=sur_name, seed=row_seed, square_queries=square_queries, eot=eot,
                                    num_classes=num_classes, apgd_iters=apgd_iters)
        idx = o.robust.nonzero().flatten().to(y.device)
        config = {"steps": [s for s, _ in steps], "surrogate": sur_name, "draws": draws, "square_queries": square_queries,
                  "eot": eot, "apgd_iters": apgd_iters or 100}
        log.info("escalating %s eps %.4f (flagged: %s): %s on %d survivors", o.norm, o.eps, ", ".join(trig) or "forced",
                 ", ".join(config["steps"]), len(idx))
        res = cached_cascade(store, "escalate_" + row_group(o.norm, o.eps), idx, config,
                             lambda: run_cascade(model, steps, x, y, idx, draws, num_classes))
        robust = o.robust.clone()
        for i, b in zip(res.idx, res.broken_by):
            if b is not None:
                robust[i] = False
        out.append(Escalation(o.norm, float(o.eps), trig or ["forced"], robust, o.robust_acc, res.per_step,
                              config["steps"], sur_name, len(res.idx), res.n_forward, res.seconds, notes))
    return out
