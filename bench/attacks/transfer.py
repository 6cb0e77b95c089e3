"""Transfer attack: PGD crafted on a surrogate (by default the defended model's own undefended base),
evaluated on the target. This is the paper's "standard attack" setting for a test-time defense, and a
cheap check that a defense is not merely masking gradients of the defended pipeline.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from symbench.models.defenses import count_passes, find_defense, unwrap

from symbench.bench.attacks.base import Attack, register_attack
from symbench.bench.attacks.bpda import pgd


@register_attack
@dataclass
class Transfer(Attack):
    """PGD on a surrogate (default: the defense's base model; else a registered model), then evaluated on the target."""

    name = "transfer"
    randomized = True
    steps: int = 20
    step_factor: float = 2.5
    random_start: bool = True
    source: str = ""   # "" = the undefended base; otherwise a registered model name (its trained checkpoint)

    def surrogate(self, model):
        if self.source:
            from symbench.models import create_model

            return create_model(self.source, pretrained=True).to(next(unwrap(model).parameters()).device), False
        defense = find_defense(model)
        return (defense.base, True) if defense is not None else (model, False)

    def run(self, model, x, y, eps):
        net, bypass = self.surrogate(model)

        def objective(xa):
            logits = net(xa)
            if bypass:
                count_passes(model, len(xa), len(xa))
            return F.cross_entropy(logits, y, reduction="none"), logits

        return pgd(objective, x, y, eps, self.norm, steps=self.steps, step_size=self.step_factor * eps / self.steps,
                   start_random=self.random_start, select_best=False)
