"""Non-optimizing defenses: seed 2's random-noise baseline and a known-answer control for BPDA."""
from __future__ import annotations

import torch

from symbench.models.defenses.base import Defense


class NoiseDefense(Defense):
    """The random-noise baseline of seed 2 (§4.3, after Kumar et al. 2020): classify x + u, u ~ U[-eps_v, eps_v].

    Uniform noise in the eps_v ball spends the same budget as the equivariance defense's reverse
    vector, so the two differ only in whether r is optimized.
    """

    name = "noise_defense"
    PARAMS = {"eps_v": 8 / 255}
    randomized = True
    paper = "seed 2: Mao et al. ICML 2023, §4.3 random baseline"

    def purify(self, x: torch.Tensor, *, unrolled: bool = False) -> torch.Tensor:
        eps_v = float(self.cfg["eps_v"])
        return (x + (torch.rand_like(x) * 2 - 1) * eps_v).clamp(0, 1)


class QuantizeDefense(Defense):
    """Bit-depth reduction (Guo et al. 2018 / Xu et al. 2018): round each pixel to ``levels`` values.

    Its gradient is zero almost everywhere, so plain PGD fails against it while BPDA does not: the
    harness's positive control that a gradient-masking defense is caught.
    """

    name = "quantize_defense"
    PARAMS = {"levels": 16}
    randomized = False

    def purify(self, x: torch.Tensor, *, unrolled: bool = False) -> torch.Tensor:
        q = int(self.cfg["levels"]) - 1
        return torch.round(x * q) / q
