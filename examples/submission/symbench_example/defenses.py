"""A third-party test-time defense, registered through the entry-point group ``symbench.defenses``.

Once this package is installed, ``<any registered model>+example_squeeze[:levels=4]`` is a model
name (``symbench submit --model baseline_cnn4+example_squeeze``). ``purify`` is the declared
non-differentiable part: its rounding has a zero gradient almost everywhere, so plain PGD stalls,
and symbench's ``bpda`` attack runs ``purify`` forward and passes the gradient straight through it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from symbench.models.defenses import Defense


class FeatureSqueeze(Defense):
    """Feature squeezing (Xu et al., NDSS 2018): a 3x3 median filter, then ``levels`` grey levels per channel."""

    name = "example_squeeze"
    PARAMS = {"levels": 8}
    randomized = False
    paper = "Xu, Evans, Qi: Feature Squeezing, NDSS 2018 (arXiv:1704.01155)"

    def purify(self, x: torch.Tensor, *, unrolled: bool = False) -> torch.Tensor:
        n, c, h, w = x.shape
        patches = F.unfold(F.pad(x, (1, 1, 1, 1), mode="reflect"), 3)         # (N, C*9, H*W)
        smooth = patches.view(n, c, 9, h * w).median(dim=2).values.view(n, c, h, w)
        q = int(self.cfg["levels"]) - 1
        return torch.round(smooth * q) / q                                    # (N,3,H,W) in [0,1]
