"""A wrapper around symbench's shipped ``baseline_cnn4`` that cites its checkpoint instead of copying it.

The card says ``base="baseline_cnn4"``: symbench builds :class:`FlipAverage` with an untrained
``baseline_cnn4`` inside as ``.base`` and loads baseline_cnn4's shipped, sha256-verified weights into
it. The rows then cite baseline_cnn4's sha256 (``ckpt_sha256``, ``base_sha256``, ``wraps``) and this
file's code (``code_sha256``): editing ``forward`` below makes the next run a new one.
"""
from __future__ import annotations

import torch
from torch import nn


class FlipAverage(nn.Module):
    """Test-time augmentation: the mean of the base's logits on x and on its horizontal mirror image.

    Holds no weights of its own (a card with ``base=`` may not: only the base's checkpoint is cited).
    """

    def __init__(self, base: nn.Module):
        super().__init__()
        self.base = base

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.base(x) + self.base(x.flip(3))) / 2          # (N, classes), invariant to a horizontal flip


def example_flipavg(num_classes: int = 10) -> nn.Module:
    """baseline_cnn4 with its logits averaged over a horizontal flip (a wrapper citing baseline_cnn4's weights)."""
    from symbench.models import create_model

    return FlipAverage(create_model("baseline_cnn4", num_classes=num_classes))  # weights: loaded by symbench


def register() -> None:
    """Entry point ``symbench.models``: register the wrapper; ``base=`` names the model whose weights it holds."""
    from symbench.models import register_model

    register_model("example_flipavg", base="baseline_cnn4", family="example_flipavg", group="D1", depth=4,
                   description="baseline_cnn4 averaged over a horizontal flip (example wrapper citing its checkpoint)",
                   paper="symbench examples/submission/README.md (an example wrapper; no paper)")(example_flipavg)
