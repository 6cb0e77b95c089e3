"""A tiny CIFAR-10 CNN registered with symbench through the ``symbench.models`` entry point.

symbench calls :func:`register` when it lists models; nothing in symbench names this package.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

CHECKPOINT = Path(__file__).with_name("tinynet.safetensors")
# sha256 of CHECKPOINT, printed by ../make_checkpoint.py; symbench refuses the weights if it differs
SHA256 = "d9730e2ca8388e3bf0b6d36f669e8d3c535b30203ff090a5d0c58eb3243e90b7"
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


class TinyNet(nn.Module):
    """Two strided conv-BN-ReLU blocks, global average pooling, a linear head (~5.6k parameters).

    Takes [0,1] images (N,3,32,32) and normalizes inside, as symbench's model contract asks.
    """

    def __init__(self, num_classes: int = 10, width: int = 16):
        super().__init__()
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(2 * width, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body((x - self.mean) / self.std)           # (N, 2*width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))                     # (N, num_classes) logits


def tinynet(num_classes: int = 10, width: int = 16) -> nn.Module:
    """Tiny 2-layer CNN, a worked example of a third-party symbench submission."""
    return TinyNet(num_classes=num_classes, width=width)


def register() -> None:
    """Entry point ``symbench.models``: register the model with its card."""
    from symbench.models import register_model

    register_model("example_tinynet", family="example_tinynet", group="C1", depth=2, widths=(16, 32),
                   description="Tiny 2-layer CNN (example third-party submission, ~5.6k parameters)",
                   paper="symbench examples/submission/README.md (an example model; no paper)",
                   checkpoint=str(CHECKPOINT), sha256=SHA256, features_layer="body")(tinynet)
