"""The network skeleton every seed-1 family shares: normalize → stem → conv blocks → global max pool → linear."""
from __future__ import annotations

import torch
from torch import nn

from symbench.models.layers import ConvBlock, Normalize, global_max_pool
from symbench.models.registry import CIFAR10_MEAN, CIFAR10_STD


def schedule(depth: int, base: int) -> tuple[tuple[int, ...], tuple[bool, ...]]:
    """Widths and 2x2-pool flags per conv layer for the 4- and 10-layer variants (32 → 4 or 2 pixels)."""
    if depth == 4:
        return (base, 2 * base, 4 * base, 8 * base), (True, True, True, False)
    if depth == 10:
        m = (1, 1, 2, 2, 4, 4, 8, 8, 8, 8)
        return tuple(base * k for k in m), (False, True, False, True, False, True, False, True, False, False)
    raise ValueError(f"depth must be 4 or 10, got {depth}")


class SeedNet(nn.Module):
    """A classifier on [0,1] images: ``stem`` handles the first layers, plain ConvBlocks the rest.

    Args:
        stem: module mapping normalized (N,3,32,32) images to (N, stem_channels, H, W).
        stem_channels: channels the stem outputs.
        widths, pools: the remaining conv layers (out channels, pool after?).
        head_pool: optional map applied to the last feature map before global pooling
            (group max pool for P4 models, so logits are rotation-invariant).
    """

    def __init__(self, stem: nn.Module, stem_channels: int, widths, pools, num_classes: int = 10,
                 head_pool: nn.Module | None = None, head_channels: int | None = None):
        super().__init__()
        self.normalize = Normalize(CIFAR10_MEAN, CIFAR10_STD)
        self.stem = stem
        blocks, cin = [], stem_channels
        for w, p in zip(widths, pools):
            blocks.append(ConvBlock(cin, w, p))
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.head_pool = head_pool or nn.Identity()
        self.fc = nn.Linear(head_channels or cin, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Last feature map before global pooling, (N, C, h, w)."""
        return self.head_pool(self.blocks(self.stem(self.normalize(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(global_max_pool(self.features(x)))  # (N, classes)
