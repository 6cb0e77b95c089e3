"""Fully P4-equivariant G-CNNs (seed 1 appendix D): every conv a group conv, logits rotation-invariant."""
from __future__ import annotations

from torch import nn

from symbench.models.layers import P4Block, P4Lift, global_max_pool, group_max_pool
from symbench.models.layers.blocks import Normalize
from symbench.models.net import schedule
from symbench.models.registry import CIFAR10_MEAN, CIFAR10_STD, PGD_AT, TrainRecipe, register_model


class GroupMaxPool(nn.Module):
    def forward(self, x):
        return group_max_pool(x)


class EquivariantGCNN(nn.Module):
    """P4 lifting conv then P4 group-conv blocks (group BN, ReLU, max pool), group pooling, global max pool.

    ``fields`` are regular P4 fields per layer (4 channels each). Logits are exactly invariant to
    ``torch.rot90`` of the input: every layer commutes with it and the pools are invariant.
    """

    def __init__(self, fields, pools, num_classes: int = 10):
        super().__init__()
        self.normalize = Normalize(CIFAR10_MEAN, CIFAR10_STD)
        layers = [P4Lift(3, fields[0], pools[0])]
        layers += [P4Block(fi, fo, p) for fi, fo, p in zip(fields[:-1], fields[1:], pools[1:])]
        self.blocks = nn.Sequential(*layers)
        self.group_pool = GroupMaxPool()
        self.fc = nn.Linear(fields[-1], num_classes)

    def features(self, x):
        """Group-pooled last feature map (N, fields, h, w): rotates spatially with the input."""
        return self.group_pool(self.blocks(self.normalize(x)))

    def forward(self, x):
        return self.fc(global_max_pool(self.features(x)))


def _fields(depth: int, base: int):
    widths, pools = schedule(depth, base)
    return tuple(w // 4 for w in widths), pools


@register_model(family="equivariant", group="C4", depth=4, widths=schedule(4, 32)[0],
                aliases=("equivariant",), paper="seed 1 appendix D, Table 2",
                recipe=TrainRecipe(epochs=12))  # a quarter of baseline_cnn4's conv weights: 6 epochs gave 73.7%
def equivariant4(num_classes: int = 10, base: int = 32):
    """Fully P4-equivariant 4-layer G-CNN (channel counts as baseline_cnn4, 1/4 of its conv weights)."""
    return EquivariantGCNN(*_fields(4, base), num_classes=num_classes)


@register_model(family="equivariant", group="C4", depth=10, widths=schedule(10, 16)[0],
                recipe=TrainRecipe(epochs=8), paper="seed 1 appendix D, Tables 2 and 4")
def equivariant10(num_classes: int = 10, base: int = 16):
    """Fully P4-equivariant 10-layer G-CNN."""
    return EquivariantGCNN(*_fields(10, base), num_classes=num_classes)


@register_model(family="equivariant_at", group="C4", depth=10, widths=schedule(10, 16)[0], recipe=PGD_AT,
                paper="seed 1 appendix D with Madry et al. PGD-7 adversarial training")
def equivariant10_pgdat(num_classes: int = 10, base: int = 16):
    """equivariant10 trained with baseline_cnn10_pgdat's PGD-7 recipe (Linf 8/255)."""
    return EquivariantGCNN(*_fields(10, base), num_classes=num_classes)
