"""The test-time defense contract: a wrapper whose logits are ``base(purify(x))``."""
from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn


class Defense(nn.Module):
    """A test-time defense around a classifier: ``logits = base(purify(x))``.

    The plain forward pass is differentiable the ordinary way (autograd through ``purify`` where the
    defense allows it), so a naive attacker sees the defense's true gradients; BPDA and the adaptive
    attacks in ``bench.attacks`` reach ``purify`` and ``base`` directly.

    Subclasses set ``name`` (the registry key used in ``<model>+<name>``), ``PARAMS`` (parameter →
    default; the types of the defaults are the parameter types) and implement ``purify``, the
    declared non-differentiable part: BPDA runs it forward and takes the identity as its gradient.
    A third-party package registers one through the entry-point group ``symbench.defenses``.

    A wrapper that is not a subclass (a registered model of its own, e.g. with a card ``base=``)
    declares the same thing with a class attribute ``non_differentiable = "<method>"``: the method
    maps images to the images ``self.base`` classifies, and ``forward(x) == self.base(method(x))``.

    Args:
        base: the classifier to defend, (N,3,H,W) in [0,1] → (N, classes) logits, in eval mode.
        **params: overrides of ``PARAMS``.
    """

    name: ClassVar[str] = "defense"
    PARAMS: ClassVar[dict[str, Any]] = {}
    randomized: ClassVar[bool] = True
    test_time_opt: ClassVar[bool] = False
    needs_features: ClassVar[bool] = False
    paper: ClassVar[str] = ""
    non_differentiable: ClassVar[str] = "purify"

    def __init__(self, base: nn.Module, **params):
        super().__init__()
        unknown = set(params) - set(self.PARAMS)
        if unknown:
            raise ValueError(f"defense {self.name!r} has no parameter(s) {sorted(unknown)}; "
                             f"it takes {sorted(self.PARAMS)}")
        if self.needs_features and not callable(getattr(base, "features", None)):
            raise ValueError(f"defense {self.name!r} needs base.features(x) (the last feature map before pooling); "
                             f"{type(base).__name__} has none")
        self.base = base
        self.cfg = {**self.PARAMS, **params}
        self.eval()

    @classmethod
    def forward_passes(cls, params: dict) -> int:
        """Passes through the base network per defended forward pass (for the model card)."""
        return 1

    def purify(self, x: torch.Tensor, *, unrolled: bool = False) -> torch.Tensor:
        """Map (possibly attacked) images to the images the base classifies, (N,3,H,W) in [0,1].

        Args:
            unrolled: keep the graph of any inner optimization (second-order terms) so that an
                end-to-end attack can differentiate through it; memory grows with its steps.
        """
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(self.purify(x))  # (N, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The base's features of the purified input."""
        return self.base.features(self.purify(x))

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.cfg.items())


class DeclaredDefense:
    """A :class:`Defense`'s face on a module that declares ``non_differentiable = "<method>"`` and holds
    its classifier as ``.base`` (a third-party wrapper), so BPDA and the adaptive attacks reach its parts.

    ``purify(x, unrolled=...)`` calls the declared method (which has no unrolled mode); ``name`` and
    ``cfg`` key the store as a Defense's do; ``card`` names it ``<base>+<wrapper>`` when its card says
    ``base=``, so a defended model's base reference is run under the base's name.
    """

    def __init__(self, module: nn.Module):
        self.module = module
        self.base = module.base
        self.method = type(module).non_differentiable
        card = getattr(module, "card", None)
        self.name = getattr(type(module), "name", None) if isinstance(getattr(type(module), "name", None), str) \
            else type(module).__name__
        self.cfg = dict(getattr(module, "cfg", None) or {})
        if card is not None and getattr(card, "base", None):
            from dataclasses import replace
            card = replace(card, name=f"{card.base}+{card.name}")
        self.card = card
        randomized = getattr(type(module), "randomized", None)
        self.randomized = bool(randomized if isinstance(randomized, bool) else getattr(card, "randomized", False))

    def purify(self, x: torch.Tensor, *, unrolled: bool = False) -> torch.Tensor:
        return getattr(self.module, self.method)(x)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)


def declares_defense(module: object) -> bool:
    """Does a module that is not a :class:`Defense` declare a non-differentiable part BPDA can bypass?"""
    method = getattr(type(module), "non_differentiable", None)
    return (isinstance(module, nn.Module) and not isinstance(module, Defense) and isinstance(method, str)
            and callable(getattr(module, method, None)) and isinstance(getattr(module, "base", None), nn.Module))


def find_defense(model: nn.Module) -> Defense | DeclaredDefense | None:
    """The :class:`Defense` inside ``model``, looking through wrappers that hold it as ``.model``
    (the runner's ``CountingModel``, torchattacks guards); a :class:`DeclaredDefense` view of a module
    that declares ``non_differentiable``; None for an undefended model."""
    seen = 0
    while model is not None and seen < 16:
        if isinstance(model, Defense):
            return model
        if declares_defense(model):
            return DeclaredDefense(model)
        model = getattr(model, "model", None)
        seen += 1
    return None


def unwrap(model: nn.Module) -> nn.Module:
    """The innermost model behind ``.model`` wrappers (the defense itself when there is one)."""
    d = find_defense(model)
    if d is not None:
        return d
    seen = 0
    while isinstance(getattr(model, "model", None), nn.Module) and seen < 16:
        model, seen = model.model, seen + 1
    return model


def count_passes(model: nn.Module, n_forward: int = 0, n_backward: int = 0) -> None:
    """Add passes an attack made around the wrapper (e.g. straight to ``defense.base``) to its counts."""
    if hasattr(model, "n_forward"):
        model.n_forward += n_forward
    if hasattr(model, "n_backward"):
        model.n_backward += n_backward
