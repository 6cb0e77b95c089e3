"""Counts forward and backward passes (in images) through a model, for cost provenance."""
from __future__ import annotations

import torch
from torch import nn


class CountingModel(nn.Module):
    """Transparent wrapper: same logits, plus ``n_forward`` / ``n_backward`` image counts.

    Also checks every output: (N, classes) and finite, so a broken model fails loudly mid-attack.
    """

    def __init__(self, model: nn.Module, num_classes: int):
        super().__init__()
        self.model = model
        self.num_classes = num_classes
        self.n_forward = 0
        self.n_backward = 0
        self.card = getattr(model, "card", None)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        n = x.shape[0]
        if out.ndim != 2 or out.shape != (n, self.num_classes):
            raise ValueError(f"model output has shape {tuple(out.shape)}, expected ({n}, {self.num_classes}) logits")
        if not torch.isfinite(out).all():
            raise ValueError("model produced NaN or infinite logits")
        self.n_forward += n
        if out.requires_grad:
            out.register_hook(self._count_backward(n))
        return out

    def _count_backward(self, n: int):
        def hook(grad):
            self.n_backward += n
            return grad
        return hook

    def features(self, x):
        return self.model.features(x)
