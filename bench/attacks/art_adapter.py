"""ART (adversarial-robustness-toolbox) adapters: FGSM and PGD through ART's PyTorchClassifier."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from symbench.bench.attacks.base import Attack, register_attack

_ART_NORM = {"linf": np.inf, "l2": 2}


def art_classifier(model: nn.Module, x: torch.Tensor, num_classes: int):
    """Wrap a [0,1]-input model for ART (clip values (0,1); ART leaves it in eval mode)."""
    from art.estimators.classification import PyTorchClassifier

    device = "gpu" if x.is_cuda else "cpu"
    return PyTorchClassifier(model=model, loss=nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]),
                             nb_classes=num_classes, clip_values=(0.0, 1.0), device_type=device)


def _num_classes(model, x):
    card = getattr(model, "card", None)
    if card is not None:
        return card.num_classes
    with torch.no_grad():
        return model(x[:1]).shape[1]


def _generate(attack, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    adv = attack.generate(x.detach().cpu().numpy(), y=y.detach().cpu().numpy())
    return torch.from_numpy(adv).to(x.device)


@register_attack
@dataclass
class ARTFGSM(Attack):
    """FGSM (Goodfellow et al. 2015), ART's FastGradientMethod, one step of size eps."""

    name = "art_fgsm"
    toolkit = "art"
    batch_size: int = 256

    def progress_budget(self):
        return 1, "steps"

    def run(self, model, x, y, eps):
        from art.attacks.evasion import FastGradientMethod

        clf = art_classifier(model, x, _num_classes(model, x))
        atk = FastGradientMethod(clf, norm=_ART_NORM[self.norm], eps=eps, batch_size=self.batch_size)
        return _generate(atk, x, y)


@register_attack
@dataclass
class ARTPGD(Attack):
    """PGD (Madry et al. 2018), ART's ProjectedGradientDescent; step size = step_factor * eps / steps."""

    name = "art_pgd"
    toolkit = "art"
    randomized = True
    steps: int = 20
    step_factor: float = 2.5
    random_init: int = 1   # number of random restarts (0: start at x)
    batch_size: int = 256

    def run(self, model, x, y, eps):
        from art.attacks.evasion import ProjectedGradientDescent

        clf = art_classifier(model, x, _num_classes(model, x))
        atk = ProjectedGradientDescent(clf, norm=_ART_NORM[self.norm], eps=eps,
                                       eps_step=self.step_factor * eps / self.steps, max_iter=self.steps,
                                       num_random_init=self.random_init, batch_size=self.batch_size,
                                       verbose=False)
        return _generate(atk, x, y)
