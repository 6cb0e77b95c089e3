"""Attack contract and registry: ``attack(model, x, y, eps, *, seed) -> x_adv``.

Every attack is a small dataclass holding its parameters; calling it validates the inputs (images in
[0,1], eps on the [0,1] pixel scale, model in eval mode), seeds every RNG the toolkits use, runs the
toolkit, and returns ``x_adv`` projected into the eps ball and [0,1] (only float error is removed
there: an attack that leaves the ball by more than 1e-4 is an error, never silently fixed).
"""
from __future__ import annotations

import contextlib
import dataclasses
import difflib
import random
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

NORMS = ("linf", "l2")
_ATTACKS: dict[str, type["Attack"]] = {}


class UnknownAttackError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def seed_everything(seed: int) -> None:
    """Seed torch, numpy's global RNG (ART, some torchattacks paths) and ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def check_images(x: torch.Tensor) -> None:
    if not torch.is_floating_point(x) or x.ndim != 4:
        raise ValueError(f"images must be float NCHW, got {x.dtype} {tuple(x.shape)}")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"images must lie in [0,1] (got min {x.min():.3f}, max {x.max():.3f}); "
                         "normalization belongs inside the model")


def check_eps(eps: float, norm: str) -> None:
    if not np.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a finite number >= 0, got {eps}")
    if norm == "linf" and eps > 1:
        raise ValueError(f"Linf eps {eps} > 1 on the [0,1] pixel scale: did you pass eps on the 0-255 scale? "
                         "Use e.g. 8/255 = 0.0314")


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Project ``x_adv`` onto the eps ball around ``x`` (Linf or L2) intersected with [0,1]."""
    delta = x_adv - x
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        n = delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        delta = delta * torch.clamp(eps / n, max=1.0)
    return (x + delta).clamp(0, 1)


@contextlib.contextmanager
def input_gradients_only(model: nn.Module):
    """Freeze the weights while an attack runs; restore exactly the flags that were set.

    Attacks need d loss / d x only, but ART's ``loss_gradient`` calls ``loss.backward()``, which also
    fills every weight's ``.grad``: about a fifth of the PGD time on cascaded4, wasted. With the
    weights frozen autograd skips that work; the input gradient is the same computation.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def distance(x_adv: torch.Tensor, x: torch.Tensor, norm: str) -> torch.Tensor:
    d = (x_adv - x).flatten(1)
    return d.abs().amax(1) if norm == "linf" else d.norm(dim=1)


@dataclass
class Attack:
    """Base class. Subclasses set ``norms`` they support and implement ``run``."""

    norm: str = "linf"
    name: ClassVar[str] = "attack"
    norms: ClassVar[tuple[str, ...]] = NORMS
    toolkit: ClassVar[str] = "symbench"
    randomized: ClassVar[bool] = False  # uses random starts / sampling (seeded)
    handles_randomness: ClassVar[bool] = False  # averages gradients over model randomness (EOT)
    black_box: ClassVar[bool] = False  # uses only the model's outputs, never its gradients

    def __post_init__(self):
        if self.norm not in self.norms:
            raise ValueError(f"attack {self.name!r} supports norms {self.norms}, got {self.norm!r}")

    def params(self) -> dict:
        return dataclasses.asdict(self)

    def progress_budget(self) -> tuple[int, str] | None:
        """About how many passes each attacked example gets, for progress lines: ``(n, "steps")`` (gradient
        steps) or ``(n, "queries")`` (forward passes of a black-box attack); None when unknown."""
        steps = getattr(self, "steps", None)
        if not isinstance(steps, int) or isinstance(steps, bool):
            return None
        eot = getattr(self, "eot", 1)
        restarts = getattr(self, "random_init", 1)
        return steps * max(1, eot if isinstance(eot, int) else 1) * max(1, restarts if isinstance(restarts, int) else 1), \
            "steps"

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, seed: int = 0) -> torch.Tensor:
        check_images(x)
        check_eps(eps, self.norm)
        if len(x) == 0 or eps == 0:
            return x.clone()
        model.eval()
        seed_everything(seed)
        with input_gradients_only(model):
            x_adv = self.run(model, x, y, eps).detach().to(x.device, x.dtype)
        model.eval()  # torchattacks restores train mode on wrappers; never leave a model training
        if x_adv.shape != x.shape:
            raise RuntimeError(f"{self.name} returned shape {tuple(x_adv.shape)} for input {tuple(x.shape)}")
        over = (distance(x_adv, x, self.norm) - eps).max().item()
        if over > 1e-4 or not torch.isfinite(x_adv).all():
            raise RuntimeError(f"{self.name} left the {self.norm} eps={eps} ball by {over:.2e}")
        return project(x_adv, x, eps, self.norm)


def register_attack(cls: type[Attack]) -> type[Attack]:
    """Class decorator: registers ``cls`` under ``cls.name``."""
    if cls.name in _ATTACKS:
        raise ValueError(f"attack {cls.name!r} registered twice")
    _ATTACKS[cls.name] = cls
    return cls


def list_attacks() -> list[str]:
    return sorted(_ATTACKS)


def create_attack(name: str, **params) -> Attack:
    """Instantiate a registered attack; unknown names and parameters fail with a clear message."""
    if name not in _ATTACKS:
        close = difflib.get_close_matches(name, list(_ATTACKS), n=4, cutoff=0.4)
        raise UnknownAttackError(f"unknown attack {name!r}." + (f" Did you mean: {', '.join(close)}?" if close else "")
                                 + f" Known: {', '.join(sorted(_ATTACKS))}")
    cls = _ATTACKS[name]
    fields = {f.name for f in dataclasses.fields(cls)}
    bad = set(params) - fields
    if bad:
        raise ValueError(f"attack {name!r} has no parameter(s) {sorted(bad)}; it takes {sorted(fields)}")
    return cls(**params)


def attack_class(name: str) -> type[Attack]:
    return _ATTACKS[name]
