"""Baseline CNNs (seed 1 §6.1): 4 or 10 plain conv layers; also the adversarially trained 10-layer one."""
from __future__ import annotations

from symbench.models.layers import ConvBlock
from symbench.models.net import SeedNet, schedule
from symbench.models.registry import PGD_AT, TrainRecipe, register_model


def baseline_cnn(depth: int, base: int, num_classes: int = 10) -> SeedNet:
    widths, pools = schedule(depth, base)
    return SeedNet(ConvBlock(3, widths[0], pools[0]), widths[0], widths[1:], pools[1:], num_classes)


@register_model(family="baseline", group="C1", depth=4, widths=schedule(4, 32)[0], aliases=("baseline", "baseline_cnn"))
def baseline_cnn4(num_classes: int = 10, base: int = 32):
    """Plain 4-layer CNN (conv-BN-ReLU-maxpool ×4, global max pool, linear)."""
    return baseline_cnn(4, base, num_classes)


@register_model(family="baseline", group="C1", depth=10, widths=schedule(10, 16)[0],
                recipe=TrainRecipe(epochs=8))
def baseline_cnn10(num_classes: int = 10, base: int = 16):
    """Plain 10-layer CNN."""
    return baseline_cnn(10, base, num_classes)


@register_model(family="baseline_at", group="C1", depth=10, widths=schedule(10, 16)[0],
                aliases=("baseline_at", "cnn_at"),
                recipe=TrainRecipe(epochs=8, adv="fgsm_rs", adv_eps=8 / 255, lr=0.1),
                paper="seed 1 Table 4 'CNN + AT'")
def baseline_cnn10_at(num_classes: int = 10, base: int = 16):
    """baseline_cnn10 trained adversarially at Linf 8/255 (the seed's 'CNN + AT' row)."""
    return baseline_cnn(10, base, num_classes)


@register_model(family="baseline_at", group="C1", depth=10, widths=schedule(10, 16)[0],
                aliases=("baseline_pgd_at", "cnn_pgd_at"),
                recipe=PGD_AT,
                paper="Madry et al. 2018 PGD adversarial training; seed 1 Table 4 'CNN + AT'")
def baseline_cnn10_pgdat(num_classes: int = 10, base: int = 16):
    """baseline_cnn10 trained with PGD-7 adversarial training at Linf 8/255 (Madry et al.'s recipe)."""
    return baseline_cnn(10, base, num_classes)


@register_model(family="baseline_at", group="C1", depth=10, widths=schedule(10, 7)[0], recipe=PGD_AT,
                paper="Madry et al. 2018 PGD adversarial training; parameter-matched to equivariant10_pgdat")
def baseline_cnn10_narrow_pgdat(num_classes: int = 10, base: int = 7):
    """baseline_cnn10 at 7/16 width (114k params, 1.15x equivariant10's 99k), PGD-7 AT at Linf 8/255."""
    return baseline_cnn(10, base, num_classes)


# Issue 24's augmentation baselines: the obvious competitor of an equivariant model is a CNN trained with the
# transformations as augmentation. The baseline recipe (same epochs, lr, crop+flip) plus, per image, a random
# rotation within ±30° and an integer translation within ±3 px (bilinear, zero fill): Engstrom et al. 2019's
# spatial threat model, the range the `spatial` suite attacks.
ROTAUG = "crop+flip+rot30+trans3"


@register_model(family="baseline_rotaug", group="C1", depth=4, widths=schedule(4, 32)[0],
                recipe=TrainRecipe(epochs=6, augment=ROTAUG),
                paper="Engstrom et al. 2019 (spatial robustness) augmentation on the seed-1 baseline; issue 24")
def baseline_cnn4_rotaug(num_classes: int = 10, base: int = 32):
    """baseline_cnn4 trained with random rotations (±30°) and translations (±3 px) on top of crop+flip."""
    return baseline_cnn(4, base, num_classes)


@register_model(family="baseline_rotaug", group="C1", depth=10, widths=schedule(10, 16)[0],
                recipe=TrainRecipe(epochs=8, augment=ROTAUG),
                paper="Engstrom et al. 2019 (spatial robustness) augmentation on the seed-1 baseline; issue 24")
def baseline_cnn10_rotaug(num_classes: int = 10, base: int = 16):
    """baseline_cnn10 trained with random rotations (±30°) and translations (±3 px) on top of crop+flip."""
    return baseline_cnn(10, base, num_classes)
