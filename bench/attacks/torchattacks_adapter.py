"""torchattacks adapters: PGD (Linf/L2), MI-FGSM and CW, used for seed 2's protocol."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from symbench.bench.attacks.base import Attack, register_attack


class _EvalGuard(nn.Module):
    """torchattacks flips a wrapper's training flag back on; this wrapper always reports eval mode."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.eval()

    def forward(self, x):
        return self.model(x)


@register_attack
@dataclass
class TAPGD(Attack):
    """PGD via torchattacks (``PGD`` for Linf, ``PGDL2`` for L2); step = step_factor * eps / steps."""

    name = "ta_pgd"
    toolkit = "torchattacks"
    randomized = True
    steps: int = 20
    step_factor: float = 2.5
    random_start: bool = True

    def run(self, model, x, y, eps):
        import torchattacks

        cls = torchattacks.PGD if self.norm == "linf" else torchattacks.PGDL2
        atk = cls(_EvalGuard(model), eps=eps, alpha=self.step_factor * eps / self.steps, steps=self.steps,
                  random_start=self.random_start)
        return atk(x, y)


@register_attack
@dataclass
class TAMIM(Attack):
    """MI-FGSM (Dong et al. 2018) via torchattacks, Linf; step = eps / steps * step_factor."""

    name = "ta_mim"
    toolkit = "torchattacks"
    norms = ("linf",)
    steps: int = 20
    step_factor: float = 2.5
    decay: float = 1.0

    def run(self, model, x, y, eps):
        import torchattacks

        atk = torchattacks.MIFGSM(_EvalGuard(model), eps=eps, alpha=self.step_factor * eps / self.steps,
                                  steps=self.steps, decay=self.decay)
        return atk(x, y)


@register_attack
@dataclass
class TACW(Attack):
    """Carlini-Wagner L2 (2017) via torchattacks, then projected onto the L2 eps ball."""

    name = "ta_cw"
    toolkit = "torchattacks"
    norms = ("l2",)
    norm: str = "l2"
    c: float = 1.0
    kappa: float = 0.0
    steps: int = 100
    lr: float = 0.01

    def run(self, model, x, y, eps):
        import torchattacks

        from symbench.bench.attacks.base import project

        atk = torchattacks.CW(_EvalGuard(model), c=self.c, kappa=self.kappa, steps=self.steps, lr=self.lr)
        return project(atk(x, y), x, eps, "l2")
