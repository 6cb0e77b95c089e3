"""Fully P4-equivariant G-CNNs (seed 1 appendix D): every conv a group conv, logits rotation-invariant.

Also a C8 member (``equivariant4_c8``, issue 24): the same network over e2cnn's Rot2dOnR2(N=8).
"""
from __future__ import annotations

from torch import nn

from symbench.models.layers import P4Block, P4Lift, global_max_pool, group_max_pool
from symbench.models.layers.cn import CNBlock, CNLift, cn_group_max_pool
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


class CNGroupMaxPool(nn.Module):
    """Max over the ``n`` orientations of each regular C_N field."""

    def __init__(self, n: int):
        super().__init__()
        self.n = n

    def forward(self, x):
        return cn_group_max_pool(x, self.n)


class EquivariantCNGCNN(nn.Module):
    """:class:`EquivariantGCNN` over C_N (e2cnn's ``Rot2dOnR2(N)``) instead of P4: C_N lifting conv, C_N
    group-conv blocks, group pooling over the N orientations, global max pool, linear.

    ``fields`` are regular C_N fields per layer (N channels each). Logits are exactly invariant to the
    rotations by multiples of 360/N that map the pixel grid onto itself (``torch.rot90`` when 4 divides N)
    and approximately to the other multiples (45° for N = 8: interpolation, filter sampling and pooling
    break it).
    """

    def __init__(self, n: int, fields, pools, num_classes: int = 10):
        super().__init__()
        self.normalize = Normalize(CIFAR10_MEAN, CIFAR10_STD)
        layers = [CNLift(n, 3, fields[0], pools[0])]
        layers += [CNBlock(n, fi, fo, p) for fi, fo, p in zip(fields[:-1], fields[1:], pools[1:])]
        self.blocks = nn.Sequential(*layers)
        self.group_pool = CNGroupMaxPool(n)
        self.fc = nn.Linear(fields[-1], num_classes)

    def features(self, x):
        """Group-pooled last feature map (B, fields, h, w): rotates spatially with the input."""
        return self.group_pool(self.blocks(self.normalize(x)))

    def forward(self, x):
        return self.fc(global_max_pool(self.features(x)))


def _cn_fields(n: int, depth: int, base: int):
    widths, pools = schedule(depth, base)
    return tuple(w // n for w in widths), pools


# C8 at 48/32 of equivariant4's channels: 6, 12, 24, 48 regular fields (48-384 channels), 73,354 parameters, 1.12x
# equivariant4's 65,546 (a C8 regular-to-regular 3x3 filter has about twice a P4 one's free parameters, so equal
# channels would give 32,778 and equal fields 130,058). Same recipe as equivariant4, so C4 vs C8 differ in N only.
@register_model(family="equivariant", group="C8", depth=4, widths=schedule(4, 48)[0],
                paper="seed 1 appendix D with e2cnn's Rot2dOnR2(N=8) (Weiler & Cesa 2019); issue 24",
                recipe=TrainRecipe(epochs=12))
def equivariant4_c8(num_classes: int = 10, base: int = 48):
    """Fully C8-equivariant 4-layer G-CNN (equivariant4 with 8 rotations; 6-48 fields, 73k params vs 66k)."""
    return EquivariantCNGCNN(8, *_cn_fields(8, 4, base), num_classes=num_classes)
