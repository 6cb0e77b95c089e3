"""Gradient-hiding wrappers around a shipped model, for the escalation tests (issue 26).

Each computes exactly its base's decision (argmax) while hiding the gradient an attack needs, the way a
submitter might (knowingly or not). Escalation must bring each back to about its base's robust accuracy.
"""
from __future__ import annotations

import torch
from torch import nn


class ZeroGrad(nn.Module):
    """The base's logits at a detached copy of the input: the input gradient is exactly zero everywhere."""

    def __init__(self, base: nn.Module):
        super().__init__()
        self.base = base

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x.detach() + 0 * x)          # (N, classes); d/dx = 0


class Saturate(nn.Module):
    """Probabilities of 1000x the base's logits: the softmax saturates, so gradients vanish and margins are flat."""

    def __init__(self, base: nn.Module):
        super().__init__()
        self.base = base

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(1000 * self.base(x), 1)  # (N, classes), rows sum to 1


class Softmax(nn.Module):
    """Plain softmax outputs (not saturated): the cheap logits remedy recovers the logits exactly."""

    def __init__(self, base: nn.Module):
        super().__init__()
        self.base = base

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.base(x), 1)
