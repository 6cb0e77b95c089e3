"""C_N (N discrete rotations) group convolutions over e2cnn, for any N; the P4 layers' shape at another N.

A C_N feature map with ``f`` regular fields is a plain tensor with ``N f`` channels ordered field-major
(channel ``N i + r`` is field ``i`` at orientation ``r``, i.e. at angle ``2 pi r / N``). Rotating the
input by a multiple ``k`` of ``360/N`` degrees rotates the map and cycles every field's orientation
index by ``k``; for N = 8, ``torch.rot90`` (k = 2) is exact on the pixel grid, 45° (k = 1) only up to
interpolation and the 3x3 filters' sampling.
"""
from __future__ import annotations

from functools import lru_cache

import torch
from e2cnn import gspaces
from e2cnn import nn as enn

from symbench.models.layers.p4 import _conv_bn_relu, _P4Module


@lru_cache(maxsize=None)
def _gspace(n: int):
    return gspaces.Rot2dOnR2(N=n)


def _regular(n: int, fields: int) -> enn.FieldType:
    gs = _gspace(n)
    return enn.FieldType(gs, fields * [gs.regular_repr])


def _trivial(n: int, channels: int) -> enn.FieldType:
    gs = _gspace(n)
    return enn.FieldType(gs, channels * [gs.trivial_repr])


class CNLift(_P4Module):
    """Lifting conv: ``cin`` plain channels → ``fields`` regular C_N fields (N·fields channels).

    Group batch norm (one statistic per field), ReLU, optional 2x2 max pool, as :class:`P4Lift`.
    """

    def __init__(self, n: int, cin: int, fields: int, pool: bool):
        in_type, out_type = _trivial(n, cin), _regular(n, fields)
        super().__init__(in_type, _conv_bn_relu(in_type, out_type, pool))
        self.group_order = n
        self.out_channels = n * fields


class CNBlock(_P4Module):
    """Group conv regular → regular C_N fields, group batch norm, ReLU, optional 2x2 max pool."""

    def __init__(self, n: int, fields_in: int, fields_out: int, pool: bool):
        in_type, out_type = _regular(n, fields_in), _regular(n, fields_out)
        super().__init__(in_type, _conv_bn_relu(in_type, out_type, pool))
        self.group_order = n
        self.out_channels = n * fields_out


def cn_group_max_pool(x: torch.Tensor, n: int) -> torch.Tensor:
    """(B, n f, H, W) → (B, f, H, W): max over the ``n`` orientations of each field (rotation-invariant)."""
    b, c, h, w = x.shape
    return x.view(b, c // n, n, h, w).amax(dim=2)
