"""Cascaded GCNN (seed 1 §6.1, appendix C.4): standard → rotation-equivariant → scale conv, in sequence."""
from __future__ import annotations

from torch import nn

from symbench.models.layers import ConvBlock, P4Lift, ScaleConv
from symbench.models.net import SeedNet, schedule
from symbench.models.registry import PGD_AT, TrainRecipe, register_model


def cascaded_gcnn(depth: int, base: int, num_classes: int = 10) -> SeedNet:
    widths, pools = schedule(depth, base)
    stem = nn.Sequential(ConvBlock(3, widths[0], pools[0]),          # standard
                         P4Lift(widths[0], widths[1] // 4, pools[1]),  # rotation-equivariant (lifting)
                         ScaleConv(widths[1], widths[2], pools[2]))    # multi-scale
    return SeedNet(stem, widths[2], widths[3:], pools[3:], num_classes)


@register_model(family="cascaded", group="C1", depth=4, widths=schedule(4, 32)[0], aliases=("cascaded",),
                paper="seed 1 §6.1 / appendix C.4")
def cascaded4(num_classes: int = 10, base: int = 32):
    """Cascaded GCNN, 4 layers: standard conv → P4 lifting conv → multi-scale conv → standard conv."""
    return cascaded_gcnn(4, base, num_classes)


@register_model(family="cascaded", group="C1", depth=10, widths=schedule(10, 16)[0],
                recipe=TrainRecipe(epochs=8), paper="seed 1 §6.1 / appendix C.4")
def cascaded10(num_classes: int = 10, base: int = 16):
    """Cascaded GCNN, 10 layers: the first three are standard → P4 → multi-scale."""
    return cascaded_gcnn(10, base, num_classes)


@register_model(family="cascaded_at", group="C1", depth=10, widths=schedule(10, 16)[0], recipe=PGD_AT,
                paper="seed 1 §6.1 with Madry et al. PGD-7 adversarial training")
def cascaded10_pgdat(num_classes: int = 10, base: int = 16):
    """cascaded10 trained with baseline_cnn10_pgdat's PGD-7 recipe (Linf 8/255)."""
    return cascaded_gcnn(10, base, num_classes)
