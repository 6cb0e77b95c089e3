"""BPDA + EOT (Athalye et al. 2018): attack a purification defense through a straight-through estimator.

Forward: the defense's real purification (one draw of its randomness per EOT sample), then its base
classifier. Backward: the identity through the purification, ``x + (purify(x) - x).detach()``.
Gradients are averaged over ``eot`` draws. Against an undefended model BPDA is PGD (with EOT over
whatever randomness the model has). "The defense" is any ``Defense`` (symbench's or one registered
through the ``symbench.defenses`` entry point: its ``purify``) or a wrapper that declares its
non-differentiable part with ``non_differentiable = "<method>"`` (see ``models/defenses/base.py``).

Also home of :func:`pgd`, the PGD loop every symbench-own attack (BPDA, adaptive, end-to-end,
transfer) shares: sign steps (Linf) or normalized steps (L2), EOT averaging, and a choice of the
iterate that fools the most draws.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from symbench.models.defenses import count_passes, find_defense

from symbench.bench.attacks.base import Attack, project, register_attack

Objective = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def random_start(x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """A uniform draw in the Linf ball, or a random direction at a uniform radius in the L2 ball."""
    if norm == "linf":
        return project(x + (torch.rand_like(x) * 2 - 1) * eps, x, eps, norm)
    d = torch.randn_like(x)
    d = d / d.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
    return project(x + d * eps * torch.rand(len(x), 1, 1, 1, device=x.device), x, eps, norm)


def eot_grad(objective: Objective, x_adv: torch.Tensor, y: torch.Tensor, eot: int, *, with_grad: bool = True
             ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """EOT: the gradient of the summed loss averaged over ``eot`` draws (None if not ``with_grad``),
    the mean per-example loss (N,), and the share of draws that misclassify each example (N,)."""
    xa = x_adv.detach().requires_grad_(with_grad)
    grad = torch.zeros_like(x_adv) if with_grad else None
    loss_sum, fool = torch.zeros(len(x_adv), device=x_adv.device), torch.zeros(len(x_adv), device=x_adv.device)
    for _ in range(eot):
        with torch.set_grad_enabled(with_grad):
            loss, logits = objective(xa)
            if with_grad:
                grad += torch.autograd.grad(loss.sum(), xa)[0]
        fool += (logits.detach().argmax(1) != y).float()
        loss_sum += loss.detach()
    return (grad / eot if with_grad else None), loss_sum / eot, fool / eot


def pgd(objective: Objective, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str, *, steps: int,
        step_size: float, start_random: bool = True, eot: int = 1, select_best: bool = True) -> torch.Tensor:
    """Maximize ``objective`` in the eps ball by PGD, with the gradient averaged over ``eot`` draws.

    Args:
        objective: x_adv (N,3,H,W) → (per-example loss (N,), logits (N, classes)), one random draw.
        x, y: clean images in [0,1] and labels.
        eps, norm: the threat model ("linf" or "l2"), eps on the [0,1] scale.
        steps: gradient steps; step_size: Linf step (pixels) or L2 step length.
        start_random: start at a random point of the ball instead of x.
        eot: draws averaged per step (Expectation over Transformation).
        select_best: return, per example, the iterate whose draws were most often misclassified
            (ties: higher loss); otherwise the last iterate. The logits must then be the attacked
            model's own (e.g. the defended model's), else selection optimizes the wrong thing.
    """
    x = x.detach()
    x_adv = random_start(x, eps, norm) if start_random else x.clone()
    best, best_fool = x_adv.clone(), torch.full((len(x),), -1.0, device=x.device)
    best_loss = torch.full((len(x),), -float("inf"), device=x.device)
    for i in range(steps + 1):
        last = i == steps
        if last and not select_best:
            break
        grad, loss_sum, fool = eot_grad(objective, x_adv, y, eot, with_grad=not last)
        if select_best:
            better = (fool > best_fool) | ((fool == best_fool) & (loss_sum > best_loss))
            best[better], best_fool[better], best_loss[better] = x_adv[better], fool[better], loss_sum[better]
        if last:
            break
        if norm == "linf":
            x_adv = x_adv + step_size * grad.sign()
        else:
            x_adv = x_adv + step_size * grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        x_adv = project(x_adv.detach(), x, eps, norm)
    return best if select_best else x_adv


def bpda_logits(model, x_adv: torch.Tensor) -> torch.Tensor:
    """Logits of one defense draw with the straight-through (identity) backward through ``purify``."""
    defense = find_defense(model)
    if defense is None:
        return model(x_adv)
    purified = defense.purify(x_adv.detach())  # the real defense, no graph through its optimization
    logits = defense.base(x_adv + (purified - x_adv).detach())  # (N, classes); d/dx = d base / d purified
    count_passes(model, len(x_adv), len(x_adv) if x_adv.requires_grad else 0)
    return logits


@register_attack
@dataclass
class BPDA(Attack):
    """BPDA+EOT: real purification forward, identity backward, gradient averaged over `eot` defense draws."""

    name = "bpda"
    randomized = True
    handles_randomness = True
    steps: int = 20
    step_factor: float = 2.5   # step = step_factor * eps / steps
    eot: int = 4
    random_start: bool = True

    def run(self, model, x, y, eps):
        def objective(xa):
            logits = bpda_logits(model, xa)
            return F.cross_entropy(logits, y, reduction="none"), logits

        return pgd(objective, x, y, eps, self.norm, steps=self.steps, step_size=self.step_factor * eps / self.steps,
                   start_random=self.random_start, eot=self.eot)
