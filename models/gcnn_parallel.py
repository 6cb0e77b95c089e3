"""Parallel GCNNs (seed 1 §6.1, appendix C.3): the first conv becomes parallel branches, fused."""
from __future__ import annotations

import torch
from torch import nn

from symbench.models.layers import ConvBlock, P4Lift, ScaleConv
from symbench.models.net import SeedNet, schedule
from symbench.models.registry import PGD_AT, TrainRecipe, register_model


class ParallelStem(nn.Module):
    """Runs branches side by side on the same input and fuses them.

    ``fusion="concat"`` stacks channels; ``fusion="weighted"`` is a learnable softmax-weighted sum
    (seed 1's weighted-fusion variant; every branch must then have the same width).
    """

    def __init__(self, branches: dict[str, nn.Module], fusion: str = "concat"):
        super().__init__()
        self.branches = nn.ModuleDict(branches)
        self.fusion = fusion
        widths = [b.out_channels for b in branches.values()]
        if fusion == "weighted":
            if len(set(widths)) != 1:
                raise ValueError(f"weighted fusion needs equal branch widths, got {widths}")
            self.fusion_logits = nn.Parameter(torch.zeros(len(branches)))
            self.out_channels = widths[0]
        elif fusion == "concat":
            self.out_channels = sum(widths)
        else:
            raise ValueError(f"fusion must be 'concat' or 'weighted', got {fusion!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [b(x) for b in self.branches.values()]
        if self.fusion == "concat":
            return torch.cat(outs, dim=1)
        w = torch.softmax(self.fusion_logits, 0)
        return sum(wi * o for wi, o in zip(w, outs))


class _Plain(ConvBlock):
    def __init__(self, cin, cout, pool):
        super().__init__(cin, cout, pool)
        self.out_channels = cout


def parallel_gcnn(depth: int, base: int, branches: tuple[str, ...], fusion: str, num_classes: int = 10) -> SeedNet:
    widths, pools = schedule(depth, base)
    w1, p1 = widths[0], pools[0]
    make = {"standard": lambda: _Plain(3, w1, p1), "rot": lambda: P4Lift(3, w1 // 4, p1),
            "scale": lambda: ScaleConv(3, w1, p1)}
    stem = ParallelStem({b: make[b]() for b in branches}, fusion)
    return SeedNet(stem, stem.out_channels, widths[1:], pools[1:], num_classes)


def _register_parallel(name, depth, base, branches, fusion, aliases=(), epochs=6, recipe=None):
    group = "C4-branch" if "rot" in branches else "C1"
    at = recipe is not None and recipe.adv

    def factory(num_classes: int = 10, base: int = base):
        return parallel_gcnn(depth, base, branches, fusion, num_classes)

    factory.__doc__ = (f"Parallel GCNN, {depth} layers: branches {'+'.join(branches)} in the first layer, "
                       f"{fusion} fusion" + (", PGD-7 adversarially trained (Linf 8/255)." if at else "."))
    register_model(name, family=name.removesuffix("_pgdat").rstrip("0123456789") + ("_at" if at else ""),
                   group=group, depth=depth, widths=schedule(depth, base)[0], aliases=aliases,
                   recipe=recipe or TrainRecipe(epochs=epochs),
                   paper="seed 1 §6.1 / appendix C.3" + (" with Madry et al. PGD-7 adversarial training" if at else ""))(factory)
    return factory


parallel_rot4 = _register_parallel("parallel_rot4", 4, 32, ("standard", "rot"), "concat", ("parallel", "parallel_rot"))
parallel_rot10 = _register_parallel("parallel_rot10", 10, 16, ("standard", "rot"), "concat", epochs=8)
parallel_rot10_pgdat = _register_parallel("parallel_rot10_pgdat", 10, 16, ("standard", "rot"), "concat", recipe=PGD_AT)
parallel_rotscale4 = _register_parallel("parallel_rotscale4", 4, 32, ("standard", "rot", "scale"), "concat",
                                        ("parallel_rotscale",))
parallel_rotscale10 = _register_parallel("parallel_rotscale10", 10, 16, ("standard", "rot", "scale"), "concat", epochs=8)
weighted_rotscale4 = _register_parallel("weighted_rotscale4", 4, 32, ("standard", "rot", "scale"), "weighted",
                                        ("weighted", "weighted_rotscale"))
weighted_rotscale10 = _register_parallel("weighted_rotscale10", 10, 16, ("standard", "rot", "scale"), "weighted", epochs=8)
